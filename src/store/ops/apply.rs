//! Alerts and actions into tickets: a journal batch, lease expiry, a member's action, replies by email.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::changes::Attachable;
use super::enqueue::enqueue;
use super::{append_entry, Tx};
use crate::domain::plugin::FailureKind;
use crate::domain::routing::Router;
use crate::domain::ticket::{self, Action, Actor, AlertDecision, Heartbeat, Policy, Ticket};
use crate::domain::time::Timestamp;
use crate::domain::timeline::Entry;
use crate::domain::{decision, entries};
use crate::store::{Applied, EmailReply, JournalEntry, Result, StoreError, TicketRef};

/// `Store::apply_journal`: the entries still pending are taken out of the journal and applied, in order;
/// one already gone (applied by an earlier run that crashed after committing) is skipped.
///
/// The batch's current tickets are read (and on PostgreSQL locked) in one statement and kept in memory
/// as its alerts change them; heartbeats are saved together at the end, each ticket's last one. Why:
/// on PostgreSQL every statement is a round trip, and reading and touching ticket by ticket made
/// applying resends two round trips per alert.
pub fn batch(
    tx: &mut dyn Tx,
    entries: &[JournalEntry],
    policy: &Policy,
    router: Option<&Router>,
) -> Result<Vec<Applied>> {
    let mut out = Vec::with_capacity(entries.len());
    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
    let mut pending = tx.take_journal_many(&ids)?;
    let keys: BTreeSet<(String, String)> = entries
        .iter()
        .filter(|e| e.dropped.is_none() && pending.contains(&e.id))
        .map(|e| (e.alert.source.clone(), e.alert.fingerprint.clone()))
        .collect();
    let keys: Vec<_> = keys.into_iter().collect();
    let mut batch = Batch {
        current: tx
            .latest_for_keys(&keys)?
            .into_iter()
            .map(|t| ((t.source.clone(), t.fingerprint.clone()), t))
            .collect(),
        beats: BTreeMap::new(),
        changes: Attachable::new(entries.iter().map(|e| e.alert.received_at).min()),
    };
    tx.reserve_ticket_numbers(&|| expected_openings(entries, &pending, &batch.current, policy))?;
    for e in entries {
        if !pending.remove(&e.id) {
            continue;
        }
        match &e.dropped {
            Some(drop) => {
                tx.insert_dropped(e.alert.received_at, &drop.plugin, &drop.reason, &e.alert)?;
                out.push(Applied {
                    journal_id: e.id,
                    ticket_id: None,
                    outcome: "dropped",
                });
            }
            None => out.push(one(tx, e, policy, router, &mut batch)?),
        }
    }
    let beats: Vec<Heartbeat> = batch.beats.into_values().collect();
    tx.touch_tickets(&beats)?;
    Ok(out)
}

/// How many tickets the batch will open, to take their numbers at once (one round trip on
/// PostgreSQL instead of one per new ticket): each key's first alert decided against the key's
/// current ticket. Exact unless a key opens twice in one batch (a later number is then taken on its
/// own); never more than the batch opens, so reserving leaves no gaps of its own.
fn expected_openings(
    entries: &[JournalEntry],
    pending: &BTreeSet<i64>,
    current: &HashMap<(String, String), Ticket>,
    policy: &Policy,
) -> usize {
    let mut seen = BTreeSet::new();
    entries
        .iter()
        .filter(|e| e.dropped.is_none() && pending.contains(&e.id))
        .filter(|e| seen.insert((e.alert.source.as_str(), e.alert.fingerprint.as_str())))
        .filter(|e| {
            let key = (e.alert.source.clone(), e.alert.fingerprint.clone());
            matches!(
                ticket::decide(current.get(&key), &e.alert, policy),
                AlertDecision::Open { .. }
            )
        })
        .count()
}

/// A batch's tickets while it is applied.
struct Batch {
    /// The current ticket of each key, as the batch has left it so far.
    current: HashMap<(String, String), Ticket>,
    /// By ticket id: heartbeats not saved yet. A ticket saved whole after its heartbeat leaves here
    /// (the whole row carries the heartbeat fields too).
    beats: BTreeMap<String, Heartbeat>,
    /// Change events the batch's new tickets may be shown.
    changes: Attachable,
}

