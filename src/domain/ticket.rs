//! The ticket state machine: what an incoming alert, a member's action or the passing of time does to a
//! ticket, and which timeline entries that writes.
//!
//! Every function here is pure. A store backend loads the current ticket, calls these, and writes the
//! result in one transaction, so every backend follows exactly the same rules and the rules can be tested
//! (including by properties) without a database.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::alert::{Alert, Labels, Routing, Severity, Status};
use super::time::Timestamp;
use super::timeline::{EntryDraft, EntryKind, Visibility};

/// `open → acked → resolved`, and back to `open` when a resolved ticket is reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    Open,
    Acked,
    Resolved,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Open => "open",
            TicketState::Acked => "acked",
            TicketState::Resolved => "resolved",
        }
    }

    pub fn from_name(name: &str) -> Option<TicketState> {
        match name {
            "open" => Some(TicketState::Open),
            "acked" => Some(TicketState::Acked),
            "resolved" => Some(TicketState::Resolved),
            _ => None,
        }
    }

    /// Open and acked tickets are "active": the problem is still on.
    pub fn is_active(self) -> bool {
        self != TicketState::Resolved
    }
}

/// Who or what resolved a ticket. It matters later: a resend of the same firing reopens a ticket whose
/// lease merely ran out, but not one that a person or the sender resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Resolution {
    /// The sender said the alert resolved.
    Source,
    /// The alert's lease (`endsAt`) passed without a resend.
    Expired,
    /// A member resolved it by hand.
    Member { name: String },
}

/// A ticket: one problem, identified by `(source, fingerprint)`, with its current state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    /// Stable, globally unique id (UUID v7).
    pub id: String,
    /// Short number shown to people as `T-<number>`.
    pub number: i64,
    pub source: String,
    pub fingerprint: String,
    pub title: String,
    pub severity: Severity,
    pub state: TicketState,
    pub resolution: Option<Resolution>,
    pub labels: Labels,
    pub annotations: Labels,
    pub description: Option<String>,
    pub url: Option<String>,
    /// `starts_at` of the firing this ticket currently tracks.
    pub starts_at: Option<Timestamp>,
    /// Lease end of the current firing, for senders that lease (Prometheus). Passing it resolves.
    pub ends_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_seen: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub acked_by: Option<String>,
    /// How many distinct firings this ticket has seen (1 when opened).
    pub firing_count: i64,
    /// How many resends of an ongoing firing arrived (heartbeats). They add no timeline entry.
    pub resend_count: i64,
    /// The earlier ticket with the same key, when this one was opened after the reopen window.
    pub previous_id: Option<String>,
    /// The member looking after it, if someone took it or was assigned.
    #[serde(default)]
    pub assignee: Option<String>,
    /// Sequence number of the last timeline entry.
    pub last_seq: i64,
    /// Rooms, mentions, tags and body from the plugin chain, as of the latest alert.
    pub routing: Routing,
}

impl Ticket {
    /// `T-42`.
    pub fn reference(&self) -> String {
        format!("T-{}", self.number)
    }
}

/// Knobs of the state machine, from `tickets:` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A firing within this long after resolution reopens the ticket; later ones open a new ticket.
    pub reopen_window: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            reopen_window: Duration::from_secs(3600),
        }
    }
}

/// What an incoming alert does, decided from the current ticket for its key (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertDecision {
    /// Open a new ticket. `follows` is the id of the previous ticket with the same key, if any.
    Open { follows: Option<String> },
    /// A resend of the ongoing firing: renew the lease and `last_seen`, no timeline entry.
    Resend,
    /// The same key fired again (new `starts_at`) while the ticket was still active.
    Refire,
    /// A firing within the reopen window of resolution.
    Reopen,
    /// The sender says it resolved.
    Resolve,
    /// The sender says someone acknowledged it.
    Acknowledge,
    /// The sender changed the problem: a new severity, a comment (see [`Status::Updated`]).
    Update,
    /// Nothing to do (a resolved alert for a resolved or unknown ticket, or a stale message).
    Ignore { reason: &'static str },
}

