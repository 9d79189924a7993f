//! Every auth method on every source kind, with no credentials, wrong ones and the right ones: the first
//! two are refused and make no ticket, the last is accepted and makes one. Combinations a sender cannot
//! use are refused by the config check instead (`tocsin check` runs the same validation).

mod common;

use common::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "s3cret-for-the-auth-matrix-0001";
const KINDS: [&str; 11] = [
    "prometheus",
    "alertmanager",
    "generic",
    "grafana",
    "sentry",
    "pagerduty",
    "datadog",
    "newrelic",
    "zabbix",
    "uptime_kuma",
    "sns",
];
const METHODS: [&str; 4] = ["bearer", "basic", "token", "hmac"];

/// Whether a sender of this kind can use this method at all; `tocsin check` refuses the others.
fn applies(kind: &str, method: &str) -> bool {
    match kind {
        // Sentry signs every webhook with the integration's secret: nothing else is enough.
        "sentry" => method == "hmac",
        // SNS can put basic credentials or a query token in the subscription URL, nothing else.
        "sns" => matches!(method, "basic" | "token"),
        _ => true,
    }
}

fn auth_yaml(method: &str) -> String {
    match method {
        "bearer" => format!("{{bearer: {SECRET}}}"),
        "basic" => format!("{{basic: {{username: sender, password: {SECRET}}}}}"),
        "token" => format!("{{token: {SECRET}}}"),
        "hmac" => format!("{{hmac: {SECRET}}}"),
        _ => unreachable!(),
    }
}

