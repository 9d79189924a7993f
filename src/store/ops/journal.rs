//! The dead journal: rows that could not be decoded or applied, moved aside with why, so the rows
//! behind them go on. Each move, retry and delete also writes the system alert about the row into the
//! journal in the same transaction, so its ticket opens and resolves through the ordinary path.

use super::Tx;
use crate::domain::alert::Alert;
use crate::domain::system::{dead_journal_alert, is_dead_journal_notice};
use crate::domain::time::Timestamp;
use crate::store::{Result, StoreError};

/// At most this much of a reason is kept (errors can quote what they could not read).
const MAX_REASON: usize = 2048;

fn clip(reason: &str) -> &str {
    match reason.char_indices().nth(MAX_REASON) {
        Some((i, _)) => &reason[..i],
        None => reason,
    }
}

/// `Store::bury_journal`: false when the row is not (or no longer) in the journal.
pub fn bury(tx: &mut dyn Tx, journal_id: i64, reason: &str, now: Timestamp) -> Result<bool> {
    let Some((received_at, alert)) = tx.take_journal_row(journal_id)? else {
        return Ok(false);
    };
    tx.insert_dead(journal_id, received_at, now, clip(reason), &alert)?;
    // The notice about a dead row is not itself announced again when it goes dead.
    let notice = serde_json::from_str::<Alert>(&alert).is_ok_and(|a| is_dead_journal_notice(&a));
    if !notice {
        let detail = format!(
            "{}. It was moved to the dead journal so the alerts behind it go on; an admin can \
             inspect, retry or delete it on the admin page or at /api/journal/dead.",
            clip(reason)
        );
        tx.append_journal(&[dead_journal_alert(journal_id, true, &detail, now)])?;
    }
    Ok(true)
}

/// Takes dead row `id` out (NotFound if it is not there) and resolves its system ticket; with `retry`,
/// the row goes back to the end of the journal as it was stored, and its new id is returned.
pub fn release(
    tx: &mut dyn Tx,
    id: i64,
    retry: bool,
    member: &str,
    now: Timestamp,
) -> Result<Option<i64>> {
    let Some((journal_id, received_at, alert)) = tx.take_dead(id)? else {
        return Err(StoreError::NotFound);
    };
    let new_id = if retry {
        Some(tx.append_journal_raw(received_at, &alert)?)
    } else {
        None
    };
    let detail = if retry {
        format!("{member} put it back in the journal.")
    } else {
        format!("{member} deleted it.")
    };
    tx.append_journal(&[dead_journal_alert(journal_id, false, &detail, now)])?;
    Ok(new_id)
}
