//! The behaviour every `Store` backend must have: the contract suite in `tests/store_contract/`, one
//! `#[tokio::test]` per case and backend (`sqlite::story`, `sqlite::outbox_failed_dead_retry`, ...).
//! A backend joins with one line: `contract!(name, open_name());`, where `open_name()` returns a fresh,
//! empty store and a guard that keeps whatever it lives in until the test ends.

#[macro_use]
mod store_contract;
#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;

use store_contract::support::{alert, T0};
use store_contract::Guard;
use tocsin::domain::alert::Status;
use tocsin::store::{PgStore, SqliteStore, Store};

/// A fresh SQLite store in a temporary directory (the guard deletes it).
async fn open_sqlite() -> (Arc<dyn Store>, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db")).unwrap();
    (Arc::new(store), Guard::new(dir))
}

contract!(sqlite, open_sqlite());

/// A fresh PostgreSQL database on the server `scripts/test` provides (the guard drops it).
async fn open_postgres() -> (Arc<dyn Store>, Guard) {
    let db = tokio::task::spawn_blocking(pg::TestDatabase::create)
        .await
        .unwrap();
    let store = PgStore::connect(&db.url).await.unwrap();
    (Arc::new(store), Guard::new(db))
}

contract!(postgres, open_postgres());

/// SQLite only: what was appended survives closing and opening the file again.
#[tokio::test]
async fn sqlite_keeps_everything_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .append_journal(&[alert("x", Status::Firing, T0, T0, None)])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let pending = store.pending_journal(10).await.unwrap().entries;
    assert_eq!(
        pending.len(),
        1,
        "an appended alert survives closing the store"
    );
    assert_eq!(pending[0].alert, alert("x", Status::Firing, T0, T0, None));
}
