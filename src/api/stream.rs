//! `GET /api/stream`: timeline entries as server-sent events, live.
//!
//! Each event's `id` is its position in the store's global feed, so a client that reconnects with
//! `Last-Event-ID` gets exactly the entries it missed, then live ones. Filters: `ticket` (id or
//! `T-42`) and `room`; entries a member may not see (internal notes, for viewers) are never sent.
//!
//! Replay comes from the store (the feed is the truth); live entries come from the [`Hub`], which
//! reads each commit once for all streams. Bounds: streams per member and in all (429 beyond them),
//! at most `http.streams.replay_limit` entries replayed (further behind, a `reset` event, whose id is
//! the present, tells the client to reload its view), and a stream that falls behind the hub's
//! channel ends (the browser reconnects and replays what it missed).

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use super::query;
use crate::error::ApiError;
use crate::state::{AppState, Member};
use crate::store::{FeedEvent, FeedQuery};
use crate::stream_hub::{Batch, Hub, Permit, Refused, BATCH};

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
        Some(t) => Some(state.store.get_ticket(&super::ticket_ref(t)?).await?.id),
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
    let hub = Arc::clone(&state.streams);
    let (permit, rx) = hub
        .join(&member.name, q.room.as_deref())
        .map_err(|r| refused(&member, &r))?;
    let head = *state.store.feed_watch().borrow();
    let query = FeedQuery {
        // Without a position, start at the present: the page already shows what came before.
        after: last_event.or(q.after).unwrap_or(head),
        ticket_id,
        room: q.room,
        visible: member.visible(),
        limit: BATCH,
    };
    let mut reader = Reader {
        hub,
        query,
        rx,
        closing: state.closing.subscribe(),
        ready: VecDeque::new(),
        _permit: permit,
    };
    reader.replay(head).await?;
    let events = stream::unfold(reader, |mut r| async move {
        let out = r.next().await?;
        Some((Ok(out.event()), r))
    });
    // Comments keep the connection's idle timeout (`http.idle_timeout`) from closing a quiet stream.
    let keep_alive = (state.config.http.idle_timeout() / 3).min(Duration::from_secs(15));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive)))
}

fn refused(member: &Member, r: &Refused) -> ApiError {
    let detail = match r {
        Refused::Member(n) => format!(
            "{} has {n} live streams open, the most one member may have (http.streams.max_per_member); close one",
            member.name
        ),
        Refused::Total(n) => format!(
            "the server has {n} live streams open, the most it takes (http.streams.max_total); retry later"
        ),
    };
    ApiError::Overloaded {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after_secs: 30,
        detail,
    }
}

/// What a stream sends.
#[derive(Debug)]
enum Out {
    Entry(FeedEvent),
    /// The client was further behind than the replay limit: entries up to this id are skipped.
    Reset {
        id: i64,
        after: i64,
    },
}

impl Out {
    fn event(&self) -> Event {
        match self {
            Out::Entry(ev) => Event::default()
                .id(ev.id.to_string())
                .event("entry")
                .json_data(ev)
                .unwrap_or_else(|_| Event::default().comment("unserialisable entry")),
            Out::Reset { id, after } => Event::default()
                .id(id.to_string())
                .event("reset")
                .data(
                    json!({
                        "reason": "too_far_behind",
                        "detail": format!("more entries than the replay limit were written after event {after}; reload the view, the stream goes on from event {id}"),
                    })
                    .to_string(),
                ),
        }
    }
}

/// One stream: its filters and position, the hub's batches, and what is ready to send.
struct Reader {
    hub: Arc<Hub>,
    /// The filters, and `after`: everything up to it was sent or does not match.
    query: FeedQuery,
    rx: broadcast::Receiver<Arc<Batch>>,
    closing: tokio::sync::watch::Receiver<bool>,
    ready: VecDeque<Out>,
    _permit: Permit,
}

impl Reader {
    /// Queues what the client missed up to `head` from the store, or a reset when that is more than
    /// the replay limit.
    async fn replay(&mut self, head: i64) -> Result<(), ApiError> {
        if self.query.after >= head {
            return Ok(());
        }
        let limit = self.hub.limits().replay_limit;
        let missed = self
            .hub_store_feed(&FeedQuery {
                limit: limit + 1,
                ..self.query.clone()
            })
            .await?;
        if missed.len() > limit {
            self.ready.push_back(Out::Reset {
                id: head,
                after: self.query.after,
            });
            self.query.after = head;
        } else {
            let last = missed.last().map_or(head, |e| e.id.max(head));
            self.ready.extend(missed.into_iter().map(Out::Entry));
            self.query.after = last;
        }
        Ok(())
    }

    async fn hub_store_feed(&self, q: &FeedQuery) -> Result<Vec<FeedEvent>, ApiError> {
        Ok(self.hub.store().feed(q).await?)
    }