impl AlertDecision {
    /// A short name for metrics and logs.
    pub fn outcome(&self) -> &'static str {
        match self {
            AlertDecision::Open { .. } => "opened",
            AlertDecision::Resend => "resent",
            AlertDecision::Refire => "refired",
            AlertDecision::Reopen => "reopened",
            AlertDecision::Resolve => "resolved",
            AlertDecision::Acknowledge => "acknowledged",
            AlertDecision::Update => "updated",
            AlertDecision::Ignore { .. } => "ignored",
        }
    }
}

/// Decides what `alert` does to `current`, the latest ticket with the same key.
pub fn decide(current: Option<&Ticket>, alert: &Alert, policy: &Policy) -> AlertDecision {
    let Some(ticket) = current else {
        return match alert.status {
            Status::Firing => AlertDecision::Open { follows: None },
            Status::Resolved => AlertDecision::Ignore {
                reason: "resolved alert with no ticket",
            },
            Status::Acknowledged => AlertDecision::Ignore {
                reason: "acknowledgement with no ticket",
            },
            Status::Updated => AlertDecision::Ignore {
                reason: "update with no ticket",
            },
        };
    };
    if alert.status == Status::Updated {
        // A comment is worth a note in any state (members may note resolved tickets too); a new
        // severity is the problem's, whatever its state.
        return if update_note(alert).is_some() || severity_change(ticket, alert).is_some() {
            AlertDecision::Update
        } else {
            AlertDecision::Ignore {
                reason: "update that changes nothing",
            }
        };
    }
    if alert.status == Status::Acknowledged {
        // Like PagerDuty: an acknowledgement acts on an open ticket and is dropped otherwise.
        return match ticket.state {
            TicketState::Open => AlertDecision::Acknowledge,
            TicketState::Acked => AlertDecision::Ignore {
                reason: "already acknowledged",
            },
            TicketState::Resolved => AlertDecision::Ignore {
                reason: "acknowledgement of a resolved ticket",
            },
        };
    }
    let same_firing = match (alert.starts_at, ticket.starts_at) {
        (Some(a), Some(t)) => a <= t,
        // Without start times (generic senders) a firing while active is the same firing.
        _ => ticket.state.is_active(),
    };
    match (alert.status, ticket.state.is_active()) {
        (Status::Firing, true) if same_firing => AlertDecision::Resend,
        (Status::Firing, true) => AlertDecision::Refire,
        (Status::Resolved, true) => match (alert.starts_at, ticket.starts_at) {
            (Some(a), Some(t)) if a < t => AlertDecision::Ignore {
                reason: "resolution of an earlier firing",
            },
            _ => AlertDecision::Resolve,
        },
        (Status::Resolved, false) => AlertDecision::Ignore {
            reason: "already resolved",
        },
        (Status::Acknowledged, _) => AlertDecision::Ignore {
            reason: "acknowledgement",
        },
        (Status::Updated, _) => AlertDecision::Ignore { reason: "update" },
        (Status::Firing, false) => {
            let same_start =
                matches!((alert.starts_at, ticket.starts_at), (Some(a), Some(t)) if a <= t);
            if same_start && ticket.resolution != Some(Resolution::Expired) {
                // A late copy of the firing that a person or the sender already resolved.
                return AlertDecision::Ignore {
                    reason: "resend of a firing that was resolved",
                };
            }
            let resolved_at = ticket.resolved_at.unwrap_or(ticket.updated_at);
            if alert.received_at.since(resolved_at) <= policy.reopen_window
                && !policy.reopen_window.is_zero()
            {
                AlertDecision::Reopen
            } else {
                AlertDecision::Open {
                    follows: Some(ticket.id.clone()),
                }
            }
        }
    }
}

/// Builds a new ticket from the alert that opened it, with its `opened` entry.
pub fn open(
    id: String,
    number: i64,
    alert: &Alert,
    follows: Option<&Ticket>,
) -> (Ticket, EntryDraft) {
    let at = alert.received_at;
    let ticket = Ticket {
        id,
        number,
        source: alert.source.clone(),
        fingerprint: alert.fingerprint.clone(),
        title: alert.title.clone(),
        severity: alert.severity,
        state: TicketState::Open,
        resolution: None,
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        description: alert.description.clone(),
        url: alert.url.clone(),
        starts_at: alert.starts_at,
        ends_at: alert.ends_at,
        created_at: at,
        updated_at: at,
        last_seen: at,
        resolved_at: None,
        acked_by: None,
        firing_count: 1,
        resend_count: 0,
        previous_id: follows.map(|t| t.id.clone()),
        assignee: None,
        last_seq: 0,
        routing: alert.routing.clone(),
    };
    let mut data = json!({
        "fingerprint": alert.fingerprint,
        "labels": alert.labels,
        "starts_at": alert.starts_at,
    });
    if let Some(prev) = follows {
        data["follows"] = json!({"id": prev.id, "ref": prev.reference()});
    }
    let text = match follows {
        Some(prev) => format!("Opened by {} (follows {}).", alert.source, prev.reference()),
        None => format!("Opened by {}.", alert.source),
    };
    let entry = EntryDraft::system(
        at,
        EntryKind::Opened,
        source_actor(&alert.source),
        text,
        data,
    );
    (ticket, entry)
}

