//! Sources beyond tocsin's own formats, through HTTP: signatures checked over the raw body (good,
//! bad, missing, stale), PagerDuty's Events API v2 as a drop-in target, and every fixture in
//! examples/payloads accepted by its kind. What each payload yields is tested next to its parser.

mod common;

use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SOURCES: &str = "sources:\n  \
    graf: {kind: grafana, auth: {hmac: graf-secret}}\n  \
    graf-ts: {kind: grafana, auth: {hmac: {secrets: [old-secret, new-secret], header: X-Sig, timestamp_header: X-Sig-Timestamp}}}\n  \
    sentry: {kind: sentry, auth: {hmac: sentry-client-secret}}\n  \
    pd: {kind: pagerduty}\n  \
    pd-keyed: {kind: pagerduty, auth: {token: R0UTINGKEY0123456789ABCDEFGHIJKL}}\n  \
    datadog: {kind: datadog}\n  \
    newrelic: {kind: newrelic}\n  \
    zabbix: {kind: zabbix}\n  \
    kuma: {kind: uptime_kuma}\n";

fn payload(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/payloads")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn sign(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Unix seconds of the manual clock.
fn now_secs(app: &TestApp) -> i64 {
    app.now().as_millis() / 1000
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

async fn send(
    app: &TestApp,
    source: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(format!("{}/ingest/{source}", app.base))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn grafana_signatures_are_checked_over_the_raw_body() {
    let app = spawn_app_sources(SOURCES, "").await;
    let body = payload("grafana/firing.json");
    let good = sign("graf-secret", &[&body]);

    let r = send(&app, "graf", &body, &[]).await;
    assert_eq!(r.status(), 401, "missing signature");
    let r = send(
        &app,
        "graf",
        &body,
        &[("X-Grafana-Alerting-Signature", &sign("wrong", &[&body]))],
    )
    .await;
    assert_eq!(r.status(), 401, "bad signature");
    assert_eq!(expect(r, 401).await["error"], "unauthorized");

    // The same JSON, re-serialised: the signature was over the bytes sent, so this must fail.
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_ne!(reserialised, body);
    let r = send(
        &app,
        "graf",
        &reserialised,
        &[("X-Grafana-Alerting-Signature", &good)],
    )
    .await;
    assert_eq!(r.status(), 401);

    let r = send(
        &app,
        "graf",
        &body,
        &[("X-Grafana-Alerting-Signature", &good)],
    )
    .await;
    assert_eq!(r.status(), 202);
    // Grafana's code uses the other header name: it is tried too.
    let r = send(&app, "graf", &body, &[("X-Grafana-Alert-Signature", &good)]).await;
    assert_eq!(r.status(), 202);
    app.process().await;
    assert!(!app.tickets().await.is_empty());
}

#[tokio::test]
async fn timestamped_signatures_refuse_stale_and_accept_either_rotated_secret() {
    let app = spawn_app_sources(SOURCES, "").await;
    let body = payload("grafana/firing.json");
    let ts = now_secs(&app).to_string();
    for secret in ["old-secret", "new-secret"] {
        let sig = sign(secret, &[ts.as_bytes(), b":", &body]);
        let r = send(
            &app,
            "graf-ts",
            &body,
            &[("X-Sig", &sig), ("X-Sig-Timestamp", &ts)],
        )
        .await;
        assert_eq!(r.status(), 202, "signed with {secret}");
    }
    // Signed over the body alone: the timestamp is part of what is signed.
    let r = send(
        &app,
        "graf-ts",
        &body,
        &[
            ("X-Sig", &sign("new-secret", &[&body])),
            ("X-Sig-Timestamp", &ts),
        ],
    )
    .await;
    assert_eq!(r.status(), 401);
    // Ten minutes old, correctly signed: stale.
    let old = (now_secs(&app) - 600).to_string();
    let sig = sign("new-secret", &[old.as_bytes(), b":", &body]);
    let r = send(
        &app,
        "graf-ts",
        &body,
        &[("X-Sig", &sig), ("X-Sig-Timestamp", &old)],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(expect(r, 401).await["detail"]
        .as_str()
        .unwrap()
        .contains("stale"));
    // No timestamp at all.
    let r = send(&app, "graf-ts", &body, &[("X-Sig", &sig)]).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn sentry_webhooks_need_a_fresh_valid_signature_and_an_issue_resolves_its_ticket() {
    let app = spawn_app_sources(SOURCES, "").await;
    let body = payload("sentry/event_alert.json");
    let ts = now_secs(&app).to_string();
    let good = sign("sentry-client-secret", &[&body]);
    let hook = |sig: &str, ts: &str| {
        vec![
            (
                "Sentry-Hook-Resource".to_string(),
                "event_alert".to_string(),
            ),
            ("Sentry-Hook-Signature".to_string(), sig.to_string()),
            ("Sentry-Hook-Timestamp".to_string(), ts.to_string()),
        ]
    };

    let r = send(
        &app,
        "sentry",
        &body,
        &[("Sentry-Hook-Resource", "event_alert")],
    )
    .await;
    assert_eq!(r.status(), 401, "missing signature");
    let bad = hook(&sign("other", &[&body]), &ts);
    assert_eq!(send(&app, "sentry", &body, &refs(&bad)).await.status(), 401);
    let stale = hook(&good, &(now_secs(&app) - 3600).to_string());
    assert_eq!(
        send(&app, "sentry", &body, &refs(&stale)).await.status(),
        401
    );

    let ok = hook(&good, &ts);
    assert_eq!(send(&app, "sentry", &body, &refs(&ok)).await.status(), 202);
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["state"], "open");

    // The issue resource for the same issue, resolved: only issues can resolve.
    let resolved = payload("sentry/issue_resolved.json");
    let sig = sign("sentry-client-secret", &[&resolved]);
    let r = send(
        &app,
        "sentry",
        &resolved,
        &[
            ("Sentry-Hook-Resource", "issue"),
            ("Sentry-Hook-Signature", &sig),
            ("Sentry-Hook-Timestamp", &ts),
        ],
    )
    .await;
    assert_eq!(r.status(), 202);
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0]["state"], "resolved");
}

#[test]
fn a_sentry_source_without_a_secret_is_a_config_error() {
    let yaml = "sources:\n  s: {kind: sentry}\n";
    let err = tocsin::config::Config::from_yaml(yaml, std::path::Path::new("t.yaml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sources.s.auth") && text.contains("hmac"),
        "{text}"
    );
}

async fn enqueue(app: &TestApp, source: &str, event: &Value) -> (u16, Value) {
    let r = app
        .client
        .post(format!("{}/ingest/{source}/v2/enqueue", app.base))
        .json(event)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn pagerduty_trigger_acknowledge_and_resolve_move_one_ticket_and_answer_like_pagerduty() {
    let app = spawn_app_sources(SOURCES, "").await;
    let trigger: Value = serde_json::from_slice(&payload("pagerduty/trigger.json")).unwrap();
    let key = trigger["dedup_key"].as_str().unwrap().to_string();

    let (status, body) = enqueue(&app, "pd", &trigger).await;
    assert_eq!(status, 202);
    assert_eq!(
        body,
        json!({"status": "success", "message": "Event processed", "dedup_key": key})
    );
    app.process().await;
    let t = &app.tickets().await[0];
    assert_eq!(t["state"], "open");
    assert_eq!(t["title"], trigger["payload"]["summary"]);

    let ack: Value = serde_json::from_slice(&payload("pagerduty/acknowledge.json")).unwrap();
    assert_eq!(ack["dedup_key"], key.as_str());
    let (status, body) = enqueue(&app, "pd", &ack).await;
    assert_eq!(
        (status, body["dedup_key"].as_str()),
        (202, Some(key.as_str()))
    );
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["state"], "acked");

    let resolve: Value = serde_json::from_slice(&payload("pagerduty/resolve.json")).unwrap();
    let (status, _) = enqueue(&app, "pd", &resolve).await;
    assert_eq!(status, 202);
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1, "one ticket moved through its states");
    assert_eq!(tickets[0]["state"], "resolved");
    let kinds = app.timeline_kinds("T-1").await;
    assert!(
        kinds.contains(&"acked".to_string()) && kinds.contains(&"resolved".to_string()),
        "{kinds:?}"
    );

    // A trigger without a dedup_key gets one, in the answer.
    let mut fresh = trigger.clone();
    fresh.as_object_mut().unwrap().remove("dedup_key");
    let (status, body) = enqueue(&app, "pd", &fresh).await;
    assert_eq!(status, 202);
    assert!(!body["dedup_key"].as_str().unwrap().is_empty());

    // Invalid events: 400 with PagerDuty's shape.
    let (status, body) = enqueue(&app, "pd", &json!({"routing_key": "x", "event_action": "trigger", "payload": {"source": "s", "severity": "info"}})).await;
    assert_eq!(status, 400);
    assert_eq!(body["status"], "invalid event");
    assert_eq!(body["message"], "Event object is invalid");
    assert!(!body["errors"].as_array().unwrap().is_empty(), "{body}");
    let (status, body) = enqueue(
        &app,
        "pd",
        &json!({"routing_key": "x", "event_action": "explode", "dedup_key": "k"}),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (400, Some("invalid event"))
    );

    // A source with a routing key takes only events for that key.
    let (status, body) = enqueue(&app, "pd-keyed", &trigger).await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0], "Invalid routing key");
    let mut keyed = trigger.clone();
    keyed["routing_key"] = json!("R0UTINGKEY0123456789ABCDEFGHIJKL");
    assert_eq!(enqueue(&app, "pd-keyed", &keyed).await.0, 202);

    // /v2/enqueue belongs to PagerDuty sources only.
    assert_eq!(enqueue(&app, "datadog", &trigger).await.0, 404);
}

