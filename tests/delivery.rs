//! Rooms and delivery, end to end through a real tocsin: routes, the durable outbox, retries through an
//! outage, cooldowns, dead deliveries, restarts, storm digests and per-source rate limits. Receivers are
//! real HTTP servers on 127.0.0.1 (wiremock); time is the manual clock; the processor and the outbox are
//! stepped by the test.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::receiver::*;
use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A generic alert through the `hooks` source.
fn alert(title: &str, severity: &str, status: &str) -> Value {
    json!({"title": title, "status": status, "severity": severity, "labels": {"host": title}})
}

fn webhook_room(name: &str, server: &MockServer, extra: &str) -> String {
    format!(
        "  {name}:\n    sink: {{kind: webhook, url: \"{}/hook\"}}\n    {extra}\n",
        server.uri()
    )
}

#[tokio::test]
async fn routes_pick_rooms_and_mentions_first_match_wins_unless_continue() {
    let ops = MockServer::start().await;
    let audit = MockServer::start().await;
    for s in [&ops, &audit] {
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(s)
            .await;
    }
    let app = spawn_app_with(&format!(
        "rooms:\n{}{}routes:\n  \
           - match: {{severity: critical}}\n    rooms: [ops]\n    mention: [alice]\n    continue: true\n  \
           - match_re: {{host: \"db.*\"}}\n    rooms: [audit]\n  \
           - rooms: [ops]\n",
        webhook_room("ops", &ops, "members: [alice]"),
        webhook_room("audit", &audit, ""),
    ))
    .await;

    // critical on db1: route 1 (ops, mention alice, continue) then route 2 (audit) which stops.
    app.hook(alert("db1", "critical", "firing")).await;
    // warning on web1: only the catch-all.
    app.hook(alert("web1", "warning", "firing")).await;
    app.process().await;
    assert_eq!(app.deliver().await, 3);

    let ops_bodies = bodies(&ops).await;
    assert_eq!(events(&ops_bodies), ["T-1 opened", "T-2 opened"]);
    assert_eq!(
        ops_bodies[0]["mentions"],
        json!([{"member": "alice", "handle": null}])
    );
    assert_eq!(
        ops_bodies[0]["ticket"]["link"],
        "http://tocsin.test/tickets/T-1"
    );
    assert_eq!(ops_bodies[0]["ticket"]["severity"], "critical");
    assert_eq!(ops_bodies[1]["mentions"], json!([]));
    assert_eq!(events(&bodies(&audit).await), ["T-1 opened"]);

    // The timeline records each delivery.
    let kinds = app.timeline_kinds("T-1").await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "delivered").count(),
        2,
        "{kinds:?}"
    );

    // Resolving goes to the same rooms, without pinging again.
    app.api_post("/api/tickets/T-1/resolve", EDITOR, None).await;
    assert_eq!(app.deliver().await, 2);
    let last = bodies(&ops).await.pop().unwrap();
    assert_eq!(last["event"], "resolved");
    assert_eq!(last["actor"], "member:bob");
    assert_eq!(last["mentions"], json!([]));
}

#[tokio::test]
async fn webhook_bodies_are_signed_with_hmac_sha256() {
    use hmac::{Hmac, Mac};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    std::env::set_var("TEST_AUDIT_SECRET", "s3cret-for-audit");
    let app = spawn_app_with(&format!(
        "rooms:\n  audit:\n    sink: {{kind: webhook, url: \"{}/hook\", secret: \"${{TEST_AUDIT_SECRET}}\"}}\nroutes:\n  - rooms: [audit]\n",
        server.uri()
    ))
    .await;
    app.hook(alert("db1", "error", "firing")).await;
    app.process().await;
    app.deliver().await;
    let req = &server.received_requests().await.unwrap()[0];
    let sig = req
        .headers
        .get("x-tocsin-signature")
        .unwrap()
        .to_str()
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-for-audit").unwrap();
    mac.update(&req.body);
    assert_eq!(
        sig,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    );
    assert!(req.headers.get("x-tocsin-delivery").is_some());
}

