//! Query plans of statements that run often whatever the data's size, against real SQLite: they
//! must search an index, never scan a table.

use super::SqliteStore;
use crate::store::Durability;

/// What `EXPLAIN QUERY PLAN` says of `sql`, one detail per line.
async fn plan(store: &SqliteStore, sql: &'static str) -> Vec<String> {
    store
        .backend
        .on_writer(Durability::Now, move |c| {
            let mut stmt = c
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .map_err(super::err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(3))
                .map_err(super::err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(super::err)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn the_journal_id_range_reads_the_index_not_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let plan = plan(&store, super::journal::ID_RANGE).await;
    assert!(
        plan.iter().any(|d| d.starts_with("SEARCH journal")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|d| d.starts_with("SCAN journal")),
        "{plan:?}"
    );
}