#[tokio::test]
async fn every_fixture_is_accepted_by_its_kind() {
    let app = spawn_app_sources(SOURCES, "").await;
    for (source, file) in [
        ("datadog", "datadog/triggered.json"),
        ("datadog", "datadog/recovered.json"),
        ("newrelic", "newrelic/activated.json"),
        ("newrelic", "newrelic/closed.json"),
        ("zabbix", "zabbix/problem.json"),
        ("zabbix", "zabbix/recovery.json"),
        ("kuma", "uptime_kuma/down.json"),
        ("kuma", "uptime_kuma/up.json"),
    ] {
        let r = send(&app, source, &payload(file), &[]).await;
        assert_eq!(r.status(), 202, "{file}: {}", r.text().await.unwrap());
    }
    app.process().await;
    // Each sender's firing opened a ticket and its recovery resolved the same one.
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 4, "{tickets:#?}");
    assert!(
        tickets.iter().all(|t| t["state"] == "resolved"),
        "{tickets:#?}"
    );
}

/// What senders send after the first notification, from their own documented payloads: each lands
/// on the ticket the first one opened and changes it the way the sender meant.
#[tokio::test]
async fn senders_follow_ups_reach_the_ticket_the_first_notification_opened() {
    let app = spawn_app_sources(SOURCES, "").await;
    let post = |source: &'static str, body: Vec<u8>| {
        let app = &app;
        async move {
            let r = send(app, source, &body, &[]).await;
            assert_eq!(r.status(), 202, "{source}: {}", r.text().await.unwrap());
        }
    };
    let sentry = |body: Vec<u8>| {
        let app = &app;
        async move {
            let sig = sign("sentry-client-secret", &[&body]);
            let ts = now_secs(app).to_string();
            let headers = [
                ("Sentry-Hook-Resource", "metric_alert"),
                ("Sentry-Hook-Signature", sig.as_str()),
                ("Sentry-Hook-Timestamp", ts.as_str()),
            ];
            let r = send(app, "sentry", &body, &headers).await;
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        }
    };
    post("newrelic", payload("newrelic/activated.json")).await;
    post("zabbix", payload("zabbix/problem.json")).await;
    post("kuma", payload("uptime_kuma/certificate_expiry.json")).await;
    sentry(payload("sentry/metric_alert_critical.json")).await;
    app.process().await;
    post("newrelic", payload("newrelic/acknowledged.json")).await;
    post("zabbix", payload("zabbix/update.json")).await;
    sentry(payload("sentry/metric_alert_resolved.json")).await;
    app.process().await;

    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 4, "{tickets:#?}");
    let of = |source: &str| {
        tickets
            .iter()
            .find(|t| t["source"] == source)
            .unwrap_or_else(|| panic!("no {source} ticket"))
            .clone()
    };
    // New Relic's acknowledgement (ACTIVATED, USER_ACTION) acks.
    assert_eq!(of("newrelic")["state"], "acked");
    // Zabbix's update acks, raises the severity and leaves the comment as a note.
    let z = of("zabbix");
    assert_eq!(
        (&z["state"], &z["severity"]),
        (&json!("acked"), &json!("critical"))
    );
    let zid = z["id"].as_str().unwrap();
    assert_eq!(
        app.timeline_kinds(zid).await,
        ["opened", "acked", "severity_changed", "note"]
    );
    let note = &app.entries_of(zid, "note").await[0];
    assert_eq!(
        note["text"],
        "Alice Admin (alice) in Zabbix: Failing over to db-3; <b>do not restart</b> db-2"
    );
    assert_eq!(note["visibility"], "public");
    // Sentry's resolution lands on the firing's ticket, titled with the rule's name.
    let s = of("sentry");
    assert_eq!(
        (&s["state"], &s["title"]),
        (&json!("resolved"), &json!("Checkout p95 latency"))
    );
    // Uptime Kuma's certificate reminder is a warning until the certificate would expire.
    let k = of("kuma");
    assert_eq!(
        (&k["state"], &k["severity"]),
        (&json!("open"), &json!("warning"))
    );
    assert_eq!(
        k["title"],
        "Certificate api.example.com of Checkout API expires in 14 days"
    );

    // A week later, the 7-day reminder: the same ticket, with the new count and end.
    app.advance(std::time::Duration::from_secs(7 * 86_400));
    let week = String::from_utf8(payload("uptime_kuma/certificate_expiry.json"))
        .unwrap()
        .replace("14 days", "7 days");
    post("kuma", week.into_bytes()).await;
    app.process().await;
    let k = of_ticket(&app, "kuma").await;
    assert_eq!(
        k["title"],
        "Certificate api.example.com of Checkout API expires in 7 days"
    );
    assert_eq!(k["id"], of("kuma")["id"]);
    // No reminder after it (renewed, or Kuma's last threshold): resolved at the expiry.
    app.advance(std::time::Duration::from_secs(7 * 86_400 - 60));
    app.sweep().await;
    assert_eq!(of_ticket(&app, "kuma").await["state"], "open");
    app.advance(std::time::Duration::from_secs(61));
    app.sweep().await;
    assert_eq!(of_ticket(&app, "kuma").await["state"], "resolved");
}

