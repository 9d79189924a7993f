//! Retention on SQLite: resolved tickets older than `tickets.retention` are deleted with everything
//! that hangs off them (timeline, feed, search rows, rooms, threads, outbox and email rows), a few at a
//! time so the one writer is never held for long. Also the counters that keep `/metrics` O(1) in the
//! number of tickets, and the ticket-number high-water mark that keeps numbers from being reused.

use rusqlite::{params, Transaction};

use super::err;
use crate::domain::time::Timestamp;
use crate::store::Result;

pub(super) const MIGRATION: &str = r#"
-- Ticket numbers are never reused, even after the highest ones were deleted.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- Tickets by state, kept by triggers, so /metrics never counts every ticket ever made.
CREATE TABLE ticket_counts (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO ticket_counts (state, n) SELECT state, COUNT(*) FROM tickets GROUP BY state;
CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO ticket_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER ticket_counts_update AFTER UPDATE OF state ON tickets
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE ticket_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO ticket_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets BEGIN
    UPDATE ticket_counts SET n = n - 1 WHERE state = OLD.state;
END;
-- What deleting a ticket looks up.
CREATE INDEX tickets_resolved_at ON tickets (resolved_at) WHERE state = 'resolved';
CREATE INDEX feed_ticket ON feed (ticket_id);
CREATE INDEX ticket_rooms_ticket ON ticket_rooms (ticket_id);
CREATE INDEX outbox_ticket ON outbox (ticket_id);
CREATE INDEX emails_ticket ON emails (ticket_id);
CREATE INDEX email_threads_ticket ON email_threads (ticket_id);
-- Search rows get known rowids (an entry's feed id; minus the ticket number for its title), so a
-- ticket's rows can be deleted without scanning the index.
DROP TABLE search;
CREATE VIRTUAL TABLE search USING fts5(body, ticket_id UNINDEXED, visibility UNINDEXED);
INSERT INTO search (rowid, body, ticket_id, visibility) SELECT -number, title, id, 'public' FROM tickets;
INSERT INTO search (rowid, body, ticket_id, visibility)
    SELECT f.id, t.text, t.ticket_id, t.visibility
    FROM timeline t JOIN feed f ON f.ticket_id = t.ticket_id AND f.seq = t.seq;
"#;

/// The next ticket number: above every ticket there is and every one there ever was.
pub(super) const NEXT_NUMBER: &str = "SELECT MAX(COALESCE((SELECT MAX(number) FROM tickets), 0), \
     COALESCE((SELECT value FROM counters WHERE name = 'ticket_number'), 0)) + 1";

/// Deletes up to `limit` tickets resolved before `cutoff`, oldest first, with all their rows.
/// Returns how many.
pub(super) fn purge(t: &Transaction<'_>, cutoff: Timestamp, limit: usize) -> Result<usize> {
    let doomed: Vec<(String, i64)> = {
        let mut stmt = t
            .prepare_cached(
                "SELECT id, number FROM tickets WHERE state = 'resolved' AND resolved_at < ?1 \
                 ORDER BY resolved_at LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![cutoff.as_millis(), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)?
    };
    let Some(highest) = doomed.iter().map(|(_, n)| *n).max() else {
        return Ok(0);
    };
    for (id, number) in &doomed {
        for sql in [
            "DELETE FROM search WHERE rowid IN (SELECT id FROM feed WHERE ticket_id = ?1)",
            "DELETE FROM feed WHERE ticket_id = ?1",
            "DELETE FROM timeline WHERE ticket_id = ?1",
            "DELETE FROM ticket_rooms WHERE ticket_id = ?1",
            "DELETE FROM fired_rooms WHERE ticket_id = ?1",
            "DELETE FROM threads WHERE ticket_id = ?1",
            "DELETE FROM outbox WHERE ticket_id = ?1",
            "DELETE FROM emails WHERE ticket_id = ?1",
            "DELETE FROM email_threads WHERE ticket_id = ?1",
            "DELETE FROM tickets WHERE id = ?1",
        ] {
            t.prepare_cached(sql)
                .and_then(|mut s| s.execute([id]))
                .map_err(err)?;
        }
        t.prepare_cached("DELETE FROM search WHERE rowid = ?1")
            .and_then(|mut s| s.execute([-number]))
            .map_err(err)?;
    }
    t.prepare_cached(
        "INSERT INTO counters (name, value) VALUES ('ticket_number', ?1) \
         ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
    )
    .and_then(|mut s| s.execute([highest]))
    .map_err(err)?;
    Ok(doomed.len())
}
