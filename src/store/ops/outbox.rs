//! The outbox's results: attempts recorded with their timeline entries, storm digests, admin retries.

use super::{append_system_entries, append_system_entry, Tx};
use crate::domain::entries::{self, Attempt, DeliveryRef};
use crate::domain::message::Content;
use crate::domain::routing::DeliveryKind;
use crate::domain::time::Timestamp;
use crate::store::tx::NewDelivery;
use crate::store::{Delivery, DeliveryResult, Result, StoreError};

fn delivery_ref(d: &Delivery) -> DeliveryRef<'_> {
    DeliveryRef {
        id: d.id,
        room: &d.room,
        kind: d.kind,
        attempts: d.attempts,
    }
}

/// `Store::outbox_complete`: each result recorded, a root message's handle kept as the ticket's thread
/// in its room, an entry on the ticket for every attempt but a skip.
pub fn complete(tx: &mut dyn Tx, results: &[DeliveryResult], now: Timestamp) -> Result<()> {
    // The rows settled, the threads kept, then every entry's seq taken at once: on PostgreSQL a
    // step's record is a few statements whatever its number of sends, where it was three round
    // trips per send (the settle, the seq, and the entry before them written by the next).
    let settled = tx.settle_deliveries(results)?;
    let mut records = Vec::new();
    for (result, d) in results.iter().zip(settled) {
        let Some(d) = d else {
            continue;
        };
        if let (
            DeliveryResult::Sent {
                handle: Some(h), ..
            },
            DeliveryKind::Root,
            Some(ticket),
        ) = (result, d.kind, &d.ticket_id)
        {
            tx.set_thread(ticket, &d.room, h)?;
        }
        let attempt = match result {
            DeliveryResult::Sent { .. } => Attempt::Sent,
            DeliveryResult::Failed { error, next_at, .. } => Attempt::Failed {
                error,
                next_at: *next_at,
            },
            DeliveryResult::Dead { error, .. } => Attempt::Dead { error },
            DeliveryResult::Skipped { .. } => continue,
        };
        if let Some(ticket) = d.ticket_id.clone() {
            let delivery = DeliveryRef {
                id: result.id(),
                room: &d.room,
                kind: d.kind,
                attempts: d.attempts,
            };
            records.push((ticket, entries::delivery(delivery, attempt, now)));
        }
    }
    append_system_entries(tx, records)
}

/// `Store::outbox_digest`: the covered rows still pending leave the outbox for one digest row; each of
/// their tickets says so.
pub fn digest(
    tx: &mut dyn Tx,
    room: &str,
    covered: &[i64],
    digest: &Content,
    now: Timestamp,
) -> Result<i64> {
    let id = tx.insert_delivery(NewDelivery {
        room,
        ticket_id: None,
        kind: DeliveryKind::Digest,
        content: digest,
        at: now,
        held_until: None,
    })?;
    // In a few statements whatever the storm's size, as `complete` records sends: one by one, a
    // digest of thousands of changes was three round trips each on PostgreSQL, holding their
    // tickets' rows all the while.
    let taken = tx.take_pending_deliveries(covered)?;
    let records = covered
        .iter()
        .zip(taken)
        .filter_map(|(&c, t)| Some((t.flatten()?, entries::digested(room, c, id, now))))
        .collect();
    append_system_entries(tx, records)?;
    Ok(id)
}

/// `Store::outbox_retry`: a dead delivery back in line, said on its ticket.
pub fn retry(tx: &mut dyn Tx, id: i64, member: &str, now: Timestamp) -> Result<Delivery> {
    if !tx.revive_delivery(id, now)? {
        return Err(StoreError::NotFound);
    }
    let d = tx.find_delivery(id)?.ok_or(StoreError::NotFound)?;
    if let Some(ticket) = &d.ticket_id {
        append_system_entry(
            tx,
            ticket,
            entries::delivery_retried(delivery_ref(&d), member, now),
        )?;
    }
    Ok(d)
}