/// Applies a decision other than `Open`/`Ignore` to an existing ticket. Returns the entries to append,
/// in order: none for a resend, one for most changes, two for an update with a new severity and a
/// comment.
pub fn apply_alert(
    ticket: &mut Ticket,
    decision: &AlertDecision,
    alert: &Alert,
) -> Vec<EntryDraft> {
    if *decision == AlertDecision::Update {
        return apply_update(ticket, alert);
    }
    apply_change(ticket, decision, alert).into_iter().collect()
}

/// The comment an update carries, if any.
fn update_note(alert: &Alert) -> Option<&str> {
    alert
        .description
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The severity an update moves the ticket to, if it is a change.
fn severity_change(ticket: &Ticket, alert: &Alert) -> Option<Severity> {
    (alert.severity != Severity::None && alert.severity != ticket.severity)
        .then_some(alert.severity)
}

/// A sender's update: the new severity first (with its entry), then the comment as a public note,
/// which goes to the ticket's rooms like a member's note. Nothing else of the ticket changes.
fn apply_update(ticket: &mut Ticket, alert: &Alert) -> Vec<EntryDraft> {
    let at = alert.received_at;
    let actor = source_actor(&alert.source);
    let mut out = Vec::new();
    if let Some(to) = severity_change(ticket, alert) {
        let from = ticket.severity;
        ticket.severity = to;
        out.push(EntryDraft::system(
            at,
            EntryKind::SeverityChanged,
            actor.clone(),
            format!("Severity changed from {from} to {to} by {}.", alert.source),
            json!({"by": "source", "from": from, "to": to}),
        ));
    }
    if let Some(text) = update_note(alert) {
        out.push(EntryDraft::new(
            at,
            EntryKind::Note,
            Visibility::Public,
            actor,
            text.to_string(),
            json!({"via": alert.source, "by": "source"}),
        ));
    }
    if !out.is_empty() {
        ticket.updated_at = ticket.updated_at.max(at);
    }
    out
}

fn apply_change(
    ticket: &mut Ticket,
    decision: &AlertDecision,
    alert: &Alert,
) -> Option<EntryDraft> {
    let at = alert.received_at;
    ticket.last_seen = ticket.last_seen.max(at);
    ticket.updated_at = ticket.updated_at.max(at);
    let actor = source_actor(&alert.source);
    match decision {
        AlertDecision::Resend => {
            ticket.resend_count += 1;
            refresh_content(ticket, alert);
            None
        }
        AlertDecision::Refire => {
            ticket.firing_count += 1;
            refresh_content(ticket, alert);
            ticket.starts_at = alert.starts_at;
            Some(EntryDraft::system(
                at,
                EntryKind::Refired,
                actor,
                format!("Fired again (firing #{}).", ticket.firing_count),
                json!({"starts_at": alert.starts_at, "firing_count": ticket.firing_count}),
            ))
        }
        AlertDecision::Reopen => {
            let was = ticket.resolved_at;
            ticket.firing_count += 1;
            ticket.state = TicketState::Open;
            ticket.resolution = None;
            ticket.resolved_at = None;
            ticket.acked_by = None;
            refresh_content(ticket, alert);
            ticket.starts_at = alert.starts_at.or(ticket.starts_at);
            Some(EntryDraft::system(
                at,
                EntryKind::Reopened,
                actor,
                "Reopened: fired again within the reopen window.".to_string(),
                json!({"resolved_at": was, "starts_at": alert.starts_at, "firing_count": ticket.firing_count}),
            ))
        }
        AlertDecision::Resolve => {
            ticket.state = TicketState::Resolved;
            ticket.resolution = Some(Resolution::Source);
            ticket.resolved_at = Some(at);
            ticket.ends_at = alert.ends_at.or(ticket.ends_at);
            Some(EntryDraft::system(
                at,
                EntryKind::Resolved,
                actor,
                format!("Resolved by {}.", alert.source),
                json!({"by": "source", "ends_at": alert.ends_at}),
            ))
        }
        AlertDecision::Acknowledge => {
            ticket.state = TicketState::Acked;
            ticket.acked_by = Some(actor.clone());
            Some(EntryDraft::system(
                at,
                EntryKind::Acked,
                actor,
                format!("Acknowledged through {}.", alert.source),
                json!({"by": "source"}),
            ))
        }
        AlertDecision::Open { .. } | AlertDecision::Ignore { .. } | AlertDecision::Update => None,
    }
}

/// A firing alert keeps the ticket's content current: titles and annotations change as values move.
/// The fields a heartbeat resend changes, saved alone (see [`is_heartbeat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: String,
    pub updated_at: Timestamp,
    pub last_seen: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub resend_count: i64,
}

