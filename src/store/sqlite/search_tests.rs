//! Search rows and FTS5's segments, against real SQLite: a transaction that opens many tickets writes
//! their search rows as one segment (see `SqliteTx::search`), and what it wrote is found.

use super::health_tests::alert;
use super::SqliteStore;
use crate::domain::ticket::Policy;
use crate::store::{Durability, Store, TicketFilter};

/// The number of segments in the `search` index: the second varint after the four-byte cookie of
/// FTS5's structure record (row 10 of `search_data`).
async fn segments(store: &SqliteStore) -> u64 {
    let record: Vec<u8> = store
        .backend
        .on_writer(Durability::Now, |c| {
            c.query_row("SELECT block FROM search_data WHERE id = 10", [], |r| {
                r.get(0)
            })
            .map_err(super::err)
        })
        .await
        .unwrap();
    let mut varints = record[4..].iter().scan((0u64, 0u32), |(value, shift), b| {
        *value |= u64::from(b & 0x7f) << *shift;
        *shift += 7;
        if b & 0x80 == 0 {
            let v = *value;
            (*value, *shift) = (0, 0);
            Some(Some(v))
        } else {
            Some(None)
        }
    });
    let _levels = varints.by_ref().flatten().next().unwrap();
    varints.flatten().next().unwrap()
}

#[tokio::test]
async fn a_batch_of_new_tickets_writes_one_search_segment() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let alerts: Vec<_> = (0..40)
        .map(|i| {
            let mut a = alert(format!("d{i}"));
            a.fingerprint = format!("f{i}");
            a.title = format!("basalt{i} disk full");
            a
        })
        .collect();
    store.append_journal(&alerts).await.unwrap();
    let batch = store.pending_journal(100).await.unwrap();
    assert_eq!(batch.entries.len(), 40);
    let applied = store
        .apply_journal(batch.entries.into(), &Policy::default())
        .await
        .unwrap();
    assert!(applied.iter().all(|a| a.outcome == "opened"), "{applied:?}");

    // Titles' rowids (minus the ticket number) fall as entries' (feed ids) rise: written as they
    // came, FTS5 flushed a segment for every ticket.
    assert_eq!(segments(&store).await, 1);
    for i in [0, 17, 39] {
        let found = store
            .list_tickets(&TicketFilter {
                text: Some(format!("basalt{i}")),
                limit: 10,
                ..TicketFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "basalt{i}");
        assert_eq!(found[0].fingerprint, format!("f{i}"));
    }
}