#[tokio::test]
async fn an_outage_delays_deliveries_but_each_arrives_once_and_in_order() {
    let server = MockServer::start().await;
    // The first 4 attempts meet a 503, then the receiver recovers.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        webhook_room("ops", &server, "")
    ))
    .await;
    for host in ["a", "b", "c"] {
        app.hook(alert(host, "error", "firing")).await;
    }
    app.hook(alert("a", "error", "resolved")).await;
    app.process().await;

    // Each step meets the outage at the head of the line and holds everything behind it.
    for _ in 0..4 {
        assert_eq!(app.deliver().await, 1);
        assert_eq!(
            app.deliver().await,
            0,
            "nothing is due before the retry time"
        );
        app.advance(Duration::from_secs(3600));
    }
    assert_eq!(app.deliver().await, 4);
    let received = events(&bodies(&server).await);
    let delivered: Vec<&String> = received.iter().skip(4).collect();
    assert_eq!(
        delivered,
        ["T-1 opened", "T-2 opened", "T-3 opened", "T-1 resolved"]
    );
    assert!(
        received[..4].iter().all(|e| e == "T-1 opened"),
        "{received:?}"
    );

    let kinds = app.timeline_kinds("T-1").await;
    assert_eq!(kinds.iter().filter(|k| *k == "delivery_failed").count(), 4);
    assert_eq!(kinds.iter().filter(|k| *k == "delivered").count(), 2);
    let failed = app
        .timeline("T-1")
        .await
        .into_iter()
        .find(|e| e["kind"] == "delivery_failed")
        .unwrap();
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains("HTTP 503: maintenance"),
        "{failed}"
    );
}

#[tokio::test]
async fn retry_after_puts_the_room_on_cooldown() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        webhook_room("ops", &server, "")
    ))
    .await;
    app.hook(alert("a", "error", "firing")).await;
    app.process().await;
    assert_eq!(app.deliver().await, 1);
    app.advance(Duration::from_secs(119));
    assert_eq!(app.deliver().await, 0, "the platform asked for 120 s");
    app.advance(Duration::from_secs(1));
    assert_eq!(app.deliver().await, 1);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn refused_deliveries_die_and_an_admin_can_retry_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such hook"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        webhook_room("ops", &server, "")
    ))
    .await;
    app.hook(alert("a", "error", "firing")).await;
    app.hook(alert("b", "error", "firing")).await;
    app.process().await;
    // A permanent refusal does not hold the line: T-2 still goes out.
    assert_eq!(app.deliver().await, 2);
    assert_eq!(events(&bodies(&server).await)[1], "T-2 opened");

    let dead: Value = app
        .api_get("/api/deliveries/dead", ADMIN)
        .await
        .json()
        .await
        .unwrap();
    let list = dead["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["room"], "ops");
    assert_eq!(list[0]["last_error"], "HTTP 404: no such hook");
    assert!(app
        .timeline_kinds("T-1")
        .await
        .contains(&"delivery_dead".to_string()));
    assert_eq!(
        app.api_get("/api/deliveries/dead", EDITOR).await.status(),
        403
    );

    let id = list[0]["id"].as_i64().unwrap();
    assert_eq!(
        app.api_post(&format!("/api/deliveries/{id}/retry"), EDITOR, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.api_post(&format!("/api/deliveries/{id}/retry"), ADMIN, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.api_post(&format!("/api/deliveries/{id}/retry"), ADMIN, None)
            .await
            .status(),
        404
    );
    let retried = app.timeline("T-1").await;
    let retried = retried.last().unwrap();
    assert_eq!(retried["actor"], "member:alice");
    assert!(
        retried["text"].as_str().unwrap().contains("back in line"),
        "{retried}"
    );
    assert_eq!(app.deliver().await, 1);
    assert_eq!(events(&bodies(&server).await)[2], "T-1 opened");
    let dead: Value = app
        .api_get("/api/deliveries/dead", ADMIN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dead["deliveries"], json!([]));
}

#[tokio::test]
async fn deliveries_due_while_tocsin_was_down_are_sent_after_a_restart() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        webhook_room("ops", &server, "")
    ))
    .await;
    app.hook(alert("a", "error", "firing")).await;
    app.hook(alert("b", "error", "firing")).await;
    app.process().await;
    // Stopped before the outbox ran: the deliveries are only in the database.
    let app = app.restart().await;
    app.advance(Duration::from_secs(600));
    assert_eq!(app.deliver().await, 2);
    assert_eq!(events(&bodies(&server).await), ["T-1 opened", "T-2 opened"]);
}

