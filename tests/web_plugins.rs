//! What plugins did, on the ticket page in a real headless Chromium: `plugin_decided` entries that
//! arrive live are folded as the server folds them on a fresh page, and a hostile value a plugin
//! copied from an alert shows as text.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::Browser;
use common::*;
use serde_json::{json, Value};

const SOURCES: &str = "sources:\n  hooks: {kind: generic, plugins: [chaos]}\n";

/// The chaos test plugin (plugins/testdata/chaos) routes to the room in label `room`, raises
/// the severity on `raise=critical` and tags `chaos-checked`: each a `plugin_decided` entry.
fn plugins() -> String {
    format!(
        "rooms:\n  \
           ops: {{sink: {{kind: webhook, url: \"http://127.0.0.1:9/ops\"}}}}\n  \
           db: {{sink: {{kind: webhook, url: \"http://127.0.0.1:9/db\"}}}}\n\
         plugins:\n  chaos: {{path: '{}', config: {{default_room: ops}}}}\n",
        dist("chaos")
    )
}

async fn send(app: &TestApp, labels: Value) {
    let body = json!({"title": "Replication lag on db1", "status": "firing",
                      "severity": "warning", "fingerprint": "db1", "labels": labels});
    expect(app.post("/ingest/hooks", &body, &[]).await, 202).await;
    app.process().await;
}

/// The folded decision lines on the page: `[count, summary text, [decision texts]]` each.
const FOLDED: &str =
    "[...document.querySelectorAll('#timeline .kind-plugin_decided')].map((li) => \
    [li.dataset.count, li.querySelector('summary .text').textContent, \
     [...li.querySelectorAll('ul.decisions li')].map((d) => d.textContent)])";

/// How many timeline entries the page shows (folded lines count each entry they hold).
const SHOWN: &str = "[...document.querySelectorAll('#timeline [data-seqs]')]\
    .reduce((n, li) => n + li.dataset.seqs.split(' ').length, 0)";

#[tokio::test]
async fn decisions_arriving_live_fold_as_a_fresh_page_folds_them() {
    let app = spawn_app_sources(SOURCES, &plugins()).await;
    send(&app, json!({"room": "db"})).await;
    let key = app.tickets().await[0]["key"].as_str().unwrap().to_string();

    let mut b = Browser::launch().await;
    b.goto(&format!("{}/login?next=/tickets/{key}", app.base))
        .await;
    b.type_into("#token", EDITOR).await;
    b.navigate_with("document.querySelector('.login button[type=submit]').click()")
        .await;
    let texts: Vec<Value> = app
        .entries_of(&key, "plugin_decided")
        .await
        .iter()
        .map(|e| e["text"].clone())
        .collect();
    assert_eq!(texts.len(), 2, "a room and a tag: {texts:?}");
    assert_eq!(
        b.eval(FOLDED).await,
        json!([["2", "2 changes by chaos", texts]]),
        "{}",
        b.log()
    );
    b.eval("window.__sameDocument = 'yes'").await;

    // A note, then the same alert raised to critical and sent to ops: two decisions in a row after
    // the note, on the open page, folded into a line of their own.
    expect(
        app.api_post(
            &format!("/api/tickets/{key}/notes"),
            ADMIN,
            Some(json!({"text": "Looking", "visibility": "public"})),
        )
        .await,
        201,
    )
    .await;
    send(&app, json!({"room": "ops", "raise": "critical"})).await;
    let timeline = app.timeline(&key).await;
    b.wait_for(
        &format!("{SHOWN} === {}", timeline.len()),
        "every timeline entry on the open page",
    )
    .await;
    assert_eq!(b.eval("window.__sameDocument").await, json!("yes"));
    let live = b.eval(FOLDED).await;
    assert_eq!(live.as_array().map(Vec::len), Some(2), "{live}");
    assert_eq!(live[1][0], "2", "{live}");
    assert_eq!(live[1][1], "2 changes by chaos", "{live}");

    // A fresh page renders the same lines on the server.
    b.goto(&format!("{}/tickets/{key}", app.base)).await;
    assert_eq!(b.eval(FOLDED).await, live, "live and fresh differ");
    assert_eq!(
        b.eval(SHOWN).await,
        json!(timeline.len()),
        "each entry once"
    );

    // A room name the plugin copied from a label is shown as text, live and fresh.
    let hostile = r#"<img src=x onerror="window.__pwned=1">"#;
    send(&app, json!({"room": hostile, "raise": "critical"})).await;
    let timeline = app.timeline(&key).await;
    b.wait_for(
        &format!("{SHOWN} === {}", timeline.len()),
        "the hostile decision on the open page",
    )
    .await;
    let shown = b.eval(FOLDED).await;
    assert!(shown.to_string().contains("window.__pwned"), "{shown}");
    b.goto(&format!("{}/tickets/{key}", app.base)).await;
    assert_eq!(b.eval(FOLDED).await, shown, "live and fresh differ");
    assert_eq!(b.eval("typeof window.__pwned").await, json!("undefined"));
}