    /// The next event, or `None` when the stream should end: shutdown, the client fell too far
    /// behind, or the store failed. The browser reconnects with `Last-Event-ID` and loses nothing.
    async fn next(&mut self) -> Option<Out> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(out) = self.ready.pop_front() {
                return Some(out);
            }
            let batch = tokio::select! {
                got = self.rx.recv() => match got {
                    Ok(batch) => batch,
                    Err(RecvError::Lagged(n)) => {
                        tracing::debug!(behind = n, "A live stream fell behind; ending it (the client resumes).");
                        return None;
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.closing.changed() => return None,
            };
            if batch.upto <= self.query.after {
                continue;
            }
            if batch.after > self.query.after {
                // Commits the hub read before this stream subscribed (or skipped while nobody
                // listened): read them from the store.
                self.catch_up(batch.after).await?;
            }
            let in_room = match &self.query.room {
                None => None,
                Some(room) => match batch.rooms.get(room) {
                    Some(ids) => Some(ids),
                    None => {
                        self.catch_up(batch.upto).await?;
                        continue;
                    }
                },
            };
            let matching: Vec<Out> = batch
                .events
                .iter()
                .filter(|ev| ev.id > self.query.after && self.wants(ev, in_room))
                .map(|ev| Out::Entry(ev.clone()))
                .collect();
            self.ready.extend(matching);
            self.query.after = self.query.after.max(batch.upto);
        }
    }

    fn wants(&self, ev: &FeedEvent, in_room: Option<&HashSet<i64>>) -> bool {
        self.query
            .ticket_id
            .as_ref()
            .is_none_or(|t| *t == ev.ticket_id)
            && (self.query.visible.is_empty() || self.query.visible.contains(&ev.entry.visibility))
            && in_room.is_none_or(|ids| ids.contains(&ev.id))
    }

    /// Reads this stream's entries from the store up to at least `upto`.
    async fn catch_up(&mut self, upto: i64) -> Option<()> {
        match self.hub.read_all(self.query.clone(), upto).await {
            Ok(events) => {
                let last = events.last().map_or(upto, |e| e.id.max(upto));
                self.ready.extend(events.into_iter().map(Out::Entry));
                self.query.after = self.query.after.max(last);
                Some(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "A live stream cannot read the feed; closing it.");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::time::Timestamp;
    use crate::domain::timeline::{Entry, EntryKind, Visibility};
    use crate::stream_hub::StreamLimits;

    const LIMITS: StreamLimits = StreamLimits {
        max_total: 10,
        max_per_member: 10,
        replay_limit: 10,
    };

    fn note(id: i64, visibility: Visibility) -> FeedEvent {
        FeedEvent {
            id,
            ticket_id: "t1".into(),
            ticket: "T-1".into(),
            title: "disk full".into(),
            entry: Entry {
                seq: id,
                at: Timestamp::from_millis(0),
                kind: EntryKind::Note,
                visibility,
                actor: "member:bob".into(),
                text: format!("note {id}"),
                data: serde_json::Value::Null,
            },
        }
    }

    fn batch(id: i64, visibility: Visibility) -> Batch {
        Batch {
            after: id - 1,
            upto: id,
            events: vec![note(id, visibility)],
            rooms: HashMap::new(),
        }
    }

    /// A viewer's stream from feed position 0 on a hub whose channel holds `capacity` batches (and
    /// what must outlive it: the store's folder, the shutdown signal).
    async fn viewer(
        capacity: usize,
    ) -> (
        (tempfile::TempDir, tokio::sync::watch::Sender<bool>),
        Arc<Hub>,
        Reader,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let url = crate::config::StorageUrl::Sqlite(dir.path().join("t.db"));
        let store = crate::store::open(&url).await.unwrap();
        let hub = Hub::with_capacity_for_test(store, LIMITS, capacity);
        let (permit, rx) = hub.join("carol", None).unwrap();
        let closing = tokio::sync::watch::Sender::new(false);
        let reader = Reader {
            hub: Arc::clone(&hub),
            query: FeedQuery {
                visible: vec![Visibility::Public, Visibility::System],
                limit: BATCH,
                ..FeedQuery::default()
            },
            rx,
            closing: closing.subscribe(),
            ready: VecDeque::new(),
            _permit: permit,
        };
        ((dir, closing), hub, reader)
    }

    fn text(out: Option<Out>) -> String {
        match out {
            Some(Out::Entry(ev)) => ev.entry.text,
            other => panic!("expected an entry, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stream_takes_shared_batches_filtered_for_its_member() {
        let (_keep, hub, mut r) = viewer(4).await;
        hub.send(batch(1, Visibility::Internal));
        hub.send(batch(2, Visibility::Public));
        hub.send(batch(3, Visibility::System));
        assert_eq!(text(r.next().await), "note 2");
        assert_eq!(text(r.next().await), "note 3");
        assert_eq!(
            hub.live_reads(),
            0,
            "no store read when the batches are contiguous"
        );
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_the_channel_ends() {
        let (_keep, hub, mut r) = viewer(2).await;
        for id in 1..=3 {
            hub.send(batch(id, Visibility::Public));
        }
        assert!(r.next().await.is_none(), "a lagging stream must end");
        // Its place under the caps is given back when the stream is dropped.
        drop(r);
        let _held: Vec<_> = (0..LIMITS.max_per_member)
            .map(|_| hub.join("carol", None).unwrap())
            .collect();
        assert_eq!(
            hub.join("carol", None).err(),
            Some(Refused::Member(LIMITS.max_per_member))
        );
    }
}
