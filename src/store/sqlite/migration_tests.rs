//! Upgrading a database written before the dead journal, sessions, replies memory and retention: the
//! later migrations apply on top of its data, and what it held is still found (search rows rebuilt with
//! known rowids, ticket counts taken over).

use rusqlite::Connection;

use super::{SqliteStore, MIGRATIONS};
use crate::domain::time::Timestamp;
use crate::store::{Store, TicketFilter};

/// Migrations up to silences and business hours: the schema of the last release before this one.
const OLD: usize = 7;

#[tokio::test]
async fn a_database_from_before_this_release_upgrades_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let c = Connection::open(&path).unwrap();
        for sql in &MIGRATIONS[..OLD] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", OLD).unwrap();
        c.execute_batch(
            "INSERT INTO tickets (id, number, source, fingerprint, title, severity, state, labels, \
             annotations, created_at, updated_at, last_seen, resolved_at, firing_count, resend_count, \
             last_seq, is_latest) VALUES ('t1', 1, 'prom', 'f', 'basalt disk full', 'critical', 'resolved', \
             '{}', '{}', 1000, 2000, 2000, 2000, 1, 0, 1, 1);
             INSERT INTO timeline (ticket_id, seq, at, kind, visibility, actor, text, data)
             VALUES ('t1', 1, 1000, 'opened', 'system', 'source:prom', 'Opened: obsidian', '{}');
             INSERT INTO feed (ticket_id, seq) VALUES ('t1', 1);
             INSERT INTO search (body, ticket_id, visibility) VALUES ('basalt disk full', 't1', 'public');
             INSERT INTO search (body, ticket_id, visibility) VALUES ('Opened: obsidian', 't1', 'system');",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let version: usize = store
        .backend
        .on_reader(|c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(super::err)
        })
        .await
        .unwrap();
    assert_eq!(version, MIGRATIONS.len());
    for word in ["basalt", "obsidian"] {
        let found = store
            .list_tickets(&TicketFilter {
                text: Some(word.into()),
                limit: 10,
                ..TicketFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{word}");
    }
    assert_eq!(store.stats().await.unwrap().resolved, 1);
    // Retention takes the old ticket with all its rows, search rows included.
    assert_eq!(
        store
            .purge_tickets(Timestamp::from_millis(10_000), 10)
            .await
            .unwrap(),
        1
    );
    let left: i64 = store
        .backend
        .on_reader(|c| {
            c.query_row("SELECT COUNT(*) FROM search", [], |r| r.get(0))
                .map_err(super::err)
        })
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(store.stats().await.unwrap().resolved, 0);
}
