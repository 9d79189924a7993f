//! What a chat message says, before any platform renders it: a ticket change or a storm digest.
//!
//! Routing decides these (pure, at the moment of the change) and the outbox stores them as JSON, so a
//! message delivered an hour late after an outage still describes the change it was made for. Every
//! string in here that came from an alert is untrusted: sinks escape it for their format.

use serde::{Deserialize, Serialize};

use super::alert::{Labels, Severity};
use super::ticket::TicketState;
use super::time::Timestamp;

/// What a platform can do with a ticket's messages, which decides what routing plans for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// Follow-ups can go into a thread under the ticket's first message.
    pub threads: bool,
    /// The first message can be edited in place (on ack and resolve, and for storm digests).
    pub edits: bool,
}

/// What happened to the ticket that this message reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Opened,
    Refired,
    Reopened,
    Acked {
        by: String,
    },
    Resolved {
        by: String,
    },
    /// A public note, mirrored into the ticket's thread.
    Note {
        author: String,
        text: String,
    },
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Refired => "refired",
            Change::Reopened => "reopened",
            Change::Acked { .. } => "acked",
            Change::Resolved { .. } => "resolved",
            Change::Note { .. } => "note",
        }
    }
}

/// Someone routing decided to ping. Only these may notify anyone: text from alerts never does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mention {
    /// A member, with their handle on the room's platform if they have one (else shown by name).
    Member {
        name: String,
        handle: Option<String>,
    },
    /// Everyone active in the room (Slack `<!here>`, Mattermost `@here`, ...).
    Here,
    /// Everyone in the room (Slack `<!channel>`, Matrix `@room`, Discord `@everyone`).
    All,
}

/// One ticket change, as one chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketMessage {
    pub ticket_id: String,
    pub number: i64,
    pub title: String,
    pub state: TicketState,
    pub severity: Severity,
    pub source: String,
    /// The labels worth showing (routing picks them; `alertname`, `instance`, `job`, ... first).
    pub labels: Labels,
    /// A line or two about the problem: the alert's description or summary annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The ticket in tocsin's UI (`public_url` based).
    pub link: String,
    pub change: Change,
    #[serde(default)]
    pub mentions: Vec<Mention>,
    pub at: Timestamp,
}

impl TicketMessage {
    /// `T-42`.
    pub fn reference(&self) -> String {
        format!("T-{}", self.number)
    }

    /// `FIRING`, `ACKED`, `RESOLVED`: the state shown in brackets at the start of a message.
    pub fn state_tag(&self) -> &'static str {
        match self.state {
            TicketState::Open => "FIRING",
            TicketState::Acked => "ACKED",
            TicketState::Resolved => "RESOLVED",
        }
    }
}

/// One ticket as listed in a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestItem {
    pub number: i64,
    pub title: String,
    pub state: TicketState,
    pub severity: Severity,
    pub link: String,
}

/// A storm summary: what changed in a room since the storm began (or since the last digest, on
/// platforms that cannot edit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    pub room: String,
    /// How many ticket changes this digest stands for.
    pub changes: u64,
    /// Tickets by their latest state: firing (open), acked, resolved.
    pub firing: u64,
    pub acked: u64,
    pub resolved: u64,
    /// Firing tickets by severity, most severe first, e.g. `[("critical", 12), ("warning", 3)]`.
    pub by_severity: Vec<(Severity, u64)>,
    /// The most severe tickets, firing first.
    pub top: Vec<DigestItem>,
    /// How many tickets are not in `top`.
    pub more: u64,
    /// Link to the ticket list.
    pub link: String,
    #[serde(default)]
    pub mentions: Vec<Mention>,
    pub at: Timestamp,
}

/// What a delivery carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Ticket(TicketMessage),
    Digest(Digest),
}

impl Content {
    pub fn mentions(&self) -> &[Mention] {
        match self {
            Content::Ticket(t) => &t.mentions,
            Content::Digest(d) => &d.mentions,
        }
    }
}