fn one(
    tx: &mut dyn Tx,
    entry: &JournalEntry,
    policy: &Policy,
    router: Option<&Router>,
    batch: &mut Batch,
) -> Result<Applied> {
    let alert = &entry.alert;
    let key = (alert.source.clone(), alert.fingerprint.clone());
    let current = batch.current.remove(&key);
    let decision = ticket::decide(current.as_ref(), alert, policy);
    let outcome = decision.outcome();
    let ticket_id = match decision {
        AlertDecision::Ignore { .. } => {
            let id = current.as_ref().map(|c| c.id.clone());
            if let Some(c) = current {
                batch.current.insert(key, c);
            }
            id
        }
        AlertDecision::Open { .. } => {
            if let Some(prev) = &current {
                tx.retire_ticket(&prev.id)?;
            }
            let number = tx.next_ticket_number()?;
            let id = uuid::Uuid::now_v7().to_string();
            let (mut new, draft) = ticket::open(id, number, alert, current.as_ref());
            new.last_seq = 1;
            let opened = draft.with_seq(1);
            tx.insert_opened(&new, &opened)?;
            enqueue(tx, router, &mut new, &opened, entry.silences.as_deref())?;
            record_decisions(tx, &mut new, entry, None, router)?;
            record_failures(tx, &mut new, entry, true)?;
            batch.changes.attach(tx, &mut new)?;
            if new.last_seq > 1 {
                tx.update_ticket(&new)?;
            }
            let id = new.id.clone();
            batch.current.insert(key, new);
            Some(id)
        }
        d => {
            let mut cur =
                current.ok_or_else(|| StoreError::Other("decision without ticket".into()))?;
            let heartbeat = ticket::is_heartbeat(&cur, &d, alert);
            // Only alerts a plugin changed or routed can make decision entries: copy the ticket
            // for comparison just for those (most alerts, resends above all, have neither).
            let before = (!entry.decisions.is_empty() || !alert.routing.rooms.is_empty())
                .then(|| cur.clone());
            let drafts = ticket::apply_alert(&mut cur, &d, alert);
            let changed = !drafts.is_empty();
            for draft in drafts {
                let e = append_entry(tx, &mut cur, draft)?;
                enqueue(tx, router, &mut cur, &e, entry.silences.as_deref())?;
            }
            let decided = match &before {
                Some(b) => record_decisions(tx, &mut cur, entry, Some(b), router)?,
                None => 0,
            };
            let failed = record_failures(tx, &mut cur, entry, changed)?;
            // A heartbeat shows nothing new by definition; should a decision still be news, or a
            // breaker open on it, the ticket (its `last_seq`) is saved whole.
            if heartbeat && decided == 0 && failed == 0 {
                batch.beats.insert(cur.id.clone(), cur.heartbeat());
            } else {
                batch.beats.remove(&cur.id);
                tx.update_ticket(&cur)?;
            }
            let id = cur.id.clone();
            batch.current.insert(key, cur);
            Some(id)
        }
    };
    Ok(Applied {
        journal_id: entry.id,
        ticket_id,
        outcome,
    })
}