async fn of_ticket(app: &TestApp, source: &str) -> Value {
    app.tickets()
        .await
        .into_iter()
        .find(|t| t["source"] == source)
        .unwrap_or_else(|| panic!("no {source} ticket"))
}

const SNS_CERT_URL: &str = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem";
const SNS_TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:tocsin-alarms";

fn sns_cert() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sns/test-cert.pem"),
    )
    .unwrap()
}

async fn sns_post(app: &TestApp, source: &str, body: &[u8]) -> reqwest::Response {
    app.client
        .post(format!("{}/ingest/{source}", app.base))
        // SNS's default content type for HTTP(S) subscriptions.
        .header("content-type", "text/plain; charset=UTF-8")
        .header("x-amz-sns-message-type", "Notification")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sns_messages_are_verified_and_cloudwatch_alarms_open_and_resolve_a_ticket() {
    let sources = format!(
        "sources:\n  aws: {{kind: sns, topics: [\"{SNS_TOPIC}\"]}}\n  other: {{kind: sns, topics: [\"arn:aws:sns:eu-west-1:123456789012:elsewhere\"]}}\n"
    );
    let app = spawn_app_sources(&sources, "").await;
    // The certificate SNS would serve, as if fetched before (tests cannot reach AWS).
    app.app.ingest.sns.certs.insert(SNS_CERT_URL, sns_cert());

    let alarm = payload("sns/notification_alarm.json");
    // A changed Message no longer matches the signature.
    let tampered = String::from_utf8(alarm.clone())
        .unwrap()
        .replacen("ALARM", "OK", 1);
    assert_eq!(
        sns_post(&app, "aws", tampered.as_bytes()).await.status(),
        401
    );
    // A certificate from anywhere but SNS is never fetched.
    let foreign = String::from_utf8(alarm.clone()).unwrap().replace(
        SNS_CERT_URL,
        "https://evil.example.com/SimpleNotificationService-test.pem",
    );
    assert_eq!(
        sns_post(&app, "aws", foreign.as_bytes()).await.status(),
        401
    );
    // Signed, but from a topic this source does not take.
    assert_eq!(sns_post(&app, "other", &alarm).await.status(), 403);

    assert_eq!(sns_post(&app, "aws", &alarm).await.status(), 200);
    app.process().await;
    let t = &app.tickets().await[0];
    assert_eq!(t["state"], "open");
    assert_eq!(t["source"], "aws");

    assert_eq!(
        sns_post(&app, "aws", &payload("sns/notification_ok.json"))
            .await
            .status(),
        200
    );
    app.process().await;
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["state"], "resolved");
}

