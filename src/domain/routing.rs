//! Routing: which rooms a ticket change goes to, who is mentioned, and which messages that makes.
//!
//! Pure: built once from the config, then asked `plan(ticket, entry)` inside the store's transaction, so
//! the deliveries a change causes are written atomically with the change. Routes see the ticket after
//! the plugin chain; rooms a plugin added (`route` decisions) are added to the routes' rooms.

use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::message::{Capabilities, Change, Content, Mention, TicketMessage};
use super::ticket::Ticket;
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
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Root => "root",
            DeliveryKind::Reply => "reply",
            DeliveryKind::EditRoot => "edit_root",
            DeliveryKind::Digest => "digest",
        }
    }

    pub fn from_name(name: &str) -> Option<DeliveryKind> {
        [Self::Root, Self::Reply, Self::EditRoot, Self::Digest]
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
            _ => return Vec::new(),
        };
        let (rooms, mention_names) = self.targets(ticket);
        // Pings belong to news that needs someone: a ticket opening or coming back.
        let pings = matches!(change, Change::Opened | Change::Reopened);
        let mut out = Vec::new();
        for room in rooms {
            let Some(info) = self.rooms.get(&room) else {
                continue;
            };
            let mentions = if pings {
                self.mentions(&mention_names, &info.platform)
            } else {
                Vec::new()
            };
            let message = self.message(ticket, entry, change.clone(), mentions);
            let mut push = |kind, content| {
                out.push(DeliveryDraft {
                    room: room.clone(),
                    kind,
                    content,
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
        }
        out
    }

    fn mentions(&self, names: &[String], platform: &str) -> Vec<Mention> {
        names
            .iter()
            .map(|n| match n.as_str() {
                "here" => Mention::Here,
                "all" => Mention::All,
                name => Mention::Member {
                    name: name.to_string(),
                    handle: self
                        .handles
                        .get(name)
                        .and_then(|h| h.get(platform))
                        .cloned(),
                },
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
        let summary = ticket
            .description
            .clone()
            .or_else(|| ticket.annotations.get("summary").cloned())
            .or_else(|| ticket.routing.body.clone());
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