impl Ticket {
    /// This ticket's heartbeat fields, as they are now.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            id: self.id.clone(),
            updated_at: self.updated_at,
            last_seen: self.last_seen,
            ends_at: self.ends_at,
            resend_count: self.resend_count,
        }
    }
}

/// Whether `alert`, a resend of `ticket`'s ongoing firing, changes nothing but the heartbeat fields
/// (`last_seen`, `updated_at`, `resend_count`, `ends_at`): the same content [`refresh_content`] would
/// copy. Most traffic from leasing senders is such resends (Prometheus re-sends every firing alert
/// each evaluation), so the store saves them with a narrow update instead of rewriting the ticket.
pub fn is_heartbeat(ticket: &Ticket, decision: &AlertDecision, alert: &Alert) -> bool {
    matches!(decision, AlertDecision::Resend)
        && ticket.title == alert.title
        && ticket.severity == alert.severity
        && ticket.labels == alert.labels
        && ticket.annotations == alert.annotations
        && ticket.description == alert.description
        && (alert.url.is_none() || ticket.url == alert.url)
        && ticket.routing == alert.routing
}

fn refresh_content(ticket: &mut Ticket, alert: &Alert) {
    ticket.title = alert.title.clone();
    ticket.severity = alert.severity;
    ticket.labels = alert.labels.clone();
    ticket.annotations = alert.annotations.clone();
    ticket.description = alert.description.clone();
    ticket.url = alert.url.clone().or(ticket.url.take());
    ticket.ends_at = alert.ends_at;
    ticket.routing = alert.routing.clone();
}

/// Resolves an active ticket whose lease ran out (Alertmanager semantics: resolved once `endsAt` has
/// passed, also when no resend arrives). Returns `None` if the lease has not run out.
pub fn expire(ticket: &mut Ticket, now: Timestamp) -> Option<EntryDraft> {
    let ends_at = ticket.ends_at?;
    if !ticket.state.is_active() || ends_at > now {
        return None;
    }
    ticket.state = TicketState::Resolved;
    ticket.resolution = Some(Resolution::Expired);
    // The problem ended when the lease did, not when the sweeper noticed.
    ticket.resolved_at = Some(ends_at);
    ticket.updated_at = now.max(ticket.updated_at);
    Some(EntryDraft::system(
        ends_at,
        EntryKind::Resolved,
        "system".to_string(),
        "Resolved: no resend arrived before the alert's end time.".to_string(),
        json!({"by": "expired", "ends_at": ends_at}),
    ))
}

/// What a member can do to a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Ack,
    Resolve,
    Note {
        text: String,
        visibility: Visibility,
    },
    /// Hands the ticket to a member (`None` takes it away from whoever had it).
    Assign {
        member: Option<String>,
    },
}

/// Who acted, and through which channel: `api`, `web`, `email`, `slack`, `mattermost` or `matrix`.
/// Every action's entry names both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub member: String,
    pub via: String,
    /// The tocsin room the action was typed in (chat), recorded as `data.room`: routing does not echo
    /// a note back into the room it came from.
    pub room: Option<String>,
}

