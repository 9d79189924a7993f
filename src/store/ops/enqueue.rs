//! From a timeline entry to the deliveries and emails it causes, inside the entry's transaction:
//! routing, business hours, silences and mail planning.

use std::collections::{BTreeMap, BTreeSet};

use super::{append_entry, Tx};
use crate::domain::entries;
use crate::domain::presence::Presence;
use crate::domain::routing::{DeliveryKind, OffHoursAction, Router};
use crate::domain::silence::{self, Silence, Silencing};
use crate::domain::ticket::Ticket;
use crate::domain::timeline::{Entry, EntryDraft, EntryKind};
use crate::store::tx::NewDelivery;
use crate::store::Result;

/// Writes the deliveries routing plans for a new timeline entry, due at the entry's time, and
/// schedules the emails it calls for (with a timeline entry each, so the caller must save `ticket`).
///
/// Silences apply here: when one in force at the entry's time matches the ticket, the change is
/// recorded but nothing goes to chat or email, except a resolution to the rooms that were told about the
/// firing (`domain::silence::keep_deliveries`); a silenced firing gets a `silenced` entry.
/// `candidates`: the silences the processor found may apply (`None`: check every one in force).
pub(super) fn enqueue(
    tx: &mut dyn Tx,
    router: Option<&Router>,
    ticket: &mut Ticket,
    entry: &Entry,
    candidates: Option<&[Silence]>,
) -> Result<()> {
    let Some(router) = router else {
        return Ok(());
    };
    if matches!(entry.kind, EntryKind::Opened | EntryKind::Reopened) {
        for room in router.targets(ticket).0 {
            tx.add_ticket_room(&room, &ticket.id)?;
        }
    }
    let plan = router.plan_full(ticket, entry);
    let mut planned = plan.deliveries;
    // One off-hours notice per room and off-hours period.
    for ev in &plan.off_hours {
        if let OffHoursAction::Noticed { period_start, .. } = ev.action {
            if tx.notice_posted(&ev.room, period_start)? {
                planned.retain(|d| !(d.kind == DeliveryKind::Notice && d.room == ev.room));
            }
        }
    }
    let firing = silence::is_firing(entry.kind);
    let wants_mail = !router.mail.members.is_empty()
        && matches!(entry.kind, EntryKind::Opened | EntryKind::Reopened);
    let silenced_by = if firing || wants_mail || !planned.is_empty() {
        match candidates {
            // Found by the processor off the writer: only these few are checked again here.
            Some(candidates) => silence::silencing(candidates, ticket, entry.at).cloned(),
            None => {
                let active = tx.silences_between(entry.at, entry.at)?;
                silence::silencing(&active, ticket, entry.at).cloned()
            }
        }
    } else {
        None
    };
    let silencing = match &silenced_by {
        Some(_) => Silencing::Active,
        None if !firing && !planned.is_empty() && latest_firing_silenced(tx, &ticket.id)? => {
            Silencing::Ended
        }
        None => Silencing::Off,
    };
    let fired = if silencing == Silencing::Off {
        BTreeSet::new()
    } else {
        tx.fired_rooms(&ticket.id)?
    };
    let kept = silence::keep_deliveries(planned, entry.kind, silencing, &fired);
    for d in &kept {
        tx.queue_delivery(NewDelivery {
            room: &d.room,
            ticket_id: Some(&ticket.id),
            kind: d.kind,
            content: &d.content,
            at: entry.at,
            held_until: d.hold_until,
        })?;
        if firing {
            tx.add_fired_room(&ticket.id, &d.room)?;
        }
    }
    // What business hours did, for the rooms that still get something.
    for ev in plan.off_hours {
        let happened = match &ev.action {
            OffHoursAction::Noticed { .. } => kept
                .iter()
                .any(|d| d.kind == DeliveryKind::Notice && d.room == ev.room),
            OffHoursAction::Held { .. } => kept.iter().any(|d| d.room == ev.room),
            OffHoursAction::Routed { to } => kept.iter().any(|d| &d.room == to),
        };
        if !happened {
            continue;
        }
        if let OffHoursAction::Noticed { period_start, .. } = ev.action {
            tx.record_notice(&ev.room, period_start, entry.at)?;
        }
        let draft = EntryDraft::system(
            entry.at,
            EntryKind::OffHours,
            format!("room:{}", ev.room),
            ev.text.clone(),
            ev.data(),
        );
        append_entry(tx, ticket, draft)?;
    }
    if let (Some(s), true) = (&silenced_by, firing) {
        append_entry(tx, ticket, entries::silenced(entry.at, s))?;
    }
    if !wants_mail || !silence::may_email(silencing) {
        return Ok(());
    }
    let presence = effective_presence(tx)?;
    let unsubscribed = tx.unsubscribed()?;
    for d in router.plan_mail(ticket, entry, &presence, &unsubscribed) {
        // One pending email per member and ticket: a reopening before the first went out adds nothing.
        if tx.email_waiting(&d.member, &ticket.id)? {
            continue;
        }
        let id = tx.insert_email(&d.member, &ticket.id, &d.reason, entry.at, d.due)?;
        let draft = entries::email_scheduled(entry.at, id, &d.member, d.due, d.presence, &d.reason);
        append_entry(tx, ticket, draft)?;
    }
    Ok(())
}

/// Whether the ticket's latest firing (opening, refire or reopening) was silenced.
fn latest_firing_silenced(tx: &mut dyn Tx, ticket_id: &str) -> Result<bool> {
    let kinds = [
        EntryKind::Opened,
        EntryKind::Refired,
        EntryKind::Reopened,
        EntryKind::Silenced,
    ];
    Ok(tx.latest_entry_kind(ticket_id, &kinds)? == Some(EntryKind::Silenced))
}

/// Every member's presence, added up over sources.
pub fn effective_presence(tx: &mut dyn Tx) -> Result<BTreeMap<String, Presence>> {
    let mut by_member: BTreeMap<String, Vec<Presence>> = BTreeMap::new();
    for (member, p) in tx.presence()? {
        by_member.entry(member).or_default().push(p);
    }
    Ok(by_member
        .into_iter()
        .map(|(m, reports)| (m, crate::domain::presence::effective(&reports)))
        .collect())
}
