//! Plugins' kv state is kept in the database: `suppress-noise`'s flap hold remembers that it let an
//! alert through (`sent:<since>`), and forgetting that would swallow the alert's resolve and leave its
//! ticket open. So the resolve after a restart shows whether the state survived; and after the journal
//! lease changed hands, the processor works from the state the database has, not from its memory.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tocsin::clock::{Clock, SystemClock};
use tocsin::domain::lease::Fence;
use tocsin::domain::time::Timestamp;
use tocsin::store::{fenced, KvChange};

const SOURCES: &str = "sources:\n  prom: {kind: prometheus, plugins: [hold]}\n";

fn plugins() -> String {
    format!(
        "plugins:\n  hold: {{path: '{}', config: {{hold_for: 5m}}}}\n",
        dist("suppress-noise")
    )
}

/// Long before any clock the plugin may see: the sender says the alert has fired since then, so the
/// hold lets it through at first sight (plugins read the real clock, not the tests' manual one).
fn long_ago() -> Timestamp {
    Timestamp::parse_optional("2020-01-01T00:00:00Z")
        .unwrap()
        .unwrap()
}

/// The plugin's key for the one ticket's alert.
async fn hold_key(app: &TestApp) -> String {
    let tickets = app.tickets().await;
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    format!("hold:prom/{}", tickets[0]["fingerprint"].as_str().unwrap())
}

async fn saved(app: &TestApp) -> Vec<(String, String)> {
    app.app
        .state
        .store
        .plugin_kv("hold", SystemClock.now())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

#[tokio::test]
async fn a_plugins_kv_state_survives_a_restart() {
    let app = spawn_app_sources(SOURCES, &plugins()).await;
    expect(
        app.prom(json!([prom_alert("LinkDown", Some(long_ago()), None)]))
            .await,
        200,
    )
    .await;
    assert_eq!(app.process().await, 1);
    let key = hold_key(&app).await;
    let since = long_ago().as_millis();
    assert_eq!(
        saved(&app).await,
        vec![(key.clone(), format!("sent:{since}"))],
        "saved as the step ran"
    );

    let app = app.restart().await;
    let now = app.now();
    expect(
        app.prom(json!([prom_alert("LinkDown", Some(long_ago()), Some(now))]))
            .await,
        200,
    )
    .await;
    assert_eq!(app.process().await, 1);
    let tickets = app.tickets().await;
    assert_eq!(
        tickets[0]["state"], "resolved",
        "the hold remembered it let the alert through: {tickets:#?}"
    );
    let dropped = expect(app.api_get("/api/dropped", VIEWER).await, 200).await;
    assert_eq!(dropped["dropped"], json!([]), "{dropped}");
    assert_eq!(saved(&app).await, vec![], "the resolve deleted the state");
}

#[tokio::test]
async fn after_the_journal_lease_changed_hands_the_state_comes_from_the_database() {
    let app = spawn_app_sources(SOURCES, &plugins()).await;
    let store = app.app.state.store.clone();
    let ttl = Duration::from_secs(60);
    let take = |holder: &'static str| {
        let store = store.clone();
        async move {
            let lease = store
                .acquire_lease("journal", holder, ttl, SystemClock.now())
                .await
                .unwrap()
                .expect("the journal lease is free");
            Fence {
                lease: "journal".into(),
                holder: holder.into(),
                token: lease.token,
            }
        }
    };

    // This instance holds the journal and lets the alert through.
    let mine = take("a").await;
    expect(
        app.prom(json!([prom_alert("LinkDown", Some(long_ago()), None)]))
            .await,
        200,
    )
    .await;
    assert_eq!(
        fenced(mine.clone(), app.app.processor.drain())
            .await
            .unwrap(),
        1
    );
    let key = hold_key(&app).await;
    assert_eq!(saved(&app).await.len(), 1);

    // Another instance takes the journal over, and its plugin forgets the alert (as on a resolve).
    store.release_lease("journal", "a").await.unwrap();
    let theirs = take("b").await;
    fenced(
        theirs,
        store.write_plugin_kv(
            "hold",
            vec![KvChange::Delete(key.clone())],
            SystemClock.now(),
        ),
    )
    .await
    .unwrap();

    // Back to this one, with a new token: it loads the state the database has, so the alert firing
    // again is held from scratch instead of passing on what this instance remembered.
    store.release_lease("journal", "b").await.unwrap();
    let again = take("a").await;
    assert!(again.token > mine.token);
    expect(
        app.prom(json!([prom_alert("LinkDown", None, None)])).await,
        200,
    )
    .await;
    assert_eq!(fenced(again, app.app.processor.drain()).await.unwrap(), 1);
    let dropped = expect(app.api_get("/api/dropped", VIEWER).await, 200).await;
    assert!(
        dropped["dropped"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("held:")),
        "{dropped}"
    );
    let now = saved(&app).await;
    assert_eq!(now.len(), 1);
    assert!(now[0].1.starts_with("pending:"), "{now:?}");
}
