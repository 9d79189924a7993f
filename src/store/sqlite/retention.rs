//! Retention on SQLite: resolved tickets older than `tickets.retention` are deleted with everything
//! that hangs off them (timeline, feed, search rows, rooms, threads, outbox and email rows), a few at a
//! time so the one writer is never held for long. Also the counters that keep `/metrics` O(1) in the
//! number of tickets, and the ticket-number high-water mark that keeps numbers from being reused.

use rusqlite::{params, Connection};

use super::err;
use crate::domain::time::Timestamp;
use crate::store::Result;

/// The next ticket number: above every ticket there is and every one there ever was.
pub(super) const NEXT_NUMBER: &str = "SELECT MAX(COALESCE((SELECT MAX(number) FROM tickets), 0), \
     COALESCE((SELECT value FROM counters WHERE name = 'ticket_number'), 0)) + 1";

/// Deletes up to `limit` tickets resolved before `cutoff`, oldest first, with all their rows.
/// Returns how many.
pub(super) fn purge(t: &Connection, cutoff: Timestamp, limit: usize) -> Result<usize> {
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