#[tokio::test]
async fn a_storm_becomes_digests_within_the_rate_and_every_ticket_is_accounted_for() {
    const ALERTS: usize = 5000;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let app = spawn_app_with(&format!(
        "rooms:\n{}routes:\n  - rooms: [ops]\n",
        webhook_room("ops", &server, "rate_limit: {per_second: 1, burst: 5}\n    digest: {after: 30s, interval: 10s, top: 5}")
    ))
    .await;
    // The storm arrives over ten seconds while the outbox runs, one step per simulated second.
    let mut sent_at: Vec<usize> = Vec::new();
    for second in 0..120 {
        if second < ALERTS / 500 {
            let batch: Vec<Value> = (0..500)
                .map(|i| {
                    let sev = if i % 7 == 0 { "critical" } else { "warning" };
                    alert(&format!("host-{}", second * 500 + i), sev, "firing")
                })
                .collect();
            assert_eq!(app.hook(Value::Array(batch)).await.status(), 202);
            app.process().await;
        }
        let before = server.received_requests().await.unwrap().len();
        app.deliver().await;
        sent_at.push(server.received_requests().await.unwrap().len() - before);
        app.advance(Duration::from_secs(1));
    }
    // Never more than the rate: the burst at most in any second, and burst + rate·t over any t seconds.
    for (start, _) in sent_at.iter().enumerate() {
        let mut sum = 0;
        for (t, n) in sent_at[start..].iter().enumerate() {
            sum += n;
            assert!(
                sum <= 5 + t,
                "{sum} messages in {} s from second {start}: {sent_at:?}",
                t + 1
            );
        }
    }
    let all = bodies(&server).await;
    let digests: Vec<&Value> = all.iter().filter(|b| b["type"] == "digest").collect();
    let singles = all.iter().filter(|b| b["type"] == "ticket").count();
    assert!(!digests.is_empty(), "the room went into digest mode");
    assert!(
        singles <= 5,
        "only the burst went out one by one: {singles}"
    );
    // Every ticket is in a message of its own or counted in a digest (digests without edits carry what
    // changed since the previous one).
    let counted: u64 = digests
        .iter()
        .map(|d| d["digest"]["changes"].as_u64().unwrap())
        .sum();
    assert_eq!(counted as usize + singles, ALERTS);
    let firing: u64 = digests
        .iter()
        .map(|d| d["digest"]["firing"].as_u64().unwrap())
        .sum();
    assert_eq!(firing as usize + singles, ALERTS);
    // The most severe come first in a digest.
    assert_eq!(digests[0]["digest"]["top"][0]["severity"], "critical");
    assert!(digests[0]["digest"]["more"].as_u64().unwrap() > 0);

    // And each ticket's timeline says which.
    let mut how: BTreeMap<String, usize> = BTreeMap::new();
    for n in [1, 2, 2500, 5000] {
        let kinds: BTreeSet<String> = app
            .timeline_kinds(&format!("T-{n}"))
            .await
            .into_iter()
            .collect();
        let which = if kinds.contains("delivered") {
            "delivered"
        } else if kinds.contains("digested") {
            "digested"
        } else {
            "none"
        };
        *how.entry(which.into()).or_default() += 1;
    }
    assert_eq!(how.get("none"), None, "{how:?}");

    // The storm is over once the backlog is gone: a new alert goes out on its own.
    app.advance(Duration::from_secs(60));
    app.hook(alert("after-the-storm", "critical", "firing"))
        .await;
    app.process().await;
    app.deliver().await;
    let last = bodies(&server).await.pop().unwrap();
    assert_eq!(last["type"], "ticket");
    assert_eq!(last["ticket"]["title"], "after-the-storm");
}

#[tokio::test]
async fn sources_over_their_rate_limit_are_told_to_come_back() {
    let app = spawn_app_sources(
        "sources:\n  \
           hooks: {kind: generic, rate_limit: {per_second: 1, burst: 2}}\n  \
           am: {kind: alertmanager, rate_limit: {per_second: 1, burst: 1}}\n",
        "",
    )
    .await;
    let send = |path: &'static str, body: Value| {
        let app = &app;
        async move { app.post(path, &body, &[]).await }
    };
    assert_eq!(
        send("/ingest/hooks", alert("a", "error", "firing"))
            .await
            .status(),
        202
    );
    assert_eq!(
        send("/ingest/hooks", alert("b", "error", "firing"))
            .await
            .status(),
        202
    );
    let r = send("/ingest/hooks", alert("c", "error", "firing")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("rate limit"),
        "{body}"
    );
    app.advance(Duration::from_secs(1));
    assert_eq!(
        send("/ingest/hooks", alert("c", "error", "firing"))
            .await
            .status(),
        202
    );

    let am = json!({"version": "4", "status": "firing", "receiver": "tocsin", "groupKey": "g", "alerts": [
        {"status": "firing", "labels": {"alertname": "X"}, "annotations": {}, "startsAt": "2026-11-22T11:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"}]});
    assert_eq!(send("/ingest/am", am.clone()).await.status(), 200);
    assert_eq!(
        send("/ingest/am", am).await.status(),
        503,
        "Alertmanager retries 5xx, not 4xx"
    );
}

