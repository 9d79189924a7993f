//! `GET /api/stream`: timeline entries as server-sent events, live.
//!
//! Each event's `id` is its position in the store's global feed, so a client that reconnects with
//! `Last-Event-ID` gets exactly the entries it missed, then live ones. Filters: `ticket` (id or
//! `T-42`) and `room`; entries a member may not see (internal notes, for viewers) are never sent.
//! Why a store watch instead of a broadcast channel: the feed is the truth, and a reader that falls
//! behind simply reads more of it, so nothing is lost between a page load and its stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::query;
use crate::error::ApiError;
use crate::state::{AppState, Member};
use crate::store::{FeedEvent, FeedQuery, Store, TicketRef};

/// How many events one read of the feed takes.
const BATCH: usize = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/stream", get(stream))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    ticket: Option<String>,
    room: Option<String>,
    /// Start after this feed id (pages pass the id they were rendered at); `Last-Event-ID` wins.
    after: Option<i64>,
}

async fn stream(
    State(state): State<AppState>,
    member: Member,
    headers: HeaderMap,
    q: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let q = query(q)?;
    let ticket_id = match &q.ticket {
        Some(t) => Some(state.store.get_ticket(&TicketRef::parse(t)).await?.id),
        None => None,
    };
    if let Some(room) = &q.room {
        if !state.config.rooms.contains_key(room) {
            return Err(ApiError::bad_request(
                "unknown_room",
                format!("`{room}` is not a room (see `rooms:` in the config)"),
            ));
        }
    }
    let last_event = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be an event id this stream sent",
                    )
                })?,
        ),
        None => None,
    };
    let mut watch = state.store.feed_watch();
    // Without a position, start at the present: the page already shows what came before.
    let after = match last_event.or(q.after) {
        Some(after) => after,
        None => *watch.borrow_and_update(),
    };
    let reader = Reader {
        store: std::sync::Arc::clone(&state.store),
        query: FeedQuery {
            after,
            ticket_id,
            room: q.room,
            visible: member.visible(),
            limit: BATCH,
        },
        watch,
        closing: state.closing.subscribe(),
        ready: VecDeque::new(),
    };
    let events = stream::unfold(reader, |mut r| async move {
        let ev = r.next().await?;
        Some((Ok(event(&ev)), r))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

fn event(ev: &FeedEvent) -> Event {
    Event::default()
        .id(ev.id.to_string())
        .event("entry")
        .json_data(ev)
        .unwrap_or_else(|_| Event::default().comment("unserialisable entry"))
}

/// Reads the feed after a position, waiting for commits when it has caught up.
struct Reader {
    store: std::sync::Arc<dyn Store>,
    query: FeedQuery,
    watch: tokio::sync::watch::Receiver<i64>,
    closing: tokio::sync::watch::Receiver<bool>,
    ready: VecDeque<FeedEvent>,
}

impl Reader {
    /// The next event, or `None` when the stream should end (shutdown, or the store failed: the
    /// browser reconnects with `Last-Event-ID` and loses nothing).
    async fn next(&mut self) -> Option<FeedEvent> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(ev) = self.ready.pop_front() {
                return Some(ev);
            }
            // Mark the current head as seen before reading, so a commit during the read wakes us.
            let head = *self.watch.borrow_and_update();
            if head > self.query.after {
                match self.store.feed(&self.query).await {
                    Ok(batch) if !batch.is_empty() => {
                        self.query.after = batch.last().map_or(self.query.after, |e| e.id);
                        self.ready.extend(batch);
                        continue;
                    }
                    // Everything up to the head was filtered out: skip past it.
                    Ok(_) => self.query.after = head.max(self.query.after),
                    Err(e) => {
                        tracing::warn!(error = %e, "The live stream cannot read the feed; closing it.");
                        return None;
                    }
                }
            }
            tokio::select! {
                changed = self.watch.changed() => changed.ok()?,
                _ = self.closing.changed() => return None,
            }
        }
    }
}
