//! Live updates: `GET /api/stream` as server-sent events from a real tocsin. Replay with
//! `Last-Event-ID` gives exactly what a client missed, filters (ticket, room) hold, and viewers never
//! get internal notes. The SSE reader below is the client; nothing sleeps: it reads until the events
//! it waits for arrive, under a deadline.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    id: i64,
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
                    let (mut id, mut data) = (None, String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("id:") {
                            id = v.trim().parse().ok();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Some(id) = id {
                        out.push(Sse {
                            id,
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
