//! What happens inside a transaction, written once for every backend over [`Tx`].
//!
//! Each function here is one store operation's body: it reads and writes through the transaction
//! interface and takes its decisions from `domain` (the ticket state machine, routing, silences, mail
//! planning, entry texts). The backend runs it inside one transaction and commits it whole, so a ticket
//! change, its timeline entries, its deliveries and its emails are never separated by a crash.

pub mod apply;
pub mod changes;
pub mod emails;
mod enqueue;
pub mod journal;
pub mod lease;
pub mod outbox;

use super::tx::Tx;
use super::{Result, StoreError};
use crate::domain::silence::{self, Silence, SilenceDraft};
use crate::domain::ticket::Ticket;
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryDraft};

/// Appends an entry with the ticket's next `seq`, bumping `last_seq` on the ticket value (the caller
/// saves the ticket).
pub fn append_entry(tx: &mut dyn Tx, ticket: &mut Ticket, draft: EntryDraft) -> Result<Entry> {
    ticket.last_seq += 1;
    let entry = draft.with_seq(ticket.last_seq);
    tx.insert_entry(&ticket.id, &entry)?;
    Ok(entry)
}

/// Appends a system entry to a ticket known only by id, taking the next `seq` in the database; nothing
/// when the ticket is gone.
pub fn append_system_entry(tx: &mut dyn Tx, ticket_id: &str, draft: EntryDraft) -> Result<()> {
    match tx.next_seq(ticket_id)? {
        Some(seq) => tx.insert_entry(ticket_id, &draft.with_seq(seq)),
        None => Ok(()),
    }
}

/// [`append_system_entry`] for many entries, in order, their seqs taken in one go
/// (`TicketRows::next_seqs`: one statement on PostgreSQL, whatever their number).
pub fn append_system_entries(tx: &mut dyn Tx, entries: Vec<(String, EntryDraft)>) -> Result<()> {
    let seqs = {
        let tickets: Vec<&str> = entries.iter().map(|(t, _)| t.as_str()).collect();
        tx.next_seqs(&tickets)?
    };
    for ((ticket, draft), seq) in entries.into_iter().zip(seqs) {
        if let Some(seq) = seq {
            tx.insert_entry(&ticket, &draft.with_seq(seq))?;
        }
    }
    Ok(())
}

/// `Store::create_silence`: refused when the most silences there may be are in force or upcoming.
pub fn create_silence(tx: &mut dyn Tx, draft: &SilenceDraft, now: Timestamp) -> Result<Silence> {
    let current = tx.silences_ending_after(now)?;
    if current >= silence::MAX_SILENCES {
        return Err(StoreError::Full(format!(
            "{current} silences are in force or upcoming, the most there may be; expire some first"
        )));
    }
    let id = tx.insert_silence(draft, now)?;
    tx.find_silence(id)?.ok_or(StoreError::NotFound)
}

/// `Store::expire_silence`: ends it now; one already over is returned as it is.
pub fn expire_silence(tx: &mut dyn Tx, id: i64, member: &str, now: Timestamp) -> Result<Silence> {
    let current = tx.find_silence(id)?.ok_or(StoreError::NotFound)?;
    if current.ends_at <= now {
        return Ok(current);
    }
    tx.end_silence(id, now, member)?;
    tx.find_silence(id)?.ok_or(StoreError::NotFound)
}
