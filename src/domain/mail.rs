//! Email for members who are not online: who gets one when routing mentions them, when it is due,
//! whether it still should go at send time, and how waiting emails are batched. Pure.
//!
//! The rules follow Zulip and Mattermost (see ARCHITECTURE.md): schedule at mention time + delay, check
//! again when due (come online? acked? resolved? unsubscribed?) and cancel with a reason, and send one
//! email per ticket or one digest when several tickets are waiting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alert::{Labels, Severity};
use super::presence::{Presence, PresenceState};
use super::ticket::TicketState;
use super::time::Timestamp;

/// `members.<name>.notify.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyMode {
    /// One email per ticket, as each comes due.
    Immediate,
    /// At most one email per batch window; tickets waiting together go as one digest.
    #[default]
    Batched,
    /// No email at all.
    Never,
}

/// A member's email preferences, resolved against the `email:` defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailPrefs {
    pub address: String,
    pub delay: Duration,
    pub mode: NotifyMode,
}

/// What routing needs to decide about email: members' preferences and the batch window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailPolicy {
    /// Members with an email address and a mode other than `never`.
    pub members: BTreeMap<String, MailPrefs>,
    /// Batched members get at most one email per window.
    pub batch_window: Duration,
}

/// Why a member is being emailed: how the mention reached them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailReason {
    /// Mentioned by name.
    Member,
    /// Mentioned through a group.
    Group { group: String },
    /// `all` in a room the member belongs to.
    All { room: String },
}

impl MailReason {
    /// `mentioned`, `mentioned through group oncall`, `@all in room ops`.
    pub fn describe(&self) -> String {
        match self {
            MailReason::Member => "mentioned".into(),
            MailReason::Group { group } => format!("mentioned through group {group}"),
            MailReason::All { room } => format!("@all in room {room}"),
        }
    }
}

/// One email routing wants scheduled: to `member`, about the ticket, due at `due`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailDraft {
    pub member: String,
    pub reason: MailReason,
    /// The member's presence when mentioned (never online).
    pub presence: PresenceState,
    pub due: Timestamp,
}

/// One ticket as an email shows it. Every string from an alert is untrusted: renderers escape it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailTicket {
    pub number: i64,
    pub title: String,
    pub state: TicketState,
    pub severity: Severity,
    pub source: String,
    /// The labels worth showing (`alertname`, `instance`, `job`, ... first).
    pub labels: Labels,
    /// The alert's description or summary, if any.
    pub summary: Option<String>,
    /// The ticket in tocsin's UI.
    pub link: String,
    pub reason: MailReason,
    pub mentioned_at: Timestamp,
}

impl MailTicket {
    /// `T-42`.
    pub fn reference(&self) -> String {
        format!("T-{}", self.number)
    }
}

/// One email's content: one ticket, or a digest of several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailContent {
    /// The member's name (greeting and footer).
    pub member: String,
    pub tickets: Vec<MailTicket>,
    /// One-click unsubscribe page (signed link).
    pub unsubscribe_link: String,
    /// Whether replying to this email adds a note to the ticket (single-ticket emails with an inbound
    /// listener configured).
    pub reply_enabled: bool,
}

impl MailContent {
    pub fn is_digest(&self) -> bool {
        self.tickets.len() > 1
    }
}

/// Whether a member in `state` would miss a mention in chat: away and offline do; do-not-disturb does
/// only for critical tickets (someone who asked for quiet still wants to hear about an outage).
pub fn should_email(state: PresenceState, critical: bool) -> bool {
    match state {
        PresenceState::Online => false,
        PresenceState::Dnd => critical,
        PresenceState::Away | PresenceState::Offline => true,
    }
}

/// What a scheduled email finds when it comes due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recheck {
    Send,
    /// Not sent, and the timeline says why.
    Cancel(String),
}

/// The send-time check, Zulip's and Mattermost's drop rule: the reason the email was for may be gone.
/// `presence` is the member's presence now (added up), `acked_by` the ticket's acknowledger if any.
pub fn recheck(
    member: &str,
    state: TicketState,
    acked_by: Option<&str>,
    critical: bool,
    presence: &Presence,
    unsubscribed: bool,
) -> Recheck {
    if unsubscribed {
        return Recheck::Cancel(format!("{member} unsubscribed from email"));
    }
    match state {
        TicketState::Resolved => return Recheck::Cancel("the ticket was resolved".into()),
        TicketState::Acked => {
            let by = acked_by
                .map(|a| format!(" by {}", a.strip_prefix("member:").unwrap_or(a)))
                .unwrap_or_default();
            return Recheck::Cancel(format!("the ticket was acknowledged{by}"));
        }
        TicketState::Open => {}
    }
    if !should_email(presence.state, critical) {
        return Recheck::Cancel(format!(
            "{member} is {} ({} since {})",
            presence.state.as_str(),
            presence.source,
            presence.since.to_rfc3339()
        ));
    }
    Recheck::Send
}

