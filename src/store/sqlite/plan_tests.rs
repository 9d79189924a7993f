//! Query plans of statements that run often, against real SQLite: reads whose cost must not grow
//! with the data search an index, never scan a table; inserts of every new ticket run no trigger.

use super::SqliteStore;
use crate::store::Durability;

/// What `EXPLAIN QUERY PLAN` says of `sql`, one detail per line.
async fn plan(store: &SqliteStore, sql: &'static str) -> Vec<String> {
    explain(store, "EXPLAIN QUERY PLAN", 3, sql).await
}

/// The column `column` of each line `how` (`EXPLAIN` or `EXPLAIN QUERY PLAN`) gives of `sql`.
async fn explain(
    store: &SqliteStore,
    how: &'static str,
    column: usize,
    sql: &'static str,
) -> Vec<String> {
    store
        .backend
        .on_writer(Durability::Now, move |c| {
            let mut stmt = c.prepare(&format!("{how} {sql}")).map_err(super::err)?;
            let rows = stmt
                // EXPLAIN needs no values; rusqlite still wants one per parameter.
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n(
                        rusqlite::types::Null,
                        stmt.parameter_count(),
                    )),
                    |r| r.get::<_, String>(column),
                )
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

#[tokio::test]
async fn inserting_a_ticket_fires_no_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    // A trigger runs as a sub-program (`Program`); with one, SQLite keeps a statement journal.
    let ops = explain(&store, "EXPLAIN", 1, &super::tickets::INSERT_TICKET).await;
    assert!(ops.iter().any(|op| op == "Insert"), "{ops:?}");
    assert!(!ops.iter().any(|op| op == "Program"), "{ops:?}");
}