/// One `plugin_decided` entry per change a plugin made that is news for the ticket (all of them on a
/// new ticket; on an existing one, those it did not show before the alert), then an `unknown_room`
/// entry (and a warning) per room the plugins added that the config does not have and the ticket did
/// not have before: once per ticket and room, not per resend. Returns how many entries it wrote.
fn record_decisions(
    tx: &mut dyn Tx,
    ticket: &mut Ticket,
    entry: &JournalEntry,
    before: Option<&Ticket>,
    router: Option<&Router>,
) -> Result<usize> {
    let at = entry.alert.received_at;
    let mut n = 0;
    for d in &entry.decisions {
        if before.is_none_or(|b| decision::is_news(b, d)) {
            append_entry(tx, ticket, entries::plugin_decided(at, d))?;
            n += 1;
        }
    }
    let Some(router) = router else {
        return Ok(n);
    };
    let unknown: Vec<String> = ticket
        .routing
        .rooms
        .iter()
        .filter(|r| !router.rooms.contains_key(*r))
        .filter(|r| before.is_none_or(|b| !b.routing.rooms.contains(r)))
        .cloned()
        .collect();
    for room in unknown {
        let plugin = entry
            .decisions
            .iter()
            .find(|d| d.field == decision::Field::Room && d.after.as_deref() == Some(&room))
            .map(|d| d.plugin.as_str());
        tracing::warn!(
            plugin = plugin.unwrap_or("?"),
            room = %room,
            ticket = %ticket.id,
            source = %ticket.source,
            "A plugin routed a ticket to a room that is not configured; nothing is sent there."
        );
        append_entry(tx, ticket, entries::unknown_room(at, plugin, &room))?;
        n += 1;
    }
    Ok(n)
}

/// Plugin failures go on the timeline only when the alert changed the ticket (opened, refired, reopened,
/// resolved): a failing plugin must not add an entry for every heartbeat. Except a breaker opening
/// (rare: once per key and cooldown), which says why the plugin stops deciding about the ticket's
/// alerts, and mostly happens on resends. Returns how many entries it wrote.
fn record_failures(
    tx: &mut dyn Tx,
    ticket: &mut Ticket,
    entry: &JournalEntry,
    changed: bool,
) -> Result<usize> {
    let mut n = 0;
    for f in &entry.failures {
        if changed || f.kind == FailureKind::BreakerOpen {
            append_entry(
                tx,
                ticket,
                entries::plugin_failed(entry.alert.received_at, f),
            )?;
            n += 1;
        }
    }
    Ok(n)
}

/// `Store::expire_leases`: tickets whose lease ended resolve, with their messages.
pub fn expire(
    tx: &mut dyn Tx,
    now: Timestamp,
    limit: usize,
    router: Option<&Router>,
) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for mut tk in tx.tickets_expiring(now, limit)? {
        if let Some(draft) = ticket::expire(&mut tk, now) {
            let e = append_entry(tx, &mut tk, draft)?;
            enqueue(tx, router, &mut tk, &e, None)?;
            tx.update_ticket(&tk)?;
            ids.push(tk.id);
        }
    }
    Ok(ids)
}

/// `Store::act`: a member's action, refused when the ticket's state does not allow it.
pub fn act(
    tx: &mut dyn Tx,
    r: &TicketRef,
    action: &Action,
    actor: &Actor,
    now: Timestamp,
    router: Option<&Router>,
) -> Result<(Ticket, Entry)> {
    let mut tk = tx.find_ticket(r)?.ok_or(StoreError::NotFound)?;
    let draft = ticket::act(&mut tk, action, actor, now)?;
    let entry = append_entry(tx, &mut tk, draft)?;
    enqueue(tx, router, &mut tk, &entry, None)?;
    tx.update_ticket(&tk)?;
    Ok((tk, entry))
}

/// `Store::take_email_reply`: forget expired Message-IDs, then per reply remember it (skipping it when
/// it was taken before) and apply its actions.
pub fn email_reply(
    tx: &mut dyn Tx,
    router: Option<&Router>,
    message_id: &str,
    replies: &[EmailReply],
    until: Timestamp,
    now: Timestamp,
) -> Result<usize> {
    tx.forget_replies(now)?;
    let mut taken = 0;
    for reply in replies {
        let ticket = tx.find_ticket(&reply.ticket)?.ok_or(StoreError::NotFound)?;
        if !tx.remember_reply(message_id, &ticket.id, &reply.actor.member, until)? {
            continue;
        }
        for step in &reply.actions {
            // Read again: the previous action changed the ticket.
            match act(tx, &reply.ticket, &step.action, &reply.actor, now, router) {
                Ok(_) => {}
                Err(StoreError::Rejected(_)) if step.optional => {}
                Err(e) => return Err(e),
            }
        }
        taken += 1;
    }
    Ok(taken)
}