/// When a member's due emails may go: now, or, for a batched member who was emailed less than a window
/// ago, when the window ends (what comes due meanwhile joins the same batch).
pub fn batch_release(
    mode: NotifyMode,
    last_sent: Option<Timestamp>,
    window: Duration,
    now: Timestamp,
) -> Timestamp {
    match (mode, last_sent) {
        (NotifyMode::Batched, Some(last)) if last.plus(window) > now => last.plus(window),
        _ => now,
    }
}

/// How a member's emails that may go now are grouped into emails: batched members get one email for
/// everything (a digest when it covers several tickets); immediate members one email per ticket.
/// Items are `(email id, ticket number)`; the output keeps their order.
pub fn group(mode: NotifyMode, items: &[(i64, i64)]) -> Vec<Vec<i64>> {
    match mode {
        NotifyMode::Batched => {
            if items.is_empty() {
                Vec::new()
            } else {
                vec![items.iter().map(|(id, _)| *id).collect()]
            }
        }
        NotifyMode::Immediate | NotifyMode::Never => {
            let mut out: Vec<(i64, Vec<i64>)> = Vec::new();
            for (id, ticket) in items {
                match out.iter_mut().find(|(t, _)| t == ticket) {
                    Some((_, ids)) => ids.push(*id),
                    None => out.push((*ticket, vec![*id])),
                }
            }
            out.into_iter().map(|(_, ids)| ids).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn presence(state: PresenceState) -> Presence {
        Presence {
            state,
            since: Timestamp::from_millis(0),
            source: "api".into(),
        }
    }

    #[test]
    fn dnd_is_emailed_only_for_critical_tickets() {
        assert!(!should_email(PresenceState::Dnd, false));
        assert!(should_email(PresenceState::Dnd, true));
        assert!(!should_email(PresenceState::Online, true));
        assert!(should_email(PresenceState::Away, false));
        assert!(should_email(PresenceState::Offline, false));
    }

    #[test]
    fn recheck_names_the_reason() {
        let off = presence(PresenceState::Offline);
        assert_eq!(
            recheck("alice", TicketState::Open, None, false, &off, false),
            Recheck::Send
        );
        assert_eq!(
            recheck(
                "alice",
                TicketState::Acked,
                Some("member:bob"),
                false,
                &off,
                false
            ),
            Recheck::Cancel("the ticket was acknowledged by bob".into())
        );
        assert_eq!(
            recheck("alice", TicketState::Resolved, None, false, &off, false),
            Recheck::Cancel("the ticket was resolved".into())
        );
        let on = presence(PresenceState::Online);
        match recheck("alice", TicketState::Open, None, true, &on, false) {
            Recheck::Cancel(why) => assert!(why.starts_with("alice is online (api"), "{why}"),
            Recheck::Send => panic!("an online member was emailed"),
        }
        assert_eq!(
            recheck("alice", TicketState::Open, None, false, &off, true),
            Recheck::Cancel("alice unsubscribed from email".into())
        );
    }

    #[test]
    fn a_batched_member_waits_out_the_window() {
        let w = Duration::from_secs(600);
        let t = |s: i64| Timestamp::from_millis(s * 1000);
        assert_eq!(batch_release(NotifyMode::Batched, None, w, t(5)), t(5));
        assert_eq!(
            batch_release(NotifyMode::Batched, Some(t(0)), w, t(5)),
            t(600)
        );
        assert_eq!(
            batch_release(NotifyMode::Batched, Some(t(0)), w, t(700)),
            t(700)
        );
        assert_eq!(
            batch_release(NotifyMode::Immediate, Some(t(0)), w, t(5)),
            t(5)
        );
    }

    proptest! {
        #[test]
        fn grouping_keeps_every_email_once(
            items in proptest::collection::vec((0i64..1000, 1i64..5), 0..20),
            batched in any::<bool>(),
        ) {
            let mut items = items;
            items.sort();
            items.dedup_by_key(|(id, _)| *id);
            let mode = if batched { NotifyMode::Batched } else { NotifyMode::Immediate };
            let groups = group(mode, &items);
            let mut ids: Vec<i64> = groups.iter().flatten().copied().collect();
            ids.sort();
            let mut want: Vec<i64> = items.iter().map(|(id, _)| *id).collect();
            want.sort();
            prop_assert_eq!(ids, want);
            if batched {
                prop_assert!(groups.len() <= 1);
            } else {
                // One email per ticket: no ticket in two groups, no group with two tickets.
                for g in &groups {
                    let tickets: BTreeSet<i64> = g.iter()
                        .map(|id| items.iter().find(|(i, _)| i == id).unwrap().1).collect();
                    prop_assert_eq!(tickets.len(), 1);
                }
                prop_assert_eq!(groups.len(), items.iter().map(|(_, t)| *t).collect::<BTreeSet<_>>().len());
            }
        }

        #[test]
        fn nobody_online_is_ever_emailed(critical in any::<bool>()) {
            prop_assert!(!should_email(PresenceState::Online, critical));
        }
    }
}