#[tokio::test]
async fn room_and_route_mistakes_are_named_in_the_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let yaml = config_yaml(
        &db,
        "rooms:\n  ops:\n    sink: {kind: slack, token: xoxb-1}\n    members: [zed]\n    rate_limit: {per_second: 0}\n\
         routes:\n  - rooms: [nowhere]\n    mention: [nobody]\n    match_re: {host: \"(\"}\n",
    );
    let err = tocsin::config::Config::from_yaml(&yaml, &dir.path().join("t.yaml"))
        .unwrap_err()
        .to_string();
    for needle in [
        "rooms.ops.sink.channel",
        "rooms.ops.members",
        "rooms.ops.rate_limit",
        "routes[0].rooms",
        "routes[0].mention",
        "routes[0].match_re.host",
    ] {
        assert!(err.contains(needle), "{needle} missing from:\n{err}");
    }
    let unknown = config_yaml(
        &db,
        "rooms:\n  ops:\n    sink: {kind: webhook, url: \"http://x\", colour: red}\n",
    );
    let err = tocsin::config::Config::from_yaml(&unknown, &dir.path().join("t.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("colour"), "{err}");
}

#[tokio::test]
async fn alert_text_never_pings_or_brings_markup_on_any_platform() {
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "channel": "C1", "ts": "1.2"})),
        )
        .mount(&slack)
        .await;
    let mattermost = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&mattermost)
        .await;
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1100000000000000042"})),
        )
        .mount(&discord)
        .await;
    let teams = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&teams)
        .await;
    let app = spawn_app_sources(
        "sources:\n  hooks: {kind: generic}\n",
        &format!(
            "rooms:\n  \
               s: {{sink: {{kind: slack, token: xoxb-1, channel: C1, api_url: \"{}\"}}}}\n  \
               m: {{sink: {{kind: mattermost, webhook_url: \"{}/hooks/x\"}}}}\n  \
               d: {{sink: {{kind: discord, webhook_url: \"{}/api/webhooks/1/t\"}}}}\n  \
               t: {{sink: {{kind: teams, webhook_url: \"{}/workflows/x\"}}}}\n\
             routes:\n  - rooms: [s, m, d, t]\n",
            slack.uri(),
            mattermost.uri(),
            discord.uri(),
            teams.uri()
        ),
    )
    .await;
    let hostile = json!({
        "title": "<!channel> @here @everyone @room <b>bold</b> <script>alert(1)</script>",
        "status": "firing", "severity": "critical",
        "labels": {"host": "<img src=x onerror=alert(1)>", "team": "@channel"},
        "annotations": {"summary": "<!here> @all <@U999> <a href=\"https://evil.example\">x</a>"},
        "description": "@here <!everyone> <i>it</i>"
    });
    assert_eq!(app.post("/ingest/hooks", &hostile, &[]).await.status(), 202);
    app.process().await;
    assert_eq!(app.deliver().await, 4);
    for (name, server) in [
        ("slack", &slack),
        ("mattermost", &mattermost),
        ("discord", &discord),
        ("teams", &teams),
    ] {
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "{name}");
        let body = String::from_utf8_lossy(&requests[0].body).to_string();
        for bad in [
            "<!channel>",
            "<!here",
            "<!everyone",
            "@here",
            "@everyone",
            "@channel",
            "@room",
            "@all",
            "<@U999>",
            "<b>",
            "<i>",
            "<script",
            "<img",
            "<a href",
        ] {
            assert!(!body.contains(bad), "{name} body contains {bad}: {body}");
        }
        // The text is still there for people to read.
        assert!(body.contains("bold"), "{name}: {body}");
    }
    let discord_body: Value =
        serde_json::from_slice(&discord.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(discord_body["allowed_mentions"]["parse"], json!([]));
}

