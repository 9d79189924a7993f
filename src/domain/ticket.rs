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
        };
    };
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

/// Applies a decision other than `Open`/`Ignore` to an existing ticket. Returns the entry to append,
/// if the change deserves one (resends do not).
pub fn apply_alert(
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
        AlertDecision::Open { .. } | AlertDecision::Ignore { .. } => None,
    }
}

/// A firing alert keeps the ticket's content current: titles and annotations change as values move.
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn alert(status: Status, starts: Option<i64>, at: i64) -> Alert {
        Alert {
            source: "prom".into(),
            fingerprint: "f".into(),
            status,
            title: "Disk full".into(),
            severity: Severity::Critical,
            labels: Labels::new(),
            annotations: Labels::new(),
            description: None,
            url: None,
            starts_at: starts.map(Timestamp::from_millis),
            ends_at: Some(Timestamp::from_millis(at + 4 * MIN)),
            received_at: Timestamp::from_millis(at),
            routing: Routing::default(),
            raw: None,
        }
    }

    fn policy() -> Policy {
        Policy {
            reopen_window: Duration::from_secs(3600),
        }
    }

    /// Runs one alert through decide + open/apply like a store does, returning the entries written.
    fn feed(cur: &mut Option<Ticket>, a: &Alert, next_number: &mut i64) -> Vec<EntryDraft> {
        match decide(cur.as_ref(), a, &policy()) {
            AlertDecision::Open { .. } => {
                *next_number += 1;
                let (t, e) = open(format!("id{next_number}"), *next_number, a, cur.as_ref());
                *cur = Some(t);
                vec![e]
            }
            AlertDecision::Ignore { .. } => vec![],
            d => apply_alert(cur.as_mut().unwrap(), &d, a)
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn heartbeats_add_no_entries() {
        let mut cur = None;
        let mut n = 0;
        assert_eq!(
            feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n).len(),
            1
        );
        for i in 1..10 {
            assert!(feed(&mut cur, &alert(Status::Firing, Some(0), i * MIN), &mut n).is_empty());
        }
        let t = cur.unwrap();
        assert_eq!((t.resend_count, t.firing_count, n), (9, 1, 1));
        assert_eq!(t.last_seen, Timestamp::from_millis(9 * MIN));
        assert_eq!(t.ends_at, Some(Timestamp::from_millis(13 * MIN)));
    }

    #[test]
    fn new_start_while_open_is_a_refire() {
        let mut cur = None;
        let mut n = 0;
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
        let e = feed(
            &mut cur,
            &alert(Status::Firing, Some(5 * MIN), 5 * MIN),
            &mut n,
        );
        assert_eq!(e[0].kind, EntryKind::Refired);
        assert_eq!(cur.unwrap().firing_count, 2);
    }

    #[test]
    fn reopen_inside_window_new_ticket_after() {
        let mut cur = None;
        let mut n = 0;
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
        feed(&mut cur, &alert(Status::Resolved, Some(0), MIN), &mut n);
        assert_eq!(cur.as_ref().unwrap().state, TicketState::Resolved);
        let e = feed(
            &mut cur,
            &alert(Status::Firing, Some(10 * MIN), 10 * MIN),
            &mut n,
        );
        assert_eq!(e[0].kind, EntryKind::Reopened);
        assert_eq!(n, 1);
        feed(
            &mut cur,
            &alert(Status::Resolved, Some(10 * MIN), 11 * MIN),
            &mut n,
        );
        let e = feed(
            &mut cur,
            &alert(Status::Firing, Some(200 * MIN), 200 * MIN),
            &mut n,
        );
        assert_eq!(e[0].kind, EntryKind::Opened);
        assert_eq!(n, 2);
        assert_eq!(cur.unwrap().previous_id.as_deref(), Some("id1"));
    }

    #[test]
    fn lease_expiry_resolves_and_a_late_resend_reopens() {
        let mut cur = None;
        let mut n = 0;
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
        let t = cur.as_mut().unwrap();
        assert!(expire(t, Timestamp::from_millis(3 * MIN)).is_none());
        let e = expire(t, Timestamp::from_millis(5 * MIN)).unwrap();
        assert_eq!(e.at, Timestamp::from_millis(4 * MIN));
        assert_eq!(t.resolution, Some(Resolution::Expired));
        let e = feed(&mut cur, &alert(Status::Firing, Some(0), 6 * MIN), &mut n);
        assert_eq!(e[0].kind, EntryKind::Reopened);
    }

    #[test]
    fn resend_after_manual_resolve_is_ignored() {
        let mut cur = None;
        let mut n = 0;
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
        act(
            cur.as_mut().unwrap(),
            &Action::Resolve,
            &Actor::new("alice", "api"),
            Timestamp::from_millis(MIN),
        )
        .unwrap();
        assert!(feed(&mut cur, &alert(Status::Firing, Some(0), 2 * MIN), &mut n).is_empty());
        assert_eq!(cur.unwrap().state, TicketState::Resolved);
    }

    #[test]
    fn actions_follow_the_state_machine() {
        let mut cur = None;
        let mut n = 0;
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
        let t = cur.as_mut().unwrap();
        let now = Timestamp::from_millis(MIN);
        let bob = Actor::new("bob", "slack");
        assert_eq!(
            act(t, &Action::Ack, &bob, now).unwrap().kind,
            EntryKind::Acked
        );
        assert!(matches!(
            act(t, &Action::Ack, &bob, now),
            Err(ActionError::AlreadyAcked(_))
        ));
        act(t, &Action::Resolve, &bob, now).unwrap();
        assert!(matches!(
            act(t, &Action::Ack, &bob, now),
            Err(ActionError::Resolved(_))
        ));
        let note = Action::Note {
            text: "root cause: full disk".into(),
            visibility: Visibility::Internal,
        };
        assert_eq!(
            act(t, &note, &bob, now).unwrap().visibility,
            Visibility::Internal
        );
        let sys = Action::Note {
            text: "x".into(),
            visibility: Visibility::System,
        };
        assert_eq!(act(t, &sys, &bob, now), Err(ActionError::SystemVisibility));
    }

    #[test]
    fn assigning_names_both_members_and_the_channel() {
        let mut cur = None;
        let mut n = 0;
        feed(&mut cur, &alert(Status::Firing, Some(0), 0), &mut n);
        let t = cur.as_mut().unwrap();
        let now = Timestamp::from_millis(MIN);
        let bob = Actor::new("bob", "slack");
        let to = |m: &str| Action::Assign {
            member: Some(m.to_string()),
        };
        let e = act(t, &to("alice"), &bob, now).unwrap();
        assert_eq!(e.kind, EntryKind::Assigned);
        assert_eq!(e.text, "Assigned to alice by bob (via slack).");
        assert_eq!(e.data["via"], "slack");
        assert_eq!(t.assignee.as_deref(), Some("alice"));
        assert!(matches!(
            act(t, &to("alice"), &bob, now),
            Err(ActionError::AlreadyAssigned(_, _))
        ));
        let e = act(t, &to("bob"), &bob, now).unwrap();
        assert_eq!(e.text, "bob took the ticket (via slack).");
        assert_eq!(e.data["previous"], "alice");
        act(t, &Action::Assign { member: None }, &bob, now).unwrap();
        assert_eq!(t.assignee, None);
        assert!(matches!(
            act(t, &Action::Assign { member: None }, &bob, now),
            Err(ActionError::NotAssigned(_))
        ));
    }

    fn arb_alert() -> impl Strategy<Value = Alert> {
        (any::<bool>(), 0i64..6, 0i64..400).prop_map(|(firing, start, at)| {
            let status = if firing {
                Status::Firing
            } else {
                Status::Resolved
            };
            alert(status, Some(start * 30 * MIN), at * MIN)
        })
    }

    proptest! {
        /// Whatever sequence of alerts arrives (in order of receipt), a ticket's counters and states stay
        /// consistent, only real changes write entries, and a key never has two active tickets.
        #[test]
        fn state_machine_invariants(mut alerts in proptest::collection::vec(arb_alert(), 1..60)) {
            alerts.sort_by_key(|a| a.received_at);
            let mut cur: Option<Ticket> = None;
            let mut n = 0;
            let mut entries = 0i64;
            let mut resends = 0i64;
            for a in &alerts {
                let before = cur.clone();
                let decision = decide(cur.as_ref(), a, &policy());
                let written = feed(&mut cur, a, &mut n);
                if decision == AlertDecision::Resend {
                    resends += 1;
                    prop_assert!(written.is_empty());
                }
                if matches!(decision, AlertDecision::Open { .. }) {
                    entries = 0;
                    resends = 0;
                    if let Some(prev) = &before {
                        prop_assert!(!prev.state.is_active(), "a second ticket opened while one was active");
                    }
                }
                entries += written.len() as i64;
                if let Some(t) = &cur {
                    prop_assert_eq!(t.resend_count, resends);
                    prop_assert_eq!(t.state == TicketState::Resolved, t.resolved_at.is_some());
                    prop_assert!(t.firing_count >= 1);
                    // Every firing of this ticket wrote exactly one opened/refired/reopened entry.
                    prop_assert!(entries >= t.firing_count);
                }
                if a.status == Status::Resolved {
                    prop_assert!(cur.as_ref().is_none_or(|t| t.state == TicketState::Resolved
                        || before.as_ref().is_some_and(|b| b.starts_at > a.starts_at)));
                }
            }
        }
    }
}
