//! The mailer's results: each email row settled once, threads kept, one entry per ticket.

use std::collections::BTreeSet;

use super::{append_system_entry, Tx};
use crate::domain::entries::{self, EmailOutcome};
use crate::domain::time::Timestamp;
use crate::store::tx::Sorted;
use crate::store::{EmailResult, PendingEmail, Result, StoreError, TicketRef};

/// `Store::emails_complete`. Only rows still pending are written: a result for one already settled
/// (a second worker, a replay after a crash) must not write twice.
pub fn complete(tx: &mut dyn Tx, results: &[EmailResult], now: Timestamp) -> Result<()> {
    for result in results {
        let ids: Vec<i64> = match result {
            EmailResult::Sent { ids, .. }
            | EmailResult::Deferred { ids, .. }
            | EmailResult::Failed { ids, .. }
            | EmailResult::GaveUp { ids, .. } => ids.clone(),
            EmailResult::Cancelled { id, .. } => vec![*id],
        };
        let mut rows: Vec<(i64, String, String)> = Vec::new();
        for id in ids {
            if let Some((member, ticket)) = tx.pending_email(id)? {
                rows.push((id, member, ticket));
            }
        }
        let covers = rows
            .iter()
            .map(|(_, _, tk)| tk.as_str())
            .collect::<BTreeSet<_>>()
            .len();
        for (id, member, ticket_id) in &rows {
            tx.settle_email(*id, result, now)?;
            if let (EmailResult::Sent { message_id, .. }, 1) = (result, covers) {
                tx.set_email_thread(member, ticket_id, message_id)?;
            }
        }
        let outcome = match result {
            EmailResult::Deferred { .. } => continue,
            EmailResult::Sent { message_id, .. } => EmailOutcome::Sent { message_id, covers },
            EmailResult::Cancelled { reason, .. } => EmailOutcome::Cancelled { reason },
            EmailResult::Failed { error, next_at, .. } => EmailOutcome::Failed {
                error,
                next_at: *next_at,
            },
            EmailResult::GaveUp { error, .. } => EmailOutcome::GaveUp { error },
        };
        // One timeline entry per ticket, even when a digest covered two mentions of it.
        let mut seen = BTreeSet::new();
        for (_, member, ticket_id) in &rows {
            if seen.insert(ticket_id.as_str()) {
                append_system_entry(tx, ticket_id, entries::email(member, outcome, now))?;
            }
        }
    }
    Ok(())
}

/// `Store::emails_due`, read half: due rows with their tickets as they are now; rows whose ticket is
/// gone or cannot be read come apart as `(id, why)`, to fail alone (left pending, one would come back
/// first every time and hold up the member's other emails).
pub fn due(tx: &mut dyn Tx, now: Timestamp, limit: usize) -> Result<Sorted<PendingEmail>> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (id, member, ticket_id, reason, created_at, attempts) in tx.emails_due(now, limit)? {
        let ticket = match tx.find_ticket(&TicketRef::Id(ticket_id)) {
            Ok(Some(ticket)) => ticket,
            Ok(None) => {
                bad.push((id, "its ticket no longer exists".to_string()));
                continue;
            }
            Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
            Err(e) => {
                bad.push((id, format!("its ticket cannot be read: {e}")));
                continue;
            }
        };
        out.push(PendingEmail {
            id,
            member,
            ticket,
            reason,
            created_at,
            attempts,
        });
    }
    Ok((out, bad))
}