#[tokio::test]
async fn on_a_platform_that_edits_a_storm_keeps_one_digest_message_up_to_date() {
    let discord = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1100000000000000042"})),
        )
        .mount(&discord)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/api/webhooks/1/t/messages/1100000000000000042"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "1100000000000000042"})),
        )
        .mount(&discord)
        .await;
    let app = spawn_app_sources(
        "sources:\n  hooks: {kind: generic}\n",
        &format!(
            "rooms:\n  d:\n    sink: {{kind: discord, webhook_url: \"{}/api/webhooks/1/t\"}}\n    \
               rate_limit: {{per_second: 1, burst: 2}}\n    digest: {{after: 5s, interval: 10s}}\n\
             routes:\n  - rooms: [d]\n",
            discord.uri()
        ),
    )
    .await;
    for wave in 0..3 {
        let batch: Vec<Value> = (0..50)
            .map(|i| alert(&format!("w{wave}-h{i}"), "critical", "firing"))
            .collect();
        app.post("/ingest/hooks", &Value::Array(batch), &[]).await;
        app.process().await;
        app.deliver().await;
        app.advance(Duration::from_secs(10));
    }
    let requests = discord.received_requests().await.unwrap();
    let methods: Vec<String> = requests.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(
        methods,
        ["POST", "PATCH", "PATCH"],
        "one storm message, then edits"
    );
    let last: Value = serde_json::from_slice(&requests[2].body).unwrap();
    let text = last.to_string();
    assert!(
        text.contains("150"),
        "the last edit sums up all 150 tickets: {text}"
    );
}

/// A room whose platform stops answering holds up only itself: with the server's own loop running, a
/// second room gets every message while the first room's request still hangs (its receiver answers
/// only when the test lets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_stuck_on_a_slow_platform_does_not_hold_up_another() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let fast = receiver().await;
    // The slow platform: takes each request, then answers only once released.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow_url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (r, t) = (Arc::clone(&release), Arc::clone(&taken));
    let slow = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let (r, t) = (Arc::clone(&r), Arc::clone(&t));
            async move {
                t.fetch_add(1, Ordering::SeqCst);
                r.acquire().await.unwrap().forget();
                "ok"
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, slow).await.unwrap() });
    let app = spawn_app_with(&format!(
        "rooms:\n  slow:\n    sink: {{kind: webhook, url: \"{slow_url}\", timeout: 5m}}\n{}\
         routes:\n  - rooms: [slow, fast]\n",
        webhook_room("fast", &fast, ""),
    ))
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The server's loops as `serve` runs them: the lease keeper (on PostgreSQL the rooms are sent only
    // under their leases) and the outbox.
    let keeper =
        tokio::spawn(Arc::clone(&app.app.cluster).run(stopped.clone(), std::future::ready(())));
    let sender = tokio::spawn(
        std::sync::Arc::clone(&app.app.outbox).run(Arc::clone(&app.app.cluster), stopped),
    );

    app.hook(alert("first", "warning", "firing")).await;
    app.process().await;
    until(&app, "the slow room's first request", || {
        taken.load(Ordering::SeqCst) == 1
    })
    .await;
    for name in ["second", "third"] {
        app.hook(alert(name, "warning", "firing")).await;
    }
    app.process().await;
    for _ in 0..1500 {
        if events(&bodies(&fast).await) == ["T-1 opened", "T-2 opened", "T-3 opened"] {
            break;
        }
        app.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        events(&bodies(&fast).await),
        ["T-1 opened", "T-2 opened", "T-3 opened"]
    );
    // The slow room is still in its first request.
    assert_eq!(taken.load(Ordering::SeqCst), 1);

    release.add_permits(100);
    until(&app, "the slow room catching up", || {
        taken.load(Ordering::SeqCst) == 3
    })
    .await;
    stop.send(true).unwrap();
    sender.await.unwrap();
    keeper.await.unwrap();
    server.abort();
}

/// Polls `done` (every 20 ms, up to 30 s) for something the server's own loops do, moving the clock a
/// second each time so rate limits refill (a sender taking a room starts with an empty bucket).
async fn until(app: &TestApp, what: &str, done: impl Fn() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        app.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gave up waiting for {what}");
}
