//! The timeline entries tocsin writes about its own work (deliveries, emails, plugins, silences,
//! storms), with their English texts and data, in one place.
//!
//! Why here: every store backend writes these entries from the same orchestration (`store/ops/`), and
//! their wording is part of the product (people read it on the timeline and search it), so it lives in
//! `domain`, pure and shared, rather than next to any SQL.

use serde_json::json;

use super::decision::{self, PluginDecision};
use super::mail::MailReason;
use super::plugin::{FailureKind, PluginFailure};
use super::presence::PresenceState;
use super::routing::DeliveryKind;
use super::silence::{self, Silence};
use super::time::Timestamp;
use super::timeline::{EntryDraft, EntryKind};

/// A plugin failed on the alert that changed the ticket.
pub fn plugin_failed(at: Timestamp, f: &PluginFailure) -> EntryDraft {
    EntryDraft::system(
        at,
        EntryKind::PluginFailed,
        format!("plugin:{}", f.plugin),
        match f.kind {
            FailureKind::BreakerOpen => format!("Plugin {}: {}.", f.plugin, f.message),
            _ => format!(
                "Plugin {} failed ({}): {}. The alert went on without its decision.",
                f.plugin,
                f.kind.as_str(),
                f.message
            ),
        },
        json!({"plugin": f.plugin, "kind": f.kind, "message": f.message, "logs": f.logs}),
    )
}

/// One change a plugin made to the alert that changed the ticket.
pub fn plugin_decided(at: Timestamp, d: &PluginDecision) -> EntryDraft {
    EntryDraft::system(
        at,
        EntryKind::PluginDecided,
        format!("plugin:{}", d.plugin),
        decision::describe(d),
        json!({"plugin": d.plugin, "field": d.field, "key": d.key, "before": d.before, "after": d.after}),
    )
}

/// A plugin routed the ticket to a room the config does not have: nothing goes there.
pub fn unknown_room(at: Timestamp, plugin: Option<&str>, room: &str) -> EntryDraft {
    let by = plugin.map_or_else(|| "A plugin".to_string(), |p| format!("Plugin {p}"));
    EntryDraft::system(
        at,
        EntryKind::UnknownRoom,
        plugin.map_or_else(|| "system".to_string(), |p| format!("plugin:{p}")),
        format!("{by} routed the ticket to room {room}, which is not configured: nothing was sent there."),
        json!({"plugin": plugin, "room": room}),
    )
}

/// A firing was silenced: recorded, nothing sent.
pub fn silenced(at: Timestamp, s: &Silence) -> EntryDraft {
    EntryDraft::system(
        at,
        EntryKind::Silenced,
        format!("member:{}", s.author),
        silence::silenced_text(s),
        json!({"silence": s.id, "author": s.author, "ends_at": s.ends_at}),
    )
}

/// An email was scheduled for a member who was not online.
pub fn email_scheduled(
    at: Timestamp,
    email: i64,
    member: &str,
    due: Timestamp,
    presence: PresenceState,
    reason: &MailReason,
) -> EntryDraft {
    EntryDraft::system(
        at,
        EntryKind::EmailScheduled,
        "system".into(),
        format!(
            "Email to {member} due at {} unless they show up first ({}, {}).",
            due.to_rfc3339(),
            presence.as_str(),
            reason.describe()
        ),
        json!({"email": email, "member": member, "due": due, "presence": presence, "reason": reason}),
    )
}

/// What one attempt at a delivery came to, for its entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Attempt<'a> {
    Sent,
    Failed { error: &'a str, next_at: Timestamp },
    Dead { error: &'a str },
}

/// The delivery an entry is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryRef<'a> {
    pub id: i64,
    pub room: &'a str,
    pub kind: DeliveryKind,
    /// Attempts made before this one.
    pub attempts: u32,
}

