//! Routing: which rooms a ticket change goes to, who is mentioned, and which messages that makes.
//!
//! Pure: built once from the config, then asked `plan(ticket, entry)` inside the store's transaction, so
//! the deliveries a change causes are written atomically with the change. Routes see the ticket after
//! the plugin chain; rooms a plugin added (`route` decisions) are added to the routes' rooms.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::alert::Severity;
use super::hours::{OffHours, RoomHours};
use super::mail::{self, MailDraft, MailPolicy, MailReason};
use super::message::{Capabilities, Change, Content, Mention, TicketMessage};
use super::presence::Presence;
use super::ticket::Ticket;
use super::time::Timestamp;
use super::timeline::{Entry, EntryKind, Visibility};

/// A route, compiled.
#[derive(Debug, Clone)]
pub struct Route {
    pub equal: Vec<(String, String)>,
    pub regex: Vec<(String, Regex)>,
    pub rooms: Vec<String>,
    pub mention: Vec<String>,
    pub continue_matching: bool,
}

impl Route {
    /// Label equality and anchored regexes, all of which must hold. `severity` and `source` also match
    /// the ticket's own normalised severity and its source name.
    pub fn matches(&self, ticket: &Ticket) -> bool {
        let values = |name: &str| -> Vec<&str> {
            let mut v: Vec<&str> = ticket
                .labels
                .get(name)
                .map(String::as_str)
                .into_iter()
                .collect();
            match name {
                "severity" => v.push(ticket.severity.as_str()),
                "source" => v.push(&ticket.source),
                _ => {}
            }
            v
        };
        self.equal
            .iter()
            .all(|(name, want)| values(name).contains(&want.as_str()))
            && self
                .regex
                .iter()
                .all(|(name, re)| values(name).iter().any(|v| re.is_match(v)))
    }
}

/// What routing knows about a room.
#[derive(Debug, Clone)]
pub struct RoomInfo {
    /// The platform, which names the member handle to use (`slack`, `matrix`, ...).
    pub platform: String,
    pub capabilities: Capabilities,
    pub members: Vec<String>,
    /// Business hours, and what the room does outside them.
    pub hours: Option<RoomHours>,
}

/// How a delivery relates to the ticket's other messages in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// The ticket's first message in the room; its handle becomes the thread root.
    Root,
    /// A follow-up: in the root's thread where the platform threads, else a message of its own.
    Reply,
    /// Rewrites the root message to show the ticket's new state.
    EditRoot,
    /// A storm digest.
    Digest,
    /// A message about the room rather than the ticket (the off-hours notice): posted on its own, never
    /// threaded, never a thread root.
    Notice,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Root => "root",
            DeliveryKind::Reply => "reply",
            DeliveryKind::EditRoot => "edit_root",
            DeliveryKind::Digest => "digest",
            DeliveryKind::Notice => "notice",
        }
    }

    pub fn from_name(name: &str) -> Option<DeliveryKind> {
        [
            Self::Root,
            Self::Reply,
            Self::EditRoot,
            Self::Digest,
            Self::Notice,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// A delivery routing decided, before the outbox stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDraft {
    pub room: String,
    pub kind: DeliveryKind,
    pub content: Content,
    /// Not to be sent before this (a room outside its business hours holding non-critical tickets);
    /// `None` sends it as soon as its turn comes.
    pub hold_until: Option<Timestamp>,
}

/// Everything one timeline entry causes in chat: the deliveries, and what business hours did to them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub deliveries: Vec<DeliveryDraft>,
    /// One per room that was outside its hours and changed what was planned for it. The store records
    /// each on the ticket's timeline when the room (or the room it sent to) still gets something.
    pub off_hours: Vec<OffHoursEvent>,
}

/// What a room outside its business hours did with a ticket change.
#[derive(Debug, Clone, PartialEq)]
pub struct OffHoursEvent {
    /// The room whose hours these are.
    pub room: String,
    pub action: OffHoursAction,
    /// For the timeline.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OffHoursAction {
    /// A [`DeliveryKind::Notice`] for the room is in the plan. The store posts it only if the room has
    /// had none since `period_start` (once per off-hours period), and drops it otherwise.
    Noticed {
        period_start: Timestamp,
        back_at: Timestamp,
    },
    /// The room's deliveries wait until its hours start.
    Held { until: Timestamp },
    /// Sent to another room instead.
    Routed { to: String },
}

impl OffHoursEvent {
    /// The timeline entry's data.
    pub fn data(&self) -> serde_json::Value {
        match &self.action {
            OffHoursAction::Noticed {
                period_start,
                back_at,
            } => {
                serde_json::json!({"room": self.room, "action": "notice", "period_start": period_start, "back_at": back_at})
            }
            OffHoursAction::Held { until } => {
                serde_json::json!({"room": self.room, "action": "hold", "until": until})
            }
            OffHoursAction::Routed { to } => {
                serde_json::json!({"room": self.room, "action": "route", "to": to})
            }
        }
    }
}