#[tokio::test]
async fn an_sns_certificate_that_cannot_be_fetched_is_named_as_the_cause() {
    use tocsin::ingest::kinds::sns::FixedCerts;
    let sources = format!("sources:\n  aws: {{kind: sns, topics: [\"{SNS_TOPIC}\"]}}\n");
    let app = spawn_app_sources(&sources, "").await;
    // The certificate host answers 404 for everything.
    let fetch = std::sync::Arc::new(FixedCerts::new());
    app.app.ingest.sns.certs.set_fetch(fetch.clone());
    let alarm = payload("sns/notification_alarm.json");

    let r = sns_post(&app, "aws", &alarm).await;
    // 503, which SNS retries (it takes other 4xx as a permanent failure), naming what failed where.
    assert!(r.headers().contains_key("retry-after"));
    let body = expect(r, 503).await;
    assert_eq!(body["error"], "upstream_unavailable");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "the SNS signing certificate could not be fetched from sns.eu-west-1.amazonaws.com: "
        ),
        "{detail}"
    );
    assert!(detail.contains("404"), "{detail}");
    assert_eq!(fetch.calls(), 1);
    // SNS's retry soon after is refused without fetching again, with the same cause.
    let body = expect(sns_post(&app, "aws", &alarm).await, 503).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("sns.eu-west-1.amazonaws.com"),
        "{body}"
    );
    assert_eq!(fetch.calls(), 1);
    app.process().await;
    assert!(app.tickets().await.is_empty());

    // Once the certificate can be had, the same message is taken.
    app.app.ingest.sns.certs.insert(SNS_CERT_URL, sns_cert());
    assert_eq!(sns_post(&app, "aws", &alarm).await.status(), 200);
    app.process().await;
    assert_eq!(app.tickets().await.len(), 1);
}

