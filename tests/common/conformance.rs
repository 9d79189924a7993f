//! The conformance suite every sink passes against wiremock: success, 429 with each retry header the
//! platform uses, 5xx, timeout, permanent 4xx, idempotency where the platform offers it, and alert text
//! that tries to ping everyone.

use std::sync::Arc;
use std::time::Duration;

use tocsin::config::SinkConfig;
use tocsin::domain::alert::{Labels, Severity};
use tocsin::domain::message::{Change, Content, Mention, TicketMessage};
use tocsin::domain::ticket::TicketState;
use tocsin::domain::time::Timestamp;
use tocsin::sinks::{self, http::Client, Action, Outcome, Request, Sink};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// What a platform's suite needs to know.
pub struct Platform {
    /// The sink's YAML config, pointed at the mock server's base URL. Give it `timeout: 500ms`.
    pub config: fn(base: &str) -> String,
    /// The documented success answer to a new message.
    pub ok: fn() -> ResponseTemplate,
    /// The handle the sink should report for `ok` (`None` if the platform returns none).
    pub handle: Option<&'static str>,
    /// Documented 429 answers, each with the wait the sink must read from it.
    pub rate_limited: Vec<(ResponseTemplate, Duration)>,
    /// A documented permanent error (a 4xx, or Slack's `200 ok:false`).
    pub permanent: ResponseTemplate,
    /// For platforms with idempotent sends: reads the idempotency key from a request.
    pub idempotency_key: Option<fn(&wiremock::Request) -> String>,
    /// Whether the sink renders text for people (the plain webhook sink passes data through as-is).
    pub renders_text: bool,
    /// Markup from the hostile message that must not appear in this platform's request body, e.g.
    /// `<b>` for HTML formats or `<@U999>` for Slack. Pings are checked for every platform.
    pub forbidden: &'static [&'static str],
}

pub fn sink(config: &str) -> Arc<dyn Sink> {
    let cfg: SinkConfig = serde_yaml::from_str(config).expect("sink config");
    sinks::build(&cfg, &Client::new()).expect("sink builds")
}

/// A ticket message whose alert text tries every trick.
pub fn hostile_message() -> Content {
    Content::Ticket(TicketMessage {
        ticket_id: "0190f0c4-aaaa-7bbb-8ccc-000000000042".into(),
        number: 42,
        title: "<!channel> @here @everyone @room <b>disk</b> *full* <script>x()</script>".into(),
        state: TicketState::Open,
        severity: Severity::Critical,
        source: "prom".into(),
        labels: Labels::from([
            ("alertname".into(), "DiskFull @channel".into()),
            ("instance".into(), "<img src=x onerror=alert(1)>".into()),
        ]),
        summary: Some("[click](https://evil.example) @all <!here> <@U999>".into()),
        link: "http://tocsin.test/tickets/T-42".into(),
        change: Change::Opened,
        mentions: vec![],
        at: Timestamp::from_millis(1_700_000_000_000),
    })
}

/// A plain ticket message mentioning alice.
pub fn message(change: Change, state: TicketState) -> Content {
    Content::Ticket(TicketMessage {
        ticket_id: "0190f0c4-aaaa-7bbb-8ccc-000000000007".into(),
        number: 7,
        title: "Disk full on db1".into(),
        state,
        severity: Severity::Critical,
        source: "prom".into(),
        labels: Labels::from([("alertname".into(), "DiskFull".into())]),
        summary: None,
        link: "http://tocsin.test/tickets/T-7".into(),
        change,
        mentions: vec![Mention::Member {
            name: "alice".into(),
            handle: Some("HANDLE-ALICE".into()),
        }],
        at: Timestamp::from_millis(1_700_000_000_000),
    })
}

pub fn post(content: Content, key: &str) -> Request {
    Request {
        action: Action::Post { thread: None },
        content,
        idempotency_key: key.into(),
    }
}

async fn answered_with(p: &Platform, answer: ResponseTemplate, request: &Request) -> Outcome {
    let server = MockServer::start().await;
    Mock::given(any()).respond_with(answer).mount(&server).await;
    let sink = sink(&(p.config)(&server.uri()));
    sink.send(request).await
}

/// Runs the whole suite.
pub async fn run(p: Platform) {
    let request = post(message(Change::Opened, TicketState::Open), "delivery-1");

    // Success, with the platform's handle.
    match answered_with(&p, (p.ok)(), &request).await {
        Outcome::Sent { handle, .. } => assert_eq!(handle.as_deref(), p.handle, "handle"),
        other => panic!("success answer gave {other:?}"),
    }

    // 429: retry after the wait the platform asked for.
    for (answer, wait) in &p.rate_limited {
        match answered_with(&p, answer.clone(), &request).await {
            Outcome::Retry { after, .. } => assert_eq!(after, Some(*wait), "429 wait"),
            other => panic!("429 gave {other:?}"),
        }
    }

    // 5xx: retry.
    for status in [500, 502, 503] {
        let outcome = answered_with(&p, ResponseTemplate::new(status), &request).await;
        assert!(
            matches!(outcome, Outcome::Retry { .. }),
            "{status} gave {outcome:?}"
        );
    }

    // A server that does not answer in time: retry.
    let slow = (p.ok)().set_delay(Duration::from_secs(3));
    let outcome = answered_with(&p, slow, &request).await;
    match &outcome {
        Outcome::Retry { error, .. } => assert!(error.contains("timed out"), "{error}"),
        other => panic!("timeout gave {other:?}"),
    }

    // Nothing listening: retry.
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let outcome = sink(&(p.config)(&closed)).send(&request).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");

    // The documented permanent error.
    let outcome = answered_with(&p, p.permanent.clone(), &request).await;
    assert!(
        matches!(outcome, Outcome::Permanent { .. }),
        "permanent error gave {outcome:?}"
    );

    // Idempotency: two sends of one delivery carry the same key; another delivery carries another.
    if let Some(key_of) = p.idempotency_key {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with((p.ok)())
            .mount(&server)
            .await;
        let s = sink(&(p.config)(&server.uri()));
        s.send(&request).await;
        s.send(&request).await;
        s.send(&post(
            message(Change::Opened, TicketState::Open),
            "delivery-2",
        ))
        .await;
        let seen: Vec<String> = server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(key_of)
            .collect();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], seen[1], "a retry must reuse its key");
        assert_ne!(seen[0], seen[2], "another delivery needs another key");
    }

    // Alert text never pings and never brings markup.
    if p.renders_text {
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with((p.ok)())
            .mount(&server)
            .await;
        let s = sink(&(p.config)(&server.uri()));
        s.send(&post(hostile_message(), "delivery-3")).await;
        let requests = server.received_requests().await.unwrap();
        let body = String::from_utf8_lossy(&requests[0].body).to_string();
        let pings = [
            "<!channel>",
            "<!here",
            "@here",
            "@everyone",
            "@channel",
            "@room",
            "@all",
        ];
        for bad in pings.iter().chain(p.forbidden) {
            assert!(!body.contains(bad), "body contains {bad}: {body}");
        }
    }
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
