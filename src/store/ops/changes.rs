//! Change events into the store: `Store::record_change`, and the changes a ticket is shown when it opens.

use super::{append_entry, append_system_entry, Tx};
use crate::domain::change::{Change, ChangeDraft};
use crate::domain::ticket::Ticket;
use crate::domain::time::Timestamp;
use crate::store::{Result, MAX_CHANGE_TICKETS};

/// The most changes a batch of openings looks at: those still in their window, newest first.
const MAX_ATTACHABLE: usize = 200;

/// `Store::record_change`: the change, then an entry on each open or acked ticket of its system.
pub fn record(
    tx: &mut dyn Tx,
    draft: &ChangeDraft,
    now: Timestamp,
) -> Result<(Change, Vec<String>)> {
    // First: on PostgreSQL this takes the feed lock, before the tickets are looked for (see
    // `ChangeRows::insert_change`).
    let id = tx.insert_change(draft)?;
    let change = draft.clone().with_id(id);
    let Some(label) = change.payload_source.clone() else {
        return Ok((change, Vec::new()));
    };
    let ids = tx.open_tickets_labelled(&change.source, &label, MAX_CHANGE_TICKETS)?;
    for id in &ids {
        // By id, taking the seq in the database: the ticket row itself is left as it is.
        append_system_entry(tx, id, change.entry(now))?;
    }
    Ok((change, ids))
}

/// The changes a batch's openings may be shown, read once per batch and only when needed.
#[derive(Debug, Default)]
pub struct Attachable {
    /// `None` until the batch opens a ticket with a `source` label.
    changes: Option<Vec<Change>>,
    /// The earliest receipt in the batch: no ticket it opens is older.
    since: Option<Timestamp>,
}

impl Attachable {
    pub fn new(since: Option<Timestamp>) -> Self {
        Attachable {
            changes: None,
            since,
        }
    }

    /// Puts the changes that explain a ticket just opened on its timeline, oldest first, at the
    /// ticket's opening time. Call after the ticket and its first entry are written: on PostgreSQL
    /// that took the feed lock, so a change committed concurrently is either seen here or sees the
    /// ticket (see `ChangeRows::insert_change`).
    pub fn attach(&mut self, tx: &mut dyn Tx, ticket: &mut Ticket) -> Result<()> {
        let Some(label) = ticket.labels.get("source").cloned() else {
            return Ok(());
        };
        if self.changes.is_none() {
            let since = self.since.unwrap_or(ticket.created_at);
            self.changes = Some(tx.changes_attachable(since, MAX_ATTACHABLE)?);
        }
        let at = ticket.created_at;
        let found: Vec<Change> = self
            .changes
            .iter()
            .flatten()
            .rev()
            .filter(|c| c.explains_opening(&ticket.source, Some(&label), at))
            .cloned()
            .collect();
        for c in found {
            append_entry(tx, ticket, c.entry(at))?;
        }
        Ok(())
    }
}