impl Actor {
    pub fn new(member: impl Into<String>, via: impl Into<String>) -> Actor {
        Actor {
            member: member.into(),
            via: via.into(),
            room: None,
        }
    }

    pub fn in_room(mut self, room: impl Into<String>) -> Actor {
        self.room = Some(room.into());
        self
    }

    /// ` (via slack)`, or nothing for the JSON API.
    fn suffix(&self) -> String {
        if self.via.is_empty() || self.via == "api" {
            String::new()
        } else {
            format!(" (via {})", self.via)
        }
    }
}

/// Why a member's action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("ticket {0} is already acknowledged")]
    AlreadyAcked(String),
    #[error("ticket {0} is resolved")]
    Resolved(String),
    #[error("note text is empty")]
    EmptyNote,
    #[error("notes are public or internal; `system` entries are written by tocsin only")]
    SystemVisibility,
    #[error("ticket {0} is already assigned to {1}")]
    AlreadyAssigned(String, String),
    #[error("ticket {0} is not assigned to anyone")]
    NotAssigned(String),
}

/// Applies a member's action. The entry names the member and the channel (`data.via`).
pub fn act(
    ticket: &mut Ticket,
    action: &Action,
    who: &Actor,
    now: Timestamp,
) -> Result<EntryDraft, ActionError> {
    let member = who.member.as_str();
    let via = who.suffix();
    let actor = format!("member:{member}");
    let entry = match action {
        Action::Ack => {
            match ticket.state {
                TicketState::Acked => return Err(ActionError::AlreadyAcked(ticket.reference())),
                TicketState::Resolved => return Err(ActionError::Resolved(ticket.reference())),
                TicketState::Open => {}
            }
            ticket.state = TicketState::Acked;
            ticket.acked_by = Some(member.to_string());
            EntryDraft::new(
                now,
                EntryKind::Acked,
                Visibility::Public,
                actor,
                format!("Acknowledged by {member}{via}."),
                json!({"via": who.via}),
            )
        }
        Action::Resolve => {
            if ticket.state == TicketState::Resolved {
                return Err(ActionError::Resolved(ticket.reference()));
            }
            ticket.state = TicketState::Resolved;
            ticket.resolution = Some(Resolution::Member {
                name: member.to_string(),
            });
            ticket.resolved_at = Some(now);
            EntryDraft::new(
                now,
                EntryKind::Resolved,
                Visibility::Public,
                actor,
                format!("Resolved by {member}{via}."),
                json!({"by": "member", "member": member, "via": who.via}),
            )
        }
        Action::Note { text, visibility } => {
            if text.trim().is_empty() {
                return Err(ActionError::EmptyNote);
            }
            if *visibility == Visibility::System {
                return Err(ActionError::SystemVisibility);
            }
            EntryDraft::new(
                now,
                EntryKind::Note,
                *visibility,
                actor,
                text.clone(),
                json!({"via": who.via}),
            )
        }
        Action::Assign { member: to } => {
            let reference = ticket.reference();
            match (to, &ticket.assignee) {
                (Some(to), Some(cur)) if to == cur => {
                    return Err(ActionError::AlreadyAssigned(reference, cur.clone()))
                }
                (None, None) => return Err(ActionError::NotAssigned(reference)),
                _ => {}
            }
            let previous = ticket.assignee.take();
            ticket.assignee = to.clone();
            let text = match to {
                Some(to) if to == member => format!("{member} took the ticket{via}."),
                Some(to) => format!("Assigned to {to} by {member}{via}."),
                None => format!(
                    "Unassigned from {} by {member}{via}.",
                    previous.as_deref().unwrap_or_default()
                ),
            };
            EntryDraft::new(
                now,
                EntryKind::Assigned,
                Visibility::Public,
                actor,
                text,
                json!({"via": who.via, "assignee": to, "previous": previous}),
            )
        }
    };
    let mut entry = entry;
    if let (Some(room), Some(data)) = (&who.room, entry.data.as_object_mut()) {
        data.insert("room".into(), json!(room));
    }
    ticket.updated_at = now.max(ticket.updated_at);
    Ok(entry)
}

fn source_actor(source: &str) -> String {
    format!("source:{source}")
}

#[cfg(test)]
#[path = "ticket_tests.rs"]
mod tests;