#[tokio::test]
async fn sns_subscriptions_are_confirmed_only_after_the_signature_and_topic_checks() {
    use tocsin::ingest::kinds::sns::FixedCerts;
    let sources = format!(
        "sources:\n  aws: {{kind: sns, topics: [\"{SNS_TOPIC}\"]}}\n  other: {{kind: sns, topics: [\"arn:aws:sns:eu-west-1:123456789012:elsewhere\"]}}\n"
    );
    let app = spawn_app_sources(&sources, "").await;
    app.app.ingest.sns.certs.insert(SNS_CERT_URL, sns_cert());
    let body = payload("sns/subscription_confirmation.json");
    let subscribe: Value = serde_json::from_slice(&body).unwrap();
    let url = subscribe["SubscribeURL"].as_str().unwrap();
    let confirm =
        std::sync::Arc::new(FixedCerts::new().with(url, b"<ConfirmSubscriptionResponse/>"));
    app.app.ingest.sns.set_confirm(confirm.clone());

    assert_eq!(sns_post(&app, "other", &body).await.status(), 403);
    assert_eq!(confirm.calls(), 0, "a foreign topic is never confirmed");
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("tocsin-alarms&Token", "tocsin-alarms&x=1&Token");
    assert_eq!(
        sns_post(&app, "aws", tampered.as_bytes()).await.status(),
        401
    );
    assert_eq!(
        confirm.calls(),
        0,
        "an unsigned SubscribeURL is never fetched"
    );

    let r = sns_post(&app, "aws", &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["confirmed"], SNS_TOPIC);
    assert_eq!(confirm.calls(), 1);
}

