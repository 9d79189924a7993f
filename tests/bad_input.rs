//! Bad input gets its status code and a JSON error naming the problem, and the server keeps serving.

mod common;

use common::*;
use serde_json::{json, Value};

fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn each_kind_of_bad_input_gets_its_error() {
    let app = spawn_app().await;
    let token = [("x-tocsin-token", HOOK_TOKEN)];

    let r = expect(
        app.post_raw(
            "/ingest/hooks",
            Some("application/json"),
            "{\"title\": ",
            &token,
        )
        .await,
        400,
    )
    .await;
    assert_error(&r, "invalid_payload");
    assert!(r["detail"].as_str().unwrap().contains("malformed JSON"));

    let r = expect(
        app.post_raw("/ingest/hooks", Some("text/plain"), "{}", &token)
            .await,
        415,
    )
    .await;
    assert_error(&r, "unsupported_media_type");
    let r = expect(app.post_raw("/ingest/hooks", None, "{}", &token).await, 415).await;
    assert_error(&r, "unsupported_media_type");

    // The hooks source allows 64 KiB.
    let big = json!({"title": "x", "status": "firing", "description": "y".repeat(70 * 1024)});
    let r = expect(app.hook(big.clone()).await, 413).await;
    assert_error(&r, "payload_too_large");
    // Also when the sender does not declare a length (chunked).
    let chunks: Vec<Result<String, std::io::Error>> = vec![Ok(big.to_string())];
    let body = reqwest::Body::wrap_stream(futures_stream(chunks));
    let r = expect(
        app.post_raw("/ingest/hooks", Some("application/json"), body, &token)
            .await,
        413,
    )
    .await;
    assert_error(&r, "payload_too_large");

    let ok = json!({"title": "x", "status": "firing"});
    let r = expect(app.post("/ingest/hooks", &ok, &[]).await, 401).await;
    assert_error(&r, "unauthorized");
    let r = expect(
        app.post("/ingest/hooks", &ok, &[("x-tocsin-token", "wrong")])
            .await,
        401,
    )
    .await;
    assert_error(&r, "unauthorized");
    let r = expect(
        app.post(
            "/ingest/am",
            &json!({"version": "4", "alerts": []}),
            &[("authorization", "Bearer nope")],
        )
        .await,
        401,
    )
    .await;
    assert_error(&r, "unauthorized");

    let r = expect(app.post("/ingest/nosuch", &ok, &[]).await, 404).await;
    assert_error(&r, "not_found");
    assert!(r["detail"].as_str().unwrap().contains("nosuch"));
    let r = expect(
        app.post("/ingest/hooks/api/v2/alerts", &ok, &token).await,
        404,
    )
    .await;
    assert_error(&r, "not_found");
    let r = expect(
        app.client
            .get(format!("{}/no/such/path", app.base))
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    assert_error(&r, "not_found");

    let r = expect(app.prom(json!([{"labels": {}}])).await, 400).await;
    assert_error(&r, "invalid_alerts");
    assert!(r["detail"]
        .as_str()
        .unwrap()
        .contains("at least one label pair required"));
    let r = expect(app.prom(json!({"labels": {"a": "b"}})).await, 400).await;
    assert_error(&r, "invalid_payload");
    let r = expect(
        app.prom(json!([{"labels": {"a": "b"}, "startsAt": "yesterday"}]))
            .await,
        400,
    )
    .await;
    assert!(r["detail"].as_str().unwrap().contains("startsAt"));

    // Nothing of the above made a ticket, and the server still works.
    assert_eq!(app.process().await, 0);
    expect(app.hook(ok).await, 202).await;
    assert_eq!(app.process().await, 1);
    assert_eq!(app.tickets().await.len(), 1);
    expect(
        app.client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
}

#[tokio::test]
async fn valid_neighbours_of_an_invalid_alert_are_kept() {
    let app = spawn_app().await;
    let r = expect(
        app.prom(json!([{"labels": {"alertname": "Good"}}, {"labels": {}}, {"labels": {"alertname": "AlsoGood"}}])).await,
        400,
    )
    .await;
    assert!(r["detail"].as_str().unwrap().contains("2 accepted"), "{r}");
    assert_eq!(app.process().await, 2);
    let titles: Vec<_> = app
        .tickets()
        .await
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(titles, ["AlsoGood", "Good"]);
}

#[tokio::test]
async fn overload_answers_503_to_alertmanager_and_429_to_generic() {
    let app = spawn_app_with("ingest: {max_backlog: 3}\n").await;
    let alerts: Vec<_> = (0..3)
        .map(|i| json!({"title": format!("a{i}"), "status": "firing"}))
        .collect();
    expect(app.hook(json!(alerts)).await, 202).await;

    let r = app.hook(json!({"title": "more", "status": "firing"})).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_error(&r.json().await.unwrap(), "overloaded");
    let auth = [("authorization", &*format!("Bearer {AM_TOKEN}"))];
    let r = app
        .post("/ingest/am", &json!({"version": "4", "alerts": []}), &auth)
        .await;
    assert_eq!(r.status(), 503);
    let r = app.prom(json!([{"labels": {"a": "b"}}])).await;
    assert_eq!(r.status(), 503);

    // Once the processor catches up, ingest accepts again.
    assert_eq!(app.process().await, 3);
    expect(
        app.hook(json!({"title": "more", "status": "firing"})).await,
        202,
    )
    .await;
}

#[tokio::test]
async fn metrics_and_health() {
    let app = spawn_app().await;
    app.prom(json!([prom_alert("A", Some(app.now()), None)]))
        .await;
    app.prom(json!([{"labels": {}}])).await;
    app.process().await;
    let text = app.metrics().await;
    for line in [
        "tocsin_alerts_received_total{source=\"prom\",outcome=\"accepted\"} 1",
        "tocsin_alerts_received_total{source=\"prom\",outcome=\"invalid\"} 1",
        "tocsin_alerts_processed_total{outcome=\"opened\"} 1",
        "tocsin_tickets{state=\"open\"} 1",
        "tocsin_journal_backlog 0",
        "tocsin_ingest_duration_seconds_count{source=\"prom\"} 2",
        "tocsin_processing_duration_seconds_count 1",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let ready = expect(
        app.client
            .get(format!("{}/readyz", app.base))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(ready["status"], "ready");
}

/// A one-shot stream body, so reqwest sends it chunked without a Content-Length.
fn futures_stream(
    items: Vec<Result<String, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    struct Iter(std::vec::IntoIter<Result<String, std::io::Error>>);
    impl futures_core::Stream for Iter {
        type Item = Result<String, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}
