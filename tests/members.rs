//! Members and presence through the API: who is there, as reported by the API; no information means
//! offline; members set their own presence, admins anyone's; bad input gets the app's JSON errors.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn presence_of(app: &TestApp, name: &str) -> Value {
    let v: Value = app
        .api_get("/api/members", VIEWER)
        .await
        .json()
        .await
        .unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap()["presence"]
        .clone()
}

async fn put(app: &TestApp, name: &str, token: &str, body: Value) -> reqwest::Response {
    app.client
        .put(format!("{}/api/members/{name}/presence", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn presence_is_reported_and_read_back() {
    let app = spawn_app_with(
        "rooms:\n  ops:\n    sink: {kind: webhook, url: \"http://127.0.0.1:9/hook\"}\n    members: [alice, bob]\n",
    )
    .await;
    // Nothing known: offline.
    assert_eq!(presence_of(&app, "bob").await["state"], "offline");
    assert_eq!(presence_of(&app, "bob").await["source"], "none");

    assert_eq!(
        put(&app, "bob", EDITOR, json!({"state": "online"}))
            .await
            .status(),
        200
    );
    let p = presence_of(&app, "bob").await;
    assert_eq!(
        (p["state"].as_str(), p["source"].as_str()),
        (Some("online"), Some("api"))
    );
    assert_eq!(p["since"], json!(t0()));

    app.advance(Duration::from_secs(60));
    assert_eq!(
        put(&app, "bob", EDITOR, json!({"state": "dnd"}))
            .await
            .status(),
        200
    );
    assert_eq!(presence_of(&app, "bob").await["state"], "dnd");

    // Admins may set anyone's; others only their own.
    assert_eq!(
        put(&app, "bob", VIEWER, json!({"state": "away"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        put(&app, "carol", ADMIN, json!({"state": "away"}))
            .await
            .status(),
        200
    );
    assert_eq!(presence_of(&app, "carol").await["state"], "away");

    // Editors and admins see rooms and roles too.
    let v: Value = app
        .api_get("/api/members", EDITOR)
        .await
        .json()
        .await
        .unwrap();
    let alice = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "alice")
        .unwrap()
        .clone();
    assert_eq!(alice["rooms"], json!(["ops"]));
    assert_eq!(alice["role"], "admin");

    // Bad input: the app's JSON errors.
    let r = put(&app, "bob", EDITOR, json!({"state": "asleep"})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_state");
    assert_eq!(
        put(&app, "nobody", ADMIN, json!({"state": "online"}))
            .await
            .status(),
        404
    );
    assert_eq!(
        put(&app, "bob", EDITOR, json!({"state": "online", "x": 1}))
            .await
            .status(),
        400
    );
    assert_eq!(
        app.api_get("/api/members", "not-a-token").await.status(),
        401
    );
}

#[tokio::test]
async fn viewers_get_names_and_presence_only() {
    let app = spawn_app_with(
        "rooms:\n  ops:\n    sink: {kind: webhook, url: \"http://127.0.0.1:9/hook\"}\n    members: [alice, bob]\n\
         email:\n  smtp: smtp://127.0.0.1:9\n  from: tocsin@example.test\n  secret: a-test-secret-of-32-characters!!\n",
    )
    .await;
    // Give bob an address and handles to leak.
    let yaml = std::fs::read_to_string(app.config_path()).unwrap().replace(
        &format!("bob: {{role: editor, token: {EDITOR}}}"),
        &format!("bob: {{role: editor, token: {EDITOR}, email: bob@example.test, handles: {{slack: UBOB, matrix: \"@bob:example.org\"}}}}"),
    );
    std::fs::write(app.config_path(), &yaml).unwrap();
    let app = app.restart().await;
    let bob = |v: &Value| {
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "bob")
            .unwrap()
            .clone()
    };
    let full = bob(&expect(app.api_get("/api/members", EDITOR).await, 200).await);
    assert_eq!(full["email"]["address"], "bob@example.test", "{full}");
    assert_eq!(full["handles"]["slack"], "UBOB", "{full}");

    let v = expect(app.api_get("/api/members", VIEWER).await, 200).await;
    let text = v.to_string();
    assert!(
        !text.contains("bob@example.test") && !text.contains("UBOB") && !text.contains("@bob:"),
        "{text}"
    );
    for m in v["members"].as_array().unwrap() {
        let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["name", "presence"], "{m}");
    }
    assert_eq!(bob(&v)["presence"]["state"], "offline");
}