fn fixture(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One valid payload of the kind; for PagerDuty, with `routing_key` when given.
fn body(kind: &str, routing_key: Option<&str>) -> Vec<u8> {
    match kind {
        "prometheus" => br#"[{"labels": {"alertname": "AuthMatrix"}}]"#.to_vec(),
        "alertmanager" => br#"{"version": "4", "status": "firing", "receiver": "tocsin", "groupKey": "g",
            "alerts": [{"status": "firing", "labels": {"alertname": "AuthMatrix"}, "annotations": {},
            "startsAt": "2026-11-22T11:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}]}"#
            .to_vec(),
        "generic" => {
            br#"{"title": "auth matrix", "status": "firing", "labels": {"host": "db1"}}"#.to_vec()
        }
        "grafana" => fixture("examples/payloads/grafana/firing.json"),
        "sentry" => fixture("examples/payloads/sentry/metric_alert_critical.json"),
        "pagerduty" => {
            let mut v: serde_json::Value =
                serde_json::from_slice(&fixture("examples/payloads/pagerduty/trigger.json"))
                    .unwrap();
            if let Some(key) = routing_key {
                v["routing_key"] = key.into();
            }
            v.to_string().into_bytes()
        }
        "datadog" => fixture("examples/payloads/datadog/triggered.json"),
        "newrelic" => fixture("examples/payloads/newrelic/activated.json"),
        "zabbix" => fixture("examples/payloads/zabbix/problem.json"),
        "uptime_kuma" => fixture("examples/payloads/uptime_kuma/down.json"),
        "sns" => fixture("examples/payloads/sns/notification_alarm.json"),
        _ => unreachable!(),
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Creds {
    None,
    Wrong,
    Right,
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn send(app: &TestApp, kind: &str, method: &str, creds: Creds) -> reqwest::Response {
    use base64::Engine as _;
    let secret = match creds {
        Creds::Right => SECRET,
        _ => "wrong-secret-of-the-same-length",
    };
    // PagerDuty's key travels in the body as `routing_key`.
    let key_in_body = kind == "pagerduty" && method == "token";
    let body = body(
        kind,
        match (key_in_body, creds) {
            (false, _) => None,
            (true, Creds::None) => Some(""),
            (true, _) => Some(secret),
        },
    );
    let mut url = format!("{}/ingest/{kind}-{method}", app.base);
    let content_type = if kind == "sns" {
        "text/plain; charset=UTF-8"
    } else {
        "application/json"
    };
    let mut req = app.client.post(&url).header("content-type", content_type);
    if kind == "sentry" {
        req = req.header("sentry-hook-resource", "metric_alert").header(
            "sentry-hook-timestamp",
            (app.now().as_millis() / 1000).to_string(),
        );
    }
    if creds != Creds::None && !key_in_body {
        req = match method {
            "bearer" => req.bearer_auth(secret),
            "basic" => req.header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("sender:{secret}"))
                ),
            ),
            "token" if kind == "sns" => {
                // SNS cannot set headers: the token is in the subscription URL.
                url.push_str(&format!("?token={secret}"));
                app.client.post(&url).header("content-type", content_type)
            }
            "token" => req.header("x-tocsin-token", secret),
            "hmac" => {
                let header = match kind {
                    "grafana" => "x-grafana-alerting-signature",
                    "sentry" => "sentry-hook-signature",
                    _ => "x-tocsin-signature",
                };
                req.header(header, hmac_hex(secret, &body))
            }
            _ => unreachable!(),
        };
    }
    req.body(body).send().await.unwrap()
}

#[tokio::test]
async fn every_auth_method_is_enforced_on_every_source_kind() {
    let mut sources = String::from("sources:\n");
    for kind in KINDS {
        for method in METHODS.iter().filter(|m| applies(kind, m)) {
            sources.push_str(&format!(
                "  {kind}-{method}: {{kind: {kind}, auth: {}}}\n",
                auth_yaml(method)
            ));
        }
    }
    let app = spawn_app_sources(&sources, "").await;
    // The certificate SNS would serve for the signed fixture (tests cannot reach AWS).
    app.app.ingest.sns.certs.insert(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem",
        fixture("tests/fixtures/sns/test-cert.pem"),
    );

    let cases: Vec<(&str, &str)> = KINDS
        .iter()
        .flat_map(|k| METHODS.iter().map(move |m| (*k, *m)))
        .filter(|(k, m)| applies(k, m))
        .collect();
    for &(kind, method) in &cases {
        for creds in [Creds::None, Creds::Wrong] {
            let r = send(&app, kind, method, creds).await;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            // PagerDuty answers a bad routing key as PagerDuty does: 400 "Invalid routing key".
            let refused = if kind == "pagerduty" && method == "token" {
                status == 400 && text.contains("Invalid routing key")
            } else {
                status == 401
            };
            assert!(refused, "{kind} × {method} × {creds:?}: {status} {text}");
        }
    }
    app.process().await;
    assert_eq!(
        app.tickets().await,
        Vec::<serde_json::Value>::new(),
        "refused requests made tickets"
    );

    for &(kind, method) in &cases {
        let r = send(&app, kind, method, Creds::Right).await;
        let status = r.status().as_u16();
        assert!(
            (200..300).contains(&status),
            "{kind} × {method} × Right: {status} {}",
            r.text().await.unwrap()
        );
    }
    app.process().await;
    // Sources whose right request opened tickets (Grafana's fixture holds two alerts).
    let opened: std::collections::BTreeSet<String> = app
        .tickets()
        .await
        .iter()
        .map(|t| t["source"].as_str().unwrap().to_string())
        .collect();
    let expected: std::collections::BTreeSet<String> =
        cases.iter().map(|(k, m)| format!("{k}-{m}")).collect();
    assert_eq!(opened, expected);
}

#[test]
fn methods_a_sender_cannot_use_are_refused_by_the_check() {
    for kind in KINDS {
        for method in METHODS.iter().filter(|m| !applies(kind, m)) {
            let yaml = format!(
                "sources:\n  s: {{kind: {kind}, auth: {}}}\n",
                auth_yaml(method)
            );
            let err = tocsin::config::Config::from_yaml(&yaml, std::path::Path::new("t.yaml"))
                .expect_err(&format!("{kind} × {method} passed the check"));
            assert!(err.to_string().contains("sources.s.auth"), "{err}");
        }
    }
}

#[tokio::test]
async fn unauthenticated_posts_do_not_use_up_a_senders_rate_limit() {
    let mut sources = String::from("sources:\n");
    for (kind, method) in [
        ("grafana", "hmac"),
        ("pagerduty", "token"),
        ("generic", "bearer"),
    ] {
        sources.push_str(&format!(
            "  {kind}-{method}: {{kind: {kind}, auth: {}, rate_limit: {{per_second: 0.001, burst: 1}}}}\n",
            auth_yaml(method)
        ));
    }
    let app = spawn_app_sources(&sources, "").await;
    for (kind, method) in [
        ("grafana", "hmac"),
        ("pagerduty", "token"),
        ("generic", "bearer"),
    ] {
        for _ in 0..5 {
            let status = send(&app, kind, method, Creds::Wrong).await.status();
            assert!(matches!(status.as_u16(), 400 | 401), "{kind}: {status}");
        }
        let r = send(&app, kind, method, Creds::Right).await;
        assert!(
            r.status().is_success(),
            "{kind}: {} {}",
            r.status(),
            r.text().await.unwrap()
        );
        // The budget is real: the next right one is over it.
        let over = send(&app, kind, method, Creds::Right)
            .await
            .status()
            .as_u16();
        assert!(matches!(over, 429 | 503), "{kind}: {over}");
    }
}

#[tokio::test]
async fn sentry_needs_its_timestamp_and_a_replay_with_a_fresh_one_is_refused() {
    let app = spawn_app_sources(
        &format!(
            "sources:\n  sentry-hmac: {{kind: sentry, auth: {}}}\n",
            auth_yaml("hmac")
        ),
        "",
    )
    .await;
    let body = body("sentry", None);
    let post = |ts: Option<String>| {
        let mut req = app
            .client
            .post(format!("{}/ingest/sentry-hmac", app.base))
            .header("content-type", "application/json")
            .header("sentry-hook-resource", "metric_alert")
            .header("sentry-hook-signature", hmac_hex(SECRET, &body));
        if let Some(ts) = ts {
            req = req.header("sentry-hook-timestamp", ts);
        }
        req.body(body.clone()).send()
    };
    let now = || (app.now().as_millis() / 1000).to_string();
    // Without the timestamp nothing bounds a captured request.
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some(now())).await.unwrap().status(), 202);
    // Sentry does not sign its timestamp: the same signature with a new one, an hour later, is a replay.
    app.advance(std::time::Duration::from_secs(3600));
    assert_eq!(post(Some(now())).await.unwrap().status(), 401);
}

#[tokio::test]
async fn credential_guessers_are_throttled_per_source_and_address() {
    let app = spawn_app_sources(
        &format!(
            "sources:\n  generic-bearer: {{kind: generic, auth: {}}}\n  generic-token: {{kind: generic, auth: {}}}\n",
            auth_yaml("bearer"),
            auth_yaml("token")
        ),
        "",
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            send(&app, "generic", "bearer", Creds::Wrong).await.status(),
            401
        );
    }
    // From now on even the right token is refused, so a guess that was right cannot be told apart.
    let r = send(&app, "generic", "bearer", Creds::Right).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // Another source is not affected.
    assert_eq!(
        send(&app, "generic", "token", Creds::Right).await.status(),
        202
    );
    app.advance(std::time::Duration::from_secs(15 * 60));
    assert_eq!(
        send(&app, "generic", "bearer", Creds::Right).await.status(),
        202
    );
}
