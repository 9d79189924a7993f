//! Where a test's data lives. By default a SQLite file in the test's directory; with
//! `TOCSIN_TEST_STORAGE=postgres` a fresh PostgreSQL database of its own (see `pg.rs`), so the
//! black-box tests whose subject is behaviour rather than SQLite run on both backends (`scripts/test`
//! runs them twice).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::pg::TestDatabase;

/// Whether this run stores on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("TOCSIN_TEST_STORAGE").is_ok_and(|v| v == "postgres")
}

/// The databases made for SQLite paths, kept until [`release`] (or the end of the process; leftovers
/// are dropped by a later run).
fn databases() -> &'static Mutex<HashMap<PathBuf, TestDatabase>> {
    static DATABASES: std::sync::OnceLock<Mutex<HashMap<PathBuf, TestDatabase>>> =
        std::sync::OnceLock::new();
    DATABASES.get_or_init(Mutex::default)
}

/// The `storage:` URL for a test that would keep its data at `db`: `sqlite://db`, or on PostgreSQL a
/// database made for it (the same one every time for the same `db`).
pub fn storage_url(db: &Path) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", db.display());
    }
    let mut dbs = databases().lock().unwrap();
    dbs.entry(db.to_path_buf())
        .or_insert_with(TestDatabase::create)
        .url
        .clone()
}

/// Drops the databases made for paths under `dir`.
pub fn release(dir: &Path) {
    let gone: Vec<TestDatabase> = {
        let mut dbs = databases().lock().unwrap();
        let keys: Vec<PathBuf> = dbs.keys().filter(|k| k.starts_with(dir)).cloned().collect();
        keys.into_iter().filter_map(|k| dbs.remove(&k)).collect()
    };
    drop(gone);
}

/// The store a test's server wrote, opened beside it (to count what it kept).
pub async fn open_store(db: &Path) -> Arc<dyn tocsin::store::Store> {
    let url = tocsin::config::StorageUrl::parse(&storage_url(db)).unwrap();
    tocsin::store::open(&url).await.unwrap()
}
