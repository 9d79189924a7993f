//! Readiness from the store's side, against real SQLite: a full database makes writes fail and says
//! so in `health()`, until a write commits again.

use super::SqliteStore;
use crate::domain::alert::{Alert, Labels, Severity, Status};
use crate::domain::time::Timestamp;
use crate::store::Durability;
use crate::store::Store;

/// An alert with `description`, for the store's own tests.
pub(super) fn alert(description: String) -> Alert {
    Alert {
        source: "prom".into(),
        fingerprint: "f".into(),
        status: Status::Firing,
        title: "t".into(),
        severity: Severity::Warning,
        labels: Labels::from([("alertname".to_string(), "A".to_string())]),
        annotations: Labels::new(),
        description: Some(description),
        url: None,
        starts_at: None,
        ends_at: None,
        received_at: Timestamp::from_millis(1_000),
        routing: Default::default(),
        raw: None,
    }
}

#[tokio::test]
async fn a_full_database_is_reported_until_writes_succeed_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    assert_eq!(store.health().await.unwrap().problem, None);
    // SQLite's own "database or disk is full", as on a full disk: the file may not grow further.
    let pages: i64 = store
        .backend
        .on_writer(Durability::Now, |t| {
            t.query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(super::err)
        })
        .await
        .unwrap();
    store
        .backend
        .on_writer(Durability::Now, move |t| {
            t.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(super::err)
        })
        .await
        .unwrap();
    let err = store
        .append_journal(&[alert("x".repeat(256 * 1024))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    let problem = store.health().await.unwrap().problem.unwrap();
    assert!(problem.to_string().contains("full"), "{problem}");

    // Room again: the next write that commits clears it.
    store
        .backend
        .on_writer(Durability::Now, |t| {
            t.query_row("PRAGMA max_page_count = 1000000", [], |_| Ok(()))
                .map_err(super::err)
        })
        .await
        .unwrap();
    store.append_journal(&[alert("y".into())]).await.unwrap();
    assert_eq!(store.health().await.unwrap().problem, None);
}