#[tokio::test]
async fn a_generic_source_with_mapping_rules_reads_any_json() {
    let sources = "sources:\n  status-page:\n    kind: generic\n    mapping:\n      alerts: /events\n      title: /check/name\n      key: [/check/id, /region]\n      status: /state\n      firing: [down, degraded]\n      resolved: [up]\n      acknowledged: [acked]\n      severity: /level\n      severities: {sev1: critical, sev2: error}\n      labels: {region: /region, team: /owner/team}\n";
    let app = spawn_app_sources(sources, "").await;
    // The fixture ends with two broken events: the valid ones are kept (2xx) and the answer names
    // each broken one by its index, with the reason.
    let r = send(&app, "status-page", &payload("generic/mapped.json"), &[]).await;
    let body = expect(r, 202).await;
    assert_eq!(body["accepted"], 3, "{body}");
    assert_eq!(body["fingerprints"].as_array().unwrap().len(), 3, "{body}");
    let rejected = body["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{body}");
    assert_eq!(rejected[0]["index"], 3);
    assert!(
        rejected[0]["error"].as_str().unwrap().contains("title"),
        "{body}"
    );
    assert_eq!(rejected[1]["index"], 4);
    assert!(
        rejected[1]["error"].as_str().unwrap().contains("SIDEWAYS"),
        "{body}"
    );
    // Only broken events: nothing is taken, 400 with the same list.
    let all_bad = json!({"events": [{"check": {"id": 12, "name": ""}, "state": "DOWN"},
        {"check": {"id": 13, "name": "x"}, "state": "SIDEWAYS"}]});
    let r = send(&app, "status-page", all_bad.to_string().as_bytes(), &[]).await;
    let body = expect(r, 400).await;
    assert_eq!(body["error"], "invalid_alerts");
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"][1]["index"], 1, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("all 2 alerts rejected"),
        "{body}"
    );
    app.process().await;
    let tickets = app.tickets().await;
    let checkout = tickets
        .iter()
        .find(|t| t["title"] == "Checkout API latency")
        .expect("the first event became a ticket");
    // DOWN, then UP for the same check and region: one ticket, resolved.
    assert_eq!(checkout["state"], "resolved");
    assert_eq!(checkout["severity"], "error");
    assert_eq!(
        tickets.len(),
        1,
        "an acknowledgement of an unknown check opens nothing"
    );
    assert_eq!(checkout["labels"]["team"], "payments");

    // A mistake in the rules is a config error naming the key.
    let yaml = "sources:\n  s:\n    kind: generic\n    mapping: {title: check/name}\n";
    let err = tocsin::config::Config::from_yaml(yaml, std::path::Path::new("t.yaml")).unwrap_err();
    assert!(err.to_string().contains("sources.s.mapping.title"), "{err}");
}

