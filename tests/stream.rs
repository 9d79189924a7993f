//! Live updates: `GET /api/stream` as server-sent events from a real tocsin. Replay with
//! `Last-Event-ID` gives exactly what a client missed, filters (ticket, room) hold, and viewers never
//! get internal notes. Streams are bounded: per member and in all (429), in replay (a `reset` event),
//! and one feed read per commit serves them all. The SSE reader below is the client; nothing sleeps: it reads until the events
//! it waits for arrive, under a deadline.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: i64,
    /// `entry`, or `reset` when the client was too far behind to replay.
    event: String,
    data: Value,
}

impl Sse {
    fn text(&self) -> &str {
        self.data["entry"]["text"].as_str().unwrap_or_default()
    }
}

/// A connected event stream.
struct Stream {
    resp: reqwest::Response,
    buf: String,
}

impl Stream {
    async fn open(app: &TestApp, query: &str, token: &str, last_event: Option<i64>) -> Stream {
        let mut req = app
            .client
            .get(format!("{}/api/stream{query}", app.base))
            .bearer_auth(token);
        if let Some(id) = last_event {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Stream {
            resp,
            buf: String::new(),
        }
    }

    /// The next `n` events (keep-alive comments skipped).
    async fn take(&mut self, n: usize) -> Vec<Sse> {
        let mut out = Vec::new();
        let read = async {
            while out.len() < n {
                if let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let (mut id, mut event, mut data) = (None, String::new(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().parse().ok();
                        } else if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Some(id) = id {
                        out.push(Sse {
                            id,
                            event,
                            data: serde_json::from_str(&data).unwrap(),
                        });
                    }
                    continue;
                }
                let chunk = self.resp.chunk().await.unwrap().expect("stream ended");
                self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .unwrap_or_else(|_| panic!("waited for {n} events, got {out:?}"));
        out
    }
}

async fn note(app: &TestApp, ticket: &str, text: &str, visibility: &str) {
    let r = app
        .api_post(
            &format!("/api/tickets/{ticket}/notes"),
            EDITOR,
            Some(json!({"text": text, "visibility": visibility})),
        )
        .await;
    assert_eq!(r.status(), 201);
}

#[tokio::test]
async fn a_client_that_reconnects_with_last_event_id_gets_exactly_what_it_missed() {
    let app = spawn_app().await;
    expect(
        app.hook(json!({"title": "disk full", "status": "firing", "labels": {"host": "db1"}}))
            .await,
        202,
    )
    .await;
    app.process().await;

    // Live from now: the opening that came before is not replayed without a position.
    let mut live = Stream::open(&app, "?ticket=T-1", EDITOR, None).await;
    note(&app, "T-1", "first", "public").await;
    let seen = live.take(1).await;
    assert_eq!(seen[0].text(), "first");
    assert_eq!(seen[0].data["ticket"], "T-1");
    drop(live);

    // While disconnected: a public note, an internal one, an ack.
    note(&app, "T-1", "second", "public").await;
    note(&app, "T-1", "internal detail", "internal").await;
    expect(
        app.api_post("/api/tickets/T-1/ack", EDITOR, None).await,
        200,
    )
    .await;

    let mut back = Stream::open(&app, "?ticket=T-1", EDITOR, Some(seen[0].id)).await;
    let missed = back.take(3).await;
    assert_eq!(
        missed.iter().map(|e| e.text()).collect::<Vec<_>>(),
        ["second", "internal detail", "Acknowledged by bob."]
    );
    assert!(missed.windows(2).all(|w| w[0].id < w[1].id));
    assert!(missed[0].id > seen[0].id);
    // Then live again, in order, nothing repeated.
    note(&app, "T-1", "third", "public").await;
    let next = back.take(1).await;
    assert_eq!(next[0].text(), "third");
    assert!(next[0].id > missed[2].id);

    // A viewer replaying the same stretch never gets the internal note.
    let mut viewer = Stream::open(&app, "?ticket=T-1", VIEWER, Some(seen[0].id)).await;
    let theirs = viewer.take(3).await;
    assert_eq!(
        theirs.iter().map(|e| e.text()).collect::<Vec<_>>(),
        ["second", "Acknowledged by bob.", "third"]
    );
}

#[tokio::test]
async fn streams_filter_by_ticket_and_room() {
    let app = spawn_app_with(
        "rooms:\n  \
           ops: {sink: {kind: webhook, url: \"http://127.0.0.1:9/ops\"}}\n  \
           db: {sink: {kind: webhook, url: \"http://127.0.0.1:9/db\"}}\n\
         routes:\n  \
           - match: {host: db1}\n    rooms: [db]\n  \
           - rooms: [ops]\n",
    )
    .await;
    let mut db_room = Stream::open(&app, "?room=db&after=0", ADMIN, None).await;
    expect(
        app.hook(json!({"title": "db down", "status": "firing", "labels": {"host": "db1"}}))
            .await,
        202,
    )
    .await;
    app.process().await;
    expect(
        app.hook(json!({"title": "web slow", "status": "firing", "labels": {"host": "web1"}}))
            .await,
        202,
    )
    .await;
    app.process().await;
    // `after=0`: from the start of the feed, as a page rendered before the ticket existed would ask.
    let mut t2 = Stream::open(&app, "?ticket=T-2&after=0", ADMIN, None).await;
    note(&app, "T-2", "looking at web1", "public").await;
    note(&app, "T-1", "db restarted", "public").await;

    let db = db_room.take(2).await;
    assert!(db.iter().all(|e| e.data["ticket"] == "T-1"), "{db:?}");
    assert_eq!(db[1].text(), "db restarted");
    let web = t2.take(2).await;
    assert!(web.iter().all(|e| e.data["ticket"] == "T-2"), "{web:?}");
    assert_eq!(web[0].data["entry"]["kind"], "opened");
    assert_eq!(web[1].text(), "looking at web1");
}

#[tokio::test]
async fn bad_stream_requests_get_json_errors() {
    let app = spawn_app().await;
    let r = app.api_get("/api/stream?room=nowhere", EDITOR).await;
    assert_eq!(expect(r, 400).await["error"], "unknown_room");
    let r = app.api_get("/api/stream?ticket=T-99", EDITOR).await;
    expect(r, 404).await;
    let r = app
        .client
        .get(format!("{}/api/stream", app.base))
        .bearer_auth(EDITOR)
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(expect(r, 400).await["error"], "invalid_last_event_id");
    let r = app
        .client
        .get(format!("{}/api/stream", app.base))
        .send()
        .await
        .unwrap();
    expect(r, 401).await;
}

#[tokio::test]
async fn streams_beyond_the_caps_are_refused_with_429() {
    let app = spawn_app_with("http:\n  streams: {max_per_member: 2, max_total: 3}\n").await;
    let _v1 = Stream::open(&app, "", VIEWER, None).await;
    let _v2 = Stream::open(&app, "", VIEWER, None).await;
    let r = app.api_get("/api/stream", VIEWER).await;
    assert!(r.headers().contains_key("retry-after"));
    let body = expect(r, 429).await;
    assert_eq!(body["error"], "overloaded");
    assert!(
        body["detail"].as_str().unwrap().contains("max_per_member"),
        "{body}"
    );
    // Another member still gets one, up to the total.
    let _e1 = Stream::open(&app, "", EDITOR, None).await;
    let body = expect(app.api_get("/api/stream", ADMIN).await, 429).await;
    assert!(
        body["detail"].as_str().unwrap().contains("max_total"),
        "{body}"
    );
    // Other requests are not affected.
    expect(app.api_get("/api/tickets", VIEWER).await, 200).await;
}

#[tokio::test]
async fn replay_is_bounded_and_a_reset_event_says_so() {
    let app = spawn_app_with("http:\n  streams: {replay_limit: 2}\n").await;
    expect(
        app.hook(json!({"title": "disk full", "status": "firing", "labels": {"host": "db1"}}))
            .await,
        202,
    )
    .await;
    app.process().await;
    let mut live = Stream::open(&app, "?ticket=T-1", EDITOR, None).await;
    note(&app, "T-1", "seen", "public").await;
    let seen = live.take(1).await;
    drop(live);

    // Two missed entries: within the limit, replayed exactly.
    note(&app, "T-1", "one", "public").await;
    note(&app, "T-1", "two", "public").await;
    let mut back = Stream::open(&app, "?ticket=T-1", EDITOR, Some(seen[0].id)).await;
    let missed = back.take(2).await;
    assert_eq!(
        missed.iter().map(|e| e.text()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert!(missed.iter().all(|e| e.event == "entry"));
    drop(back);

    // Three: more than the limit. No entries, a reset whose id is the present, then live ones.
    note(&app, "T-1", "three", "public").await;
    let mut far = Stream::open(&app, "?ticket=T-1", EDITOR, Some(seen[0].id)).await;
    let reset = far.take(1).await;
    assert_eq!(reset[0].event, "reset", "{reset:?}");
    assert_eq!(reset[0].data["reason"], "too_far_behind");
    assert!(reset[0].id > missed[1].id, "{reset:?}");
    note(&app, "T-1", "four", "public").await;
    let next = far.take(1).await;
    assert_eq!((next[0].event.as_str(), next[0].text()), ("entry", "four"));
    assert!(next[0].id > reset[0].id);
    // Reconnecting from the reset's id replays nothing skipped.
    let mut again = Stream::open(&app, "?ticket=T-1", EDITOR, Some(reset[0].id)).await;
    assert_eq!(again.take(1).await[0].text(), "four");
}

#[tokio::test]
async fn one_feed_read_per_commit_serves_every_stream() {
    const STREAMS: usize = 24;
    let app = spawn_app_with("http:\n  streams: {max_per_member: 30}\n").await;
    expect(
        app.hook(json!({"title": "disk full", "status": "firing", "labels": {"host": "db1"}}))
            .await,
        202,
    )
    .await;
    app.process().await;
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        // Viewers and editors, with and without a ticket filter.
        let (token, query) = match i % 3 {
            0 => (VIEWER, ""),
            1 => (EDITOR, "?ticket=T-1"),
            _ => (VIEWER, "?ticket=T-1"),
        };
        streams.push((token, Stream::open(&app, query, token, None).await));
    }
    let hub = &app.app.state.streams;
    let before = hub.live_reads();
    note(&app, "T-1", "internal detail", "internal").await;
    note(&app, "T-1", "for everyone", "public").await;
    for (token, s) in &mut streams {
        let got = s.take(1).await;
        let want = if *token == VIEWER {
            "for everyone"
        } else {
            "internal detail"
        };
        assert_eq!(got[0].text(), want);
    }
    let reads = hub.live_reads() - before;
    // Two commits: a read each (a stream reading for itself would make it 48).
    assert!(reads <= 2, "{reads} feed reads for {STREAMS} streams");
}