fn delivery_what(kind: DeliveryKind) -> &'static str {
    match kind {
        DeliveryKind::Root => "message",
        DeliveryKind::Reply => "update",
        DeliveryKind::EditRoot => "edit of the first message",
        DeliveryKind::Digest => "digest",
        DeliveryKind::Notice => "off-hours notice",
    }
}

/// One attempt at a delivery.
pub fn delivery(d: DeliveryRef<'_>, attempt: Attempt<'_>, now: Timestamp) -> EntryDraft {
    let what = delivery_what(d.kind);
    let room = d.room;
    let n = d.attempts + 1;
    let (kind, text, error) = match attempt {
        Attempt::Sent => (
            EntryKind::Delivered,
            format!("Delivered the {what} to room {room}."),
            None,
        ),
        Attempt::Failed { error, next_at } => (
            EntryKind::DeliveryFailed,
            format!(
                "Delivering the {what} to room {room} failed (attempt {n}): {error}. Retrying at {}.",
                next_at.to_rfc3339()
            ),
            Some(error),
        ),
        Attempt::Dead { error } => (
            EntryKind::DeliveryDead,
            format!("Gave up delivering the {what} to room {room} after {n} attempts: {error}."),
            Some(error),
        ),
    };
    EntryDraft::system(
        now,
        kind,
        format!("room:{room}"),
        text,
        json!({"room": room, "delivery": d.id, "kind": d.kind.as_str(), "attempt": n, "error": error}),
    )
}

/// A member put a dead delivery back in line.
pub fn delivery_retried(d: DeliveryRef<'_>, member: &str, now: Timestamp) -> EntryDraft {
    EntryDraft::system(
        now,
        EntryKind::DeliveryFailed,
        format!("member:{member}"),
        format!(
            "{member} put the dead delivery to room {} back in line.",
            d.room
        ),
        json!({"room": d.room, "delivery": d.id, "kind": d.kind.as_str(), "retried_by": member}),
    )
}

/// A change went into its room's storm digest.
pub fn digested(room: &str, delivery: i64, digest: i64, now: Timestamp) -> EntryDraft {
    EntryDraft::system(
        now,
        EntryKind::Digested,
        format!("room:{room}"),
        format!("Room {room} is in a storm: this change went into its digest instead of a message of its own."),
        json!({"room": room, "delivery": delivery, "digest": digest}),
    )
}

/// What happened to one email, as its entry says it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EmailOutcome<'a> {
    /// Sent in an email covering `covers` tickets.
    Sent {
        message_id: &'a str,
        covers: usize,
    },
    Cancelled {
        reason: &'a str,
    },
    Failed {
        error: &'a str,
        next_at: Timestamp,
    },
    GaveUp {
        error: &'a str,
    },
}

/// What happened to one email to `member`.
pub fn email(member: &str, outcome: EmailOutcome<'_>, now: Timestamp) -> EntryDraft {
    let (kind, text, data) = match outcome {
        EmailOutcome::Sent { message_id, covers } => (
            EntryKind::Emailed,
            if covers > 1 {
                format!("Emailed {member} in a digest of {covers} tickets (<{message_id}>).")
            } else {
                format!("Emailed {member} (<{message_id}>).")
            },
            json!({"member": member, "message_id": message_id, "tickets": covers}),
        ),
        EmailOutcome::Cancelled { reason } => (
            EntryKind::EmailCancelled,
            format!("Email to {member} not sent: {reason}."),
            json!({"member": member, "reason": reason}),
        ),
        EmailOutcome::Failed { error, next_at } => (
            EntryKind::EmailFailed,
            format!(
                "Email to {member} failed: {error}. Trying again at {}.",
                next_at.to_rfc3339()
            ),
            json!({"member": member, "error": error, "next_at": next_at}),
        ),
        EmailOutcome::GaveUp { error } => (
            EntryKind::EmailFailed,
            format!("Email to {member} given up: {error}."),
            json!({"member": member, "error": error, "final": true}),
        ),
    };
    EntryDraft::system(now, kind, "system".into(), text, data)
}