/// The compiled `rooms:` and `routes:`.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub rooms: BTreeMap<String, RoomInfo>,
    pub routes: Vec<Route>,
    /// Member name → platform → handle.
    pub handles: BTreeMap<String, BTreeMap<String, String>>,
    /// Base of ticket links, without a trailing slash.
    pub public_url: String,
    /// `groups:`: a mention of a group mentions each of its members.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Who can be emailed, and how.
    pub mail: MailPolicy,
}

/// Labels shown in messages first, in this order; others follow alphabetically.
const KEY_LABELS: [&str; 6] = [
    "alertname",
    "instance",
    "job",
    "service",
    "namespace",
    "cluster",
];
/// At most this many labels in a message.
const MAX_LABELS: usize = 8;

/// The labels worth showing in a message: the key ones first, at most [`MAX_LABELS`].
pub fn shown_labels(ticket: &Ticket) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for k in KEY_LABELS {
        if let Some(v) = ticket.labels.get(k) {
            labels.insert(k.to_string(), v.clone());
        }
    }
    for (k, v) in &ticket.labels {
        if labels.len() >= MAX_LABELS {
            break;
        }
        if k != "severity" {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    labels
}

/// A line or two about the problem: the description, the `summary` annotation, or a plugin's body.
pub fn summary(ticket: &Ticket) -> Option<String> {
    ticket
        .description
        .clone()
        .or_else(|| ticket.annotations.get("summary").cloned())
        .or_else(|| ticket.routing.body.clone())
}

impl Router {
    /// Rooms and mentions for a ticket: the routes' (first match, or more with `continue`), then the
    /// plugin chain's. Unknown rooms from plugins are ignored (the config names every room).
    pub fn targets(&self, ticket: &Ticket) -> (Vec<String>, Vec<String>) {
        let mut rooms: Vec<String> = Vec::new();
        let mut mentions: Vec<String> = Vec::new();
        let add = |list: &mut Vec<String>, v: &String| {
            if !list.contains(v) {
                list.push(v.clone());
            }
        };
        for route in &self.routes {
            if route.matches(ticket) {
                route.rooms.iter().for_each(|r| add(&mut rooms, r));
                route.mention.iter().for_each(|m| add(&mut mentions, m));
                if !route.continue_matching {
                    break;
                }
            }
        }
        for r in &ticket.routing.rooms {
            if self.rooms.contains_key(r) {
                add(&mut rooms, r);
            }
        }
        for m in &ticket.routing.mentions {
            add(&mut mentions, m);
        }
        (rooms, mentions)
    }

    /// Which route sent a ticket to which room, in routing order: `(Some(i), room)` for `routes[i]`
    /// (first match, or more with `continue`), then `(None, room)` for rooms the plugin chain added
    /// that the config names. The rooms are [`Router::targets`]'s, kept apart per route, which is how
    /// the Alertmanager API groups alerts.
    pub fn matched(&self, ticket: &Ticket) -> Vec<(Option<usize>, String)> {
        let mut out = Vec::new();
        for (i, route) in self.routes.iter().enumerate() {
            if route.matches(ticket) {
                out.extend(route.rooms.iter().map(|r| (Some(i), r.clone())));
                if !route.continue_matching {
                    break;
                }
            }
        }
        for r in &ticket.routing.rooms {
            if self.rooms.contains_key(r) && !out.iter().any(|(_, room)| room == r) {
                out.push((None, r.clone()));
            }
        }
        out
    }

    /// The deliveries one timeline entry causes. Entries that are not news for a room (heartbeats never
    /// make entries; plugin failures, internal notes and delivery records) cause none.
    pub fn plan(&self, ticket: &Ticket, entry: &Entry) -> Vec<DeliveryDraft> {
        self.plan_full(ticket, entry).deliveries
    }

    /// [`Router::plan`], with business hours at `entry.at`: a room outside its hours sends to its other
    /// room, holds non-critical tickets until its hours start, or adds its off-hours notice to a firing.
    pub fn plan_full(&self, ticket: &Ticket, entry: &Entry) -> Plan {
        let change = match (entry.kind, entry.visibility) {
            (EntryKind::Opened, _) => Change::Opened,
            (EntryKind::Refired, _) => Change::Refired,
            (EntryKind::Reopened, _) => Change::Reopened,
            (EntryKind::Acked, _) => Change::Acked {
                by: entry.actor.clone(),
            },
            (EntryKind::Resolved, _) => Change::Resolved {
                by: entry.actor.clone(),
            },
            (EntryKind::Note, Visibility::Public) => Change::Note {
                author: entry.actor.clone(),
                text: entry.text.clone(),
            },
            _ => return Plan::default(),
        };
        let (rooms, mention_names) = self.targets(ticket);
        let (rooms, mut off_hours) = self.reroute(rooms, entry.at);
        // Pings belong to news that needs someone: a ticket opening or coming back.
        let pings = matches!(change, Change::Opened | Change::Reopened);
        let mut out = Vec::new();
        // A note typed in a chat room is already there: it goes to the ticket's other rooms only.
        let typed_in = match change {
            Change::Note { .. } => entry.data.get("room").and_then(|r| r.as_str()),
            _ => None,
        };
        for room in rooms {
            let Some(info) = self.rooms.get(&room) else {
                continue;
            };
            if typed_in == Some(room.as_str()) {
                continue;
            }
            let mentions = if pings {
                self.mentions(&mention_names, &info.platform)
            } else {
                Vec::new()
            };
            let message = self.message(ticket, entry, change.clone(), mentions);
            let first = out.len();
            let mut push = |kind, content| {
                out.push(DeliveryDraft {
                    room: room.clone(),
                    kind,
                    content,
                    hold_until: None,
                })
            };
            match change {
                Change::Opened => push(DeliveryKind::Root, Content::Ticket(message)),
                Change::Refired | Change::Note { .. } => {
                    push(DeliveryKind::Reply, Content::Ticket(message))
                }
                Change::Acked { .. } | Change::Resolved { .. } | Change::Reopened => {
                    if info.capabilities.edits {
                        let mut root = message.clone();
                        root.mentions.clear();
                        push(DeliveryKind::Reply, Content::Ticket(message));
                        push(DeliveryKind::EditRoot, Content::Ticket(root));
                    } else {
                        push(DeliveryKind::Reply, Content::Ticket(message));
                    }
                }
            }
            self.outside_hours(
                ticket,
                entry,
                &change,
                &room,
                first,
                &mut out,
                &mut off_hours,
            );
        }
        Plan {
            deliveries: out,
            off_hours,
        }
    }

    /// Rooms outside their hours that send elsewhere, replaced by that room (each room once).
    fn reroute(&self, rooms: Vec<String>, at: Timestamp) -> (Vec<String>, Vec<OffHoursEvent>) {
        let mut out: Vec<String> = Vec::new();
        let mut events = Vec::new();
        for room in rooms {
            let hours = self.rooms.get(&room).and_then(|i| i.hours.as_ref());
            let target = match hours {
                Some(RoomHours {
                    hours,
                    off_hours: OffHours::Route(to),
                }) if !hours.is_open(at) && self.rooms.contains_key(to) => {
                    events.push(OffHoursEvent {
                        room: room.clone(),
                        action: OffHoursAction::Routed { to: to.clone() },
                        text: format!(
                            "Room {room} is outside business hours ({}); sent to {to}.",
                            hours.describe()
                        ),
                    });
                    to.clone()
                }
                _ => room,
            };
            if !out.contains(&target) {
                out.push(target);
            }
        }
        (out, events)
    }

    /// A room outside its hours: holds the deliveries planned for it (from `first` on) unless the
    /// ticket is critical, or adds its notice to a firing. Rerouting happened before.
    #[allow(clippy::too_many_arguments)]
    fn outside_hours(
        &self,
        ticket: &Ticket,
        entry: &Entry,
        change: &Change,
        room: &str,
        first: usize,
        out: &mut Vec<DeliveryDraft>,
        events: &mut Vec<OffHoursEvent>,
    ) {
        let Some(RoomHours { hours, off_hours }) =
            self.rooms.get(room).and_then(|i| i.hours.as_ref())
        else {
            return;
        };
        if out.len() == first || hours.is_open(entry.at) {
            return;
        }
        let back_at = hours.next_open(entry.at);
        match off_hours {
            OffHours::Route(_) => {}
            OffHours::Hold => {
                if ticket.severity == Severity::Critical {
                    return;
                }
                for d in &mut out[first..] {
                    d.hold_until = Some(back_at);
                }
                events.push(OffHoursEvent {
                    room: room.to_string(),
                    action: OffHoursAction::Held { until: back_at },
                    text: format!(
                        "Room {room} is outside business hours ({}): held until {} ({}).",
                        hours.describe(),
                        hours.local(back_at),
                        back_at.to_rfc3339()
                    ),
                });
            }
            OffHours::Notice => {
                if !matches!(change, Change::Opened | Change::Refired | Change::Reopened) {
                    return;
                }
                let notice = format!(
                    "Outside business hours ({}); the team is back at {}.",
                    hours.describe(),
                    hours.local(back_at)
                );
                let message = self.message(
                    ticket,
                    entry,
                    Change::Note {
                        author: "tocsin".into(),
                        text: notice,
                    },
                    Vec::new(),
                );
                out.push(DeliveryDraft {
                    room: room.to_string(),
                    kind: DeliveryKind::Notice,
                    content: Content::Ticket(message),
                    hold_until: None,
                });
                events.push(OffHoursEvent {
                    room: room.to_string(),
                    action: OffHoursAction::Noticed {
                        period_start: hours.period_start(entry.at),
                        back_at,
                    },
                    text: format!(
                        "Room {room} is outside business hours ({}): posted the off-hours notice there; the team is back at {}.",
                        hours.describe(),
                        hours.local(back_at)
                    ),
                });
            }
        }
    }

    fn mentions(&self, names: &[String], platform: &str) -> Vec<Mention> {
        let mut out: Vec<Mention> = Vec::new();
        let mut member = |name: &str| {
            let m = Mention::Member {
                name: name.to_string(),
                handle: self
                    .handles
                    .get(name)
                    .and_then(|h| h.get(platform))
                    .cloned(),
            };
            if !out.contains(&m) {
                out.push(m);
            }
        };
        let mut special = Vec::new();
        for n in names {
            match n.as_str() {
                "here" => special.push(Mention::Here),
                "all" => special.push(Mention::All),
                name => match self.groups.get(name) {
                    Some(group) => group.iter().for_each(|m| member(m)),
                    None => member(name),
                },
            }
        }
        special.dedup();
        special.extend(out);
        special
    }

    /// Emails a ticket change should schedule: for an opening or reopening with mentions, each member
    /// mentioned by name, through a group, or by `all` in a routed room (never by `here`, which means
    /// "whoever is active now"), who has an address, is not unsubscribed, and whose presence
    /// (`presence`, by member, already added up) says they would miss the chat. One draft per member.
    pub fn plan_mail(
        &self,
        ticket: &Ticket,
        entry: &Entry,
        presence: &BTreeMap<String, Presence>,
        unsubscribed: &BTreeSet<String>,
    ) -> Vec<MailDraft> {
        if !matches!(entry.kind, EntryKind::Opened | EntryKind::Reopened)
            || self.mail.members.is_empty()
        {
            return Vec::new();
        }
        let (rooms, names) = self.targets(ticket);
        if rooms.is_empty() {
            // Nothing was posted anywhere, so there is nothing to miss.
            return Vec::new();
        }
        let mut wanted: Vec<(String, MailReason)> = Vec::new();
        let mut add = |member: &str, reason: MailReason| {
            if !wanted.iter().any(|(m, _)| m == member) {
                wanted.push((member.to_string(), reason));
            }
        };
        for n in &names {
            match n.as_str() {
                "here" => {}
                "all" => {
                    for room in &rooms {
                        if let Some(info) = self.rooms.get(room) {
                            for m in &info.members {
                                add(m, MailReason::All { room: room.clone() });
                            }
                        }
                    }
                }
                name => match self.groups.get(name) {
                    Some(group) => group.iter().for_each(|m| {
                        add(
                            m,
                            MailReason::Group {
                                group: name.to_string(),
                            },
                        )
                    }),
                    None => add(name, MailReason::Member),
                },
            }
        }
        wanted
            .into_iter()
            .filter_map(|(member, reason)| {
                let prefs = self.mail.members.get(&member)?;
                if unsubscribed.contains(&member) {
                    return None;
                }
                let state = presence
                    .get(&member)
                    .map(|p| p.state)
                    .unwrap_or(super::presence::PresenceState::Offline);
                if !mail::should_email(state, ticket.severity == Severity::Critical) {
                    return None;
                }
                Some(MailDraft {
                    member,
                    reason,
                    presence: state,
                    due: entry.at.plus(prefs.delay),
                })
            })
            .collect()
    }

    /// The ticket as one message.
    pub fn message(
        &self,
        ticket: &Ticket,
        entry: &Entry,
        change: Change,
        mentions: Vec<Mention>,
    ) -> TicketMessage {
        let labels = shown_labels(ticket);
        let summary = summary(ticket);
        TicketMessage {
            ticket_id: ticket.id.clone(),
            number: ticket.number,
            title: ticket.title.clone(),
            state: ticket.state,
            severity: ticket.severity,
            source: ticket.source.clone(),
            labels,
            summary,
            link: self.ticket_link(ticket.number),
            change,
            mentions,
            at: entry.at,
        }
    }

    pub fn ticket_link(&self, number: i64) -> String {
        format!("{}/tickets/T-{number}", self.public_url)
    }

    pub fn list_link(&self, room: &str) -> String {
        format!("{}/tickets?room={room}", self.public_url)
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
