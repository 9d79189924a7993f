//! Which commits wait for the disk: a deferred write commits with `synchronous=NORMAL`; every other
//! write, and every group of appends, with `FULL`, whatever the writer ran before.

use super::health_tests::alert;
use super::{Job, SqliteStore};
use crate::store::{Durability, Store};

/// SQLite's `synchronous` codes.
const NORMAL: i64 = 1;
const FULL: i64 = 2;

/// The setting a write of `durability` commits with, read inside its transaction.
async fn inside(store: &SqliteStore, durability: Durability) -> i64 {
    store
        .backend
        .on_writer(durability, |c| {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0))
                .map_err(super::err)
        })
        .await
        .unwrap()
}

/// The setting the writer's last job left, read by a job that sets none.
async fn left(store: &SqliteStore) -> i64 {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store
        .backend
        .send(Job::Run(Box::new(move |c: &mut rusqlite::Connection| {
            let _ = tx.send(c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)));
        })))
        .unwrap();
    rx.await.unwrap().unwrap()
}

#[tokio::test]
async fn only_deferred_writes_commit_without_waiting_for_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    assert_eq!(left(&store).await, FULL, "as opened");

    assert_eq!(inside(&store, Durability::Deferred).await, NORMAL);
    assert_eq!(inside(&store, Durability::Now).await, FULL);
    assert_eq!(inside(&store, Durability::Deferred).await, NORMAL);
    assert_eq!(left(&store).await, NORMAL);

    // An append after a deferred write is durable before its caller answers.
    store.append_journal(&[alert("d".into())]).await.unwrap();
    assert_eq!(left(&store).await, FULL);
}