#[tokio::test]
async fn a_generic_batch_with_bad_items_keeps_the_good_ones_and_names_the_bad() {
    let app = spawn_app_sources("sources:\n  hooks: {kind: generic}\n", "").await;
    let mixed = json!([
        {"title": "Disk full", "status": "firing", "fingerprint": "disk"},
        {"title": "", "status": "firing"},
        {"title": "Queue stuck", "status": "exploded"},
        {"title": "CPU hot", "status": "firing", "fingerprint": "cpu"}
    ]);
    let r = send(&app, "hooks", mixed.to_string().as_bytes(), &[]).await;
    let body = expect(r, 202).await;
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["fingerprints"], json!(["disk", "cpu"]));
    assert_eq!(
        body["rejected"][0],
        json!({"index": 1, "error": "title is empty"})
    );
    assert_eq!(body["rejected"][1]["index"], 2);
    assert!(
        body["rejected"][1]["error"]
            .as_str()
            .unwrap()
            .contains("exploded"),
        "{body}"
    );
    app.process().await;
    assert_eq!(app.tickets().await.len(), 2);

    let all_bad = json!([{"title": ""}, {"status": "firing"}]);
    let r = send(&app, "hooks", all_bad.to_string().as_bytes(), &[]).await;
    let body = expect(r, 400).await;
    assert_eq!(body["error"], "invalid_alerts");
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 2);
    assert_eq!(body["rejected"][1]["index"], 1);
    app.process().await;
    assert_eq!(app.tickets().await.len(), 2);
}

#[tokio::test]
async fn a_timestamped_signed_request_is_taken_once_however_its_signature_is_written() {
    let app = spawn_app_sources(SOURCES, "").await;
    let body = payload("grafana/firing.json");
    let ts = now_secs(&app).to_string();
    let sig = sign("new-secret", &[ts.as_bytes(), b":", &body]);
    let r = send(
        &app,
        "graf-ts",
        &body,
        &[("X-Sig", &sig), ("X-Sig-Timestamp", &ts)],
    )
    .await;
    assert_eq!(r.status(), 202);
    assert!(app.process().await >= 1);
    // Captured and sent again inside the window: as it was, upper-cased, with a `sha256=` prefix.
    for again in [
        sig.clone(),
        sig.to_uppercase(),
        format!("sha256={sig}"),
        format!(" {} ", sig.to_uppercase()),
    ] {
        let r = send(
            &app,
            "graf-ts",
            &body,
            &[("X-Sig", &again), ("X-Sig-Timestamp", &ts)],
        )
        .await;
        let v = expect(r, 401).await;
        assert!(
            v["detail"].as_str().unwrap().contains("replay"),
            "{again}: {v}"
        );
    }
    assert_eq!(app.process().await, 0);
    // Sentry signs the body only, with an unsigned timestamp beside it: the same memory applies.
    let sentry = payload("sentry/event_alert.json");
    let good = sign("sentry-client-secret", &[&sentry]);
    let headers = |sig: String| {
        vec![
            (
                "Sentry-Hook-Resource".to_string(),
                "event_alert".to_string(),
            ),
            ("Sentry-Hook-Signature".to_string(), sig),
            ("Sentry-Hook-Timestamp".to_string(), ts.clone()),
        ]
    };
    assert_eq!(
        send(&app, "sentry", &sentry, &refs(&headers(good.clone())))
            .await
            .status(),
        202
    );
    assert_eq!(
        send(
            &app,
            "sentry",
            &sentry,
            &refs(&headers(good.to_uppercase()))
        )
        .await
        .status(),
        401
    );
    // Only the first of each went into the journal.
    assert_eq!(app.process().await, 1);
}

#[tokio::test]
async fn an_sns_message_id_is_taken_once() {
    let sources = format!("sources:\n  aws: {{kind: sns, topics: [\"{SNS_TOPIC}\"]}}\n");
    let app = spawn_app_sources(&sources, "").await;
    app.app.ingest.sns.certs.insert(SNS_CERT_URL, sns_cert());
    let alarm = payload("sns/notification_alarm.json");
    let ok = payload("sns/notification_ok.json");
    let r = sns_post(&app, "aws", &alarm).await;
    assert_eq!(expect(r, 200).await["accepted"], 1);
    let r = sns_post(&app, "aws", &ok).await;
    assert_eq!(expect(r, 200).await["accepted"], 1);
    app.process().await;
    assert_eq!(app.tickets().await[0]["state"], "resolved");
    // The ALARM message again (an SNS retry, or a replay of a captured one): answered, not taken,
    // so it cannot reopen the ticket.
    let r = sns_post(&app, "aws", &alarm).await;
    let v = expect(r, 200).await;
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicate"].as_bool()),
        (Some(0), Some(true)),
        "{v}"
    );
    assert_eq!(app.process().await, 0);
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["state"], "resolved");
}
