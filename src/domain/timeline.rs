//! Timeline entries: the append-only, chat-like activity log of a ticket.
//!
//! An entry is never changed or deleted once written; corrections are new entries. Each has a `seq` that
//! counts from 1 per ticket, which is what live clients resume from.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Who may see an entry. Public entries may be mirrored to chat rooms and emails; internal notes stay
/// inside tocsin; system entries record what tocsin itself did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Public,
    Internal,
    System,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Internal => "internal",
            Visibility::System => "system",
        }
    }

    pub fn from_name(name: &str) -> Option<Visibility> {
        match name {
            "public" => Some(Visibility::Public),
            "internal" => Some(Visibility::Internal),
            "system" => Some(Visibility::System),
            _ => None,
        }
    }
}

/// What happened. Later stages (delivery, email, plugins) add their own kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Opened,
    Refired,
    Resolved,
    Reopened,
    Acked,
    Note,
    /// A plugin failed on the alert; tocsin went on without its decision.
    PluginFailed,
    /// A message about the ticket reached a room.
    Delivered,
    /// A message could not be delivered yet; it will be retried.
    DeliveryFailed,
    /// A message was given up on (too old, or refused for good). Admins can retry it.
    DeliveryDead,
    /// A change was summed up in a room's storm digest instead of a message of its own.
    Digested,
    /// A member who was mentioned while not online will be emailed unless they show up first.
    EmailScheduled,
    /// A member was emailed about the ticket.
    Emailed,
    /// A scheduled email was not sent, and why (came online, acked, resolved, unsubscribed).
    EmailCancelled,
    /// An email could not be sent (retried, or given up).
    EmailFailed,
    /// A member took the ticket, was given it, or it was taken away.
    Assigned,
    /// A silence matched the ticket's change: recorded, but nothing was sent to chat or email.
    Silenced,
    /// A room was outside its business hours: the change was held, rerouted, or a notice posted.
    OffHours,
    /// The sender changed the problem's severity (Zabbix's update operations).
    SeverityChanged,
    /// A change event (a deploy, a config push) on the same system, near when the ticket was open.
    Change,
    /// A plugin changed something about the alert (severity, a room, a label...), with before and after.
    PluginDecided,
    /// A plugin routed the ticket to a room that is not configured.
    UnknownRoom,
}

impl EntryKind {
    pub const ALL: [EntryKind; 22] = [
        EntryKind::Opened,
        EntryKind::Refired,
        EntryKind::Resolved,
        EntryKind::Reopened,
        EntryKind::Acked,
        EntryKind::Note,
        EntryKind::PluginFailed,
        EntryKind::Delivered,
        EntryKind::DeliveryFailed,
        EntryKind::DeliveryDead,
        EntryKind::Digested,
        EntryKind::EmailScheduled,
        EntryKind::Emailed,
        EntryKind::EmailCancelled,
        EntryKind::EmailFailed,
        EntryKind::Assigned,
        EntryKind::Silenced,
        EntryKind::OffHours,
        EntryKind::SeverityChanged,
        EntryKind::Change,
        EntryKind::PluginDecided,
        EntryKind::UnknownRoom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Opened => "opened",
            EntryKind::Refired => "refired",
            EntryKind::Resolved => "resolved",
            EntryKind::Reopened => "reopened",
            EntryKind::Acked => "acked",
            EntryKind::Note => "note",
            EntryKind::PluginFailed => "plugin_failed",
            EntryKind::Delivered => "delivered",
            EntryKind::DeliveryFailed => "delivery_failed",
            EntryKind::DeliveryDead => "delivery_dead",
            EntryKind::Digested => "digested",
            EntryKind::EmailScheduled => "email_scheduled",
            EntryKind::Emailed => "emailed",
            EntryKind::EmailCancelled => "email_cancelled",
            EntryKind::EmailFailed => "email_failed",
            EntryKind::Assigned => "assigned",
            EntryKind::Silenced => "silenced",
            EntryKind::OffHours => "off_hours",
            EntryKind::SeverityChanged => "severity_changed",
            EntryKind::Change => "change",
            EntryKind::PluginDecided => "plugin_decided",
            EntryKind::UnknownRoom => "unknown_room",
        }
    }

    pub fn from_name(name: &str) -> Option<EntryKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Whether full-text search indexes entries of this kind. Not the records of a message sent or
    /// summed up in a digest: one is written for every ticket that reaches a room, all saying the
    /// same ("Delivered the message to room ops."), so a search for "message" or a room's name
    /// found every ticket; and without their search rows a recorded send writes 8 WAL frames
    /// instead of 19 (SQLite, medians at one alert per 200 ms). A failed or given-up delivery stays
    /// searchable: its error is what someone looks for.
    pub fn searchable(self) -> bool {
        !matches!(self, EntryKind::Delivered | EntryKind::Digested)
    }
}

/// An entry before the store gives it its `seq`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryDraft {
    pub at: Timestamp,
    pub kind: EntryKind,
    pub visibility: Visibility,
    /// `source:<name>`, `member:<name>` or `system`.
    pub actor: String,
    pub text: String,
    pub data: serde_json::Value,
}

impl EntryDraft {
    pub fn new(
        at: Timestamp,
        kind: EntryKind,
        visibility: Visibility,
        actor: String,
        text: String,
        data: serde_json::Value,
    ) -> Self {
        EntryDraft {
            at,
            kind,
            visibility,
            actor,
            text,
            data,
        }
    }

    /// An entry recording something tocsin or a sender did.
    pub fn system(
        at: Timestamp,
        kind: EntryKind,
        actor: String,
        text: String,
        data: serde_json::Value,
    ) -> Self {
        Self::new(at, kind, Visibility::System, actor, text, data)
    }

    pub fn with_seq(self, seq: i64) -> Entry {
        Entry {
            seq,
            at: self.at,
            kind: self.kind,
            visibility: self.visibility,
            actor: self.actor,
            text: self.text,
            data: self.data,
        }
    }
}

/// A stored timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: i64,
    pub at: Timestamp,
    pub kind: EntryKind,
    pub visibility: Visibility,
    pub actor: String,
    pub text: String,
    pub data: serde_json::Value,
}
