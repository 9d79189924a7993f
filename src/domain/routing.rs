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
mod tests {
    use super::*;
    use crate::domain::alert::{Alert, Labels, Routing, Status};
    use crate::domain::mail::{MailPrefs, NotifyMode};
    use crate::domain::presence::PresenceState;
    use crate::domain::time::Timestamp;
    use proptest::prelude::*;
    use std::time::Duration;

    const MEMBERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    const STATES: [PresenceState; 4] = [
        PresenceState::Online,
        PresenceState::Away,
        PresenceState::Dnd,
        PresenceState::Offline,
    ];

    /// Room `ops` with alice, bob and carol (dave is in no room); group `db` is alice and dave; every
    /// member but carol has an address.
    fn router(mention: Vec<String>) -> Router {
        let mut rooms = BTreeMap::new();
        rooms.insert(
            "ops".to_string(),
            RoomInfo {
                platform: "slack".into(),
                capabilities: Capabilities::default(),
                members: vec!["alice".into(), "bob".into(), "carol".into()],
                hours: None,
            },
        );
        let members = ["alice", "bob", "dave"]
            .into_iter()
            .map(|m| {
                (
                    m.to_string(),
                    MailPrefs {
                        address: format!("{m}@example.test"),
                        delay: Duration::from_secs(120),
                        mode: NotifyMode::Batched,
                    },
                )
            })
            .collect();
        Router {
            rooms,
            routes: vec![Route {
                equal: Vec::new(),
                regex: Vec::new(),
                rooms: vec!["ops".into()],
                mention,
                continue_matching: false,
            }],
            handles: BTreeMap::new(),
            public_url: "https://tocsin.test".into(),
            groups: [(
                "db".to_string(),
                vec!["alice".to_string(), "dave".to_string()],
            )]
            .into(),
            mail: MailPolicy {
                members,
                batch_window: Duration::from_secs(600),
            },
        }
    }

    fn opened(severity: Severity) -> (Ticket, Entry) {
        let alert = Alert {
            source: "hooks".into(),
            fingerprint: "f".into(),
            status: Status::Firing,
            title: "Disk full".into(),
            severity,
            labels: Labels::new(),
            annotations: Labels::new(),
            description: None,
            url: None,
            starts_at: None,
            ends_at: None,
            received_at: Timestamp::from_millis(1_000_000),
            routing: Routing::default(),
            raw: None,
        };
        let (ticket, draft) = crate::domain::ticket::open("t".into(), 1, &alert, None);
        (ticket, draft.with_seq(1))
    }

