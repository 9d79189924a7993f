//! The dead journal on SQLite: rows that could not be decoded or applied, moved aside with why, so the
//! rows behind them go on. Each move, retry and delete also writes the system alert about the row into
//! the journal in the same transaction, so its ticket opens and resolves through the ordinary path.

use rusqlite::{params, OptionalExtension, Transaction};

use super::{err, StoreError};
use crate::domain::alert::Alert;
use crate::domain::system::{dead_journal_alert, is_dead_journal_notice};
use crate::domain::time::Timestamp;
use crate::store::{DeadJournal, Result};

/// At most this much of a reason is kept (errors can quote what they could not read).
const MAX_REASON: usize = 2048;

fn append(t: &Transaction<'_>, alert: &Alert) -> Result<i64> {
    let json = serde_json::to_string(alert).map_err(|e| StoreError::Other(e.to_string()))?;
    t.prepare_cached("INSERT INTO journal (received_at, alert) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![alert.received_at.as_millis(), json]))
        .map_err(err)?;
    Ok(t.last_insert_rowid())
}

fn clip(reason: &str) -> &str {
    match reason.char_indices().nth(MAX_REASON) {
        Some((i, _)) => &reason[..i],
        None => reason,
    }
}

pub(super) fn bury(
    t: &Transaction<'_>,
    journal_id: i64,
    reason: &str,
    now: Timestamp,
) -> Result<bool> {
    let row: Option<(i64, String)> = t
        .query_row(
            "SELECT received_at, alert FROM journal WHERE id = ?1",
            [journal_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(err)?;
    let Some((received_at, alert)) = row else {
        return Ok(false);
    };
    t.execute("DELETE FROM journal WHERE id = ?1", [journal_id])
        .map_err(err)?;
    t.execute(
        "INSERT INTO dead_journal (journal_id, received_at, buried_at, reason, alert) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            journal_id,
            received_at,
            now.as_millis(),
            clip(reason),
            alert
        ],
    )
    .map_err(err)?;
    let notice = serde_json::from_str::<Alert>(&alert).is_ok_and(|a| is_dead_journal_notice(&a));
    if !notice {
        let detail = format!(
            "{}. It was moved to the dead journal so the alerts behind it go on; an admin can \
             inspect, retry or delete it on the admin page or at /api/journal/dead.",
            clip(reason)
        );
        append(t, &dead_journal_alert(journal_id, true, &detail, now))?;
    }
    Ok(true)
}

pub(super) fn list(c: &rusqlite::Connection, limit: usize) -> Result<Vec<DeadJournal>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT id, journal_id, received_at, buried_at, reason, alert FROM dead_journal \
             ORDER BY id DESC LIMIT ?1",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok(DeadJournal {
                id: r.get(0)?,
                journal_id: r.get(1)?,
                received_at: Timestamp::from_millis(r.get(2)?),
                buried_at: Timestamp::from_millis(r.get(3)?),
                reason: r.get(4)?,
                alert: r.get(5)?,
            })
        })
        .map_err(err)?;
    rows.collect::<rusqlite::Result<_>>().map_err(err)
}

/// Takes dead row `id` out (NotFound if it is not there) and resolves its system ticket; with `retry`,
/// the row goes back to the end of the journal as it was stored.
pub(super) fn release(
    t: &Transaction<'_>,
    id: i64,
    retry: bool,
    member: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let row: Option<(i64, i64, String)> = t
        .query_row(
            "SELECT journal_id, received_at, alert FROM dead_journal WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(err)?;
    let Some((journal_id, received_at, alert)) = row else {
        return Err(StoreError::NotFound);
    };
    t.execute("DELETE FROM dead_journal WHERE id = ?1", [id])
        .map_err(err)?;
    let new_id = if retry {
        t.execute(
            "INSERT INTO journal (received_at, alert) VALUES (?1, ?2)",
            params![received_at, alert],
        )
        .map_err(err)?;
        Some(t.last_insert_rowid())
    } else {
        None
    };
    let detail = if retry {
        format!("{member} put it back in the journal.")
    } else {
        format!("{member} deleted it.")
    };
    append(t, &dead_journal_alert(journal_id, false, &detail, now))?;
    Ok(new_id)
}

pub(super) fn count(c: &rusqlite::Connection) -> Result<u64> {
    c.query_row("SELECT COUNT(*) FROM dead_journal", [], |r| r.get(0))
        .map_err(err)
}