    fn presence(states: &[usize]) -> BTreeMap<String, Presence> {
        MEMBERS
            .iter()
            .zip(states)
            .map(|(m, s)| {
                (
                    m.to_string(),
                    Presence {
                        state: STATES[*s],
                        since: Timestamp::from_millis(0),
                        source: "api".into(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn groups_mention_each_member_and_here_and_all_stay_platform_mentions() {
        let r = router(vec!["db".into(), "here".into(), "alice".into()]);
        let mentions = r.mentions(&r.routes[0].mention, "slack");
        assert_eq!(
            mentions,
            vec![
                Mention::Here,
                Mention::Member {
                    name: "alice".into(),
                    handle: None
                },
                Mention::Member {
                    name: "dave".into(),
                    handle: None
                },
            ]
        );
    }

    proptest! {
        #[test]
        fn mail_goes_only_to_members_who_would_miss_the_mention(
            states in proptest::collection::vec(0usize..4, 4),
            names in proptest::collection::vec(prop_oneof![
                Just("alice"), Just("bob"), Just("carol"), Just("dave"), Just("db"), Just("here"), Just("all")
            ], 0..5),
            critical in any::<bool>(),
            unsubscribed_bob in any::<bool>(),
        ) {
            let names: Vec<String> = names.into_iter().map(String::from).collect();
            let r = router(names.clone());
            let (ticket, entry) = opened(if critical { Severity::Critical } else { Severity::Warning });
            let presence = presence(&states);
            let unsubscribed: BTreeSet<String> =
                if unsubscribed_bob { ["bob".to_string()].into() } else { BTreeSet::new() };
            let drafts = r.plan_mail(&ticket, &entry, &presence, &unsubscribed);

            let mut seen = BTreeSet::new();
            for d in &drafts {
                prop_assert!(seen.insert(d.member.clone()), "{} twice", d.member);
                prop_assert!(r.mail.members.contains_key(&d.member), "{} has no address", d.member);
                prop_assert!(mail::should_email(presence[&d.member].state, critical));
                prop_assert!(!(unsubscribed_bob && d.member == "bob"));
                prop_assert_eq!(d.due, entry.at.plus(Duration::from_secs(120)));
            }
            // Exactly who should get one: mentioned by name, through the group, or by `all` (room
            // members), with an address, not unsubscribed, not present. `here` adds nobody.
            let mut want = BTreeSet::new();
            for n in &names {
                let covered: Vec<&str> = match n.as_str() {
                    "here" => vec![],
                    "all" => vec!["alice", "bob", "carol"],
                    "db" => vec!["alice", "dave"],
                    m => vec![m],
                };
                for m in covered {
                    if r.mail.members.contains_key(m)
                        && !(unsubscribed_bob && m == "bob")
                        && mail::should_email(presence[m].state, critical)
                    {
                        want.insert(m.to_string());
                    }
                }
            }
            prop_assert_eq!(seen, want);
        }

        #[test]
        fn only_openings_and_reopenings_send_mail(states in proptest::collection::vec(0usize..4, 4)) {
            let r = router(vec!["all".into(), "dave".into()]);
            let (ticket, mut entry) = opened(Severity::Critical);
            entry.kind = EntryKind::Refired;
            prop_assert!(r.plan_mail(&ticket, &entry, &presence(&states), &BTreeSet::new()).is_empty());
        }
    }

    #[test]
    fn a_note_typed_in_a_room_is_not_echoed_there() {
        let mut r = router(Vec::new());
        let ops = r.rooms["ops"].clone();
        r.rooms.insert("dev".into(), ops);
        r.routes[0].rooms.push("dev".into());
        let (ticket, mut entry) = opened(Severity::Warning);
        entry.kind = EntryKind::Note;
        entry.visibility = Visibility::Public;
        entry.text = "disk replaced".into();
        entry.data = serde_json::json!({"via": "matrix", "room": "ops"});
        let rooms =
            |e: &Entry| -> Vec<String> { r.plan(&ticket, e).into_iter().map(|d| d.room).collect() };
        assert_eq!(rooms(&entry), vec!["dev".to_string()]);
        // From elsewhere (the API, email), a note goes to every room.
        entry.data = serde_json::json!({"via": "api"});
        assert_eq!(rooms(&entry), vec!["ops".to_string(), "dev".to_string()]);
    }

    /// `ops` with Mon–Fri 09:00–17:30 Berlin hours and `off`, plus an always-open `oncall` room. The
    /// test tickets open on a Thursday at 01:16 Berlin time (1970-01-01T00:16:40Z): off hours.
    fn router_with_hours(off: OffHours) -> Router {
        let mut r = router(Vec::new());
        let oncall = r.rooms["ops"].clone();
        r.rooms.insert("oncall".into(), oncall);
        r.rooms.get_mut("ops").unwrap().hours = Some(RoomHours {
            hours: crate::domain::hours::Hours::new(&[0, 1, 2, 3, 4], 540, 1050, "Europe/Berlin")
                .unwrap(),
            off_hours: off,
        });
        r
    }

    fn rooms_and_holds(plan: &Plan) -> Vec<(String, DeliveryKind, Option<Timestamp>)> {
        plan.deliveries
            .iter()
            .map(|d| (d.room.clone(), d.kind, d.hold_until))
            .collect()
    }

    #[test]
    fn off_hours_route_sends_to_the_other_room() {
        let r = router_with_hours(OffHours::Route("oncall".into()));
        let (ticket, entry) = opened(Severity::Warning);
        let plan = r.plan_full(&ticket, &entry);
        assert_eq!(
            rooms_and_holds(&plan),
            vec![("oncall".to_string(), DeliveryKind::Root, None)]
        );
        assert_eq!(plan.off_hours.len(), 1);
        assert_eq!(
            plan.off_hours[0].text,
            "Room ops is outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin); sent to oncall."
        );
        // In hours (Thursday 10:00 Berlin), ops gets it itself.
        let mut in_hours = entry.clone();
        in_hours.at = Timestamp::from_millis(9 * 3_600_000);
        let plan = r.plan_full(&ticket, &in_hours);
        assert_eq!(
            rooms_and_holds(&plan),
            vec![("ops".to_string(), DeliveryKind::Root, None)]
        );
        assert!(plan.off_hours.is_empty());
    }

    #[test]
    fn off_hours_hold_waits_for_the_opening_except_for_critical_tickets() {
        let r = router_with_hours(OffHours::Hold);
        // Thursday 09:00 Berlin is 08:00 UTC.
        let opening = Timestamp::from_millis(8 * 3_600_000);
        let (ticket, entry) = opened(Severity::Warning);
        let plan = r.plan_full(&ticket, &entry);
        assert_eq!(
            rooms_and_holds(&plan),
            vec![("ops".to_string(), DeliveryKind::Root, Some(opening))]
        );
        assert_eq!(
            plan.off_hours[0].action,
            OffHoursAction::Held { until: opening }
        );
        let (critical, entry) = opened(Severity::Critical);
        let plan = r.plan_full(&critical, &entry);
        assert_eq!(
            rooms_and_holds(&plan),
            vec![("ops".to_string(), DeliveryKind::Root, None)]
        );
        assert!(plan.off_hours.is_empty());
    }

    #[test]
    fn off_hours_notice_comes_with_firings_only() {
        let r = router_with_hours(OffHours::Notice);
        let (ticket, entry) = opened(Severity::Warning);
        let plan = r.plan_full(&ticket, &entry);
        assert_eq!(
            rooms_and_holds(&plan),
            vec![
                ("ops".to_string(), DeliveryKind::Root, None),
                ("ops".to_string(), DeliveryKind::Notice, None),
            ]
        );
        let Content::Ticket(notice) = &plan.deliveries[1].content else {
            panic!("a notice is a ticket message");
        };
        assert_eq!(
            notice.change,
            Change::Note {
                author: "tocsin".into(),
                text: "Outside business hours (Mon–Fri 09:00–17:30 Europe/Berlin); the team is back at Thu 1970-01-01 09:00.".into()
            }
        );
        assert_eq!(
            plan.off_hours[0].action,
            OffHoursAction::Noticed {
                // Wednesday 17:30 Berlin.
                period_start: Timestamp::from_millis(-(7 * 3_600_000 + 30 * 60_000)),
                back_at: Timestamp::from_millis(8 * 3_600_000),
            }
        );
        // A resolution off hours brings no notice.
        let mut resolved = entry.clone();
        resolved.kind = EntryKind::Resolved;
        let plan = r.plan_full(&ticket, &resolved);
        assert_eq!(
            rooms_and_holds(&plan),
            vec![("ops".to_string(), DeliveryKind::Reply, None)]
        );
        assert!(plan.off_hours.is_empty());
    }
}
