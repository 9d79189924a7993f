//! ChatOps: commands typed in chat (`ack T-42`, `note T-42 text`, `silence ...`, `status`, `help`),
//! from Slack, Mattermost and Matrix, run as the member the chat user is mapped to.
//!
//! Each platform's module verifies the request (signatures, tokens) and turns it into an [`Origin`] and
//! a text; [`ChatOps::handle`] parses it with `domain::command`, runs it against the store and returns
//! the answer to show in chat. Every action is a timeline entry naming the member and the channel.
//!
//! Answers are plain text. Whatever came from an alert or a person (titles, names, comments) is escaped
//! for the origin's platform with the pure helpers in `sinks::text` (Slack mrkdwn, Mattermost Markdown,
//! plain text with mentions defused elsewhere), so an alert title cannot ping `@here` or `<!channel>`.

pub mod matrix;
pub mod mattermost;
pub mod slack;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;

use crate::clock::Clock;
use crate::config::{ChatOpsConfig, Config, Role, SinkConfig};
use crate::domain::command::{self, Assignee, Command, CommandError};
use crate::domain::silence::{Matcher, SilenceDraft};
use crate::domain::ticket::{Action, ActionError, Actor, Ticket, TicketState};
use crate::domain::timeline::Visibility;
use crate::outbox::Outbox;
use crate::sinks::text;
use crate::store::{Store, StoreError, TicketFilter, TicketRef};

/// The most tickets `status` lists.
const STATUS_MAX: usize = 20;

/// The chat routes: Slack (`/chat/slack/...`) and Mattermost (`/chat/mattermost`), on the
/// [`ChatOps`] that `App` builds (give it with `with_state`).
pub fn router() -> Router<Arc<ChatOps>> {
    Router::new()
        .merge(slack::router())
        .merge(mattermost::router())
}

/// Where a command came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `slack`, `mattermost` or `matrix`: names the member handle to look up and the entry's channel.
    pub platform: &'static str,
    /// The chat user as the platform names them (Slack user id, Mattermost user id, Matrix user id).
    pub user: String,
    /// The tocsin room the command was typed in, when the channel is one of `rooms:`.
    pub room: Option<String>,
}

/// What to answer in chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub text: String,
    /// `true`: everyone in the channel should see it (an action done); `false`: only the user who
    /// typed it (help, refusals, errors), where the platform can do that.
    pub public: bool,
}

impl Answer {
    fn public(text: impl Into<String>) -> Answer {
        Answer {
            text: text.into(),
            public: true,
        }
    }

    fn private(text: impl Into<String>) -> Answer {
        Answer {
            text: text.into(),
            public: false,
        }
    }
}

/// Runs chat commands against the store.
#[derive(Debug)]
pub struct ChatOps {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    outbox: Arc<Outbox>,
    /// Platform → chat user → member.
    members: BTreeMap<String, BTreeMap<String, String>>,
    /// Who is a member now, with which role (re-read on reload: a removed member cannot act).
    roles: Arc<crate::state::Members>,
    /// Platform → channel (Slack channel ID, Mattermost channel ID, Matrix room ID) → tocsin room.
    rooms: BTreeMap<&'static str, BTreeMap<String, String>>,
    public_url: String,
    /// `chatops:` as configured: what the Slack and Mattermost routes check requests against.
    config: Option<ChatOpsConfig>,
    /// Signed requests already taken (by their decoded MAC), until their replay window closes: a
    /// request captured inside the window cannot be sent again (Slack's scheme itself has no nonce).
    pub replays: crate::ingest::Replays,
}

impl ChatOps {
    pub fn new(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        outbox: Arc<Outbox>,
        roles: Arc<crate::state::Members>,
    ) -> ChatOps {
        let mut members: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (name, m) in &config.members {
            for (platform, handle) in &m.handles {
                members
                    .entry(platform.clone())
                    .or_default()
                    .insert(handle.0.clone(), name.clone());
            }
        }
        let mut rooms: BTreeMap<&'static str, BTreeMap<String, String>> = BTreeMap::new();
        for (name, room) in &config.rooms {
            let channel = match &room.sink {
                SinkConfig::Slack(s) => s.channel.as_ref().map(|c| c.0.trim().to_string()),
                SinkConfig::Mattermost(m) => m.channel_id.as_ref().map(|c| c.0.trim().to_string()),
                SinkConfig::Matrix(m) => Some(m.room_id.0.trim().to_string()),
                _ => None,
            };
            if let Some(channel) = channel.filter(|c| !c.is_empty()) {
                // The first room (in name order) with a channel wins when two share it.
                rooms
                    .entry(room.sink.kind())
                    .or_default()
                    .entry(channel)
                    .or_insert_with(|| name.clone());
            }
        }
        ChatOps {
            store,
            clock,
            outbox,
            members,
            roles,
            rooms,
            public_url: config.public_url.0.trim_end_matches('/').to_string(),
            config: config.chatops.clone(),
            replays: crate::ingest::Replays::default(),
        }
    }

    /// The member a chat user is, through `members.<name>.handles.<platform>` (Mattermost:
    /// `handles.mattermost_id`), and still a member after the last reload.
    pub fn member(&self, platform: &str, user: &str) -> Option<&str> {
        let key = if platform == "mattermost" {
            "mattermost_id"
        } else {
            platform
        };
        self.members
            .get(key)
            .and_then(|m| m.get(user))
            .map(String::as_str)
            .filter(|name| self.roles.contains(name))
    }

    /// The tocsin room whose sink posts to this channel of `platform` (`slack`: the sink's `channel`,
    /// `mattermost`: its `channel_id`, `matrix`: its `room_id`).
    pub fn room_for(&self, platform: &str, channel: &str) -> Option<&str> {
        self.rooms
            .get(platform)
            .and_then(|r| r.get(channel.trim()))
            .map(String::as_str)
    }

    /// Whether `member` may act on tickets (notes, ack, resolve...): editors and admins.
    pub fn may_act(&self, member: &str) -> bool {
        self.roles.role(member).unwrap_or(Role::Viewer) >= Role::Editor
    }

    /// Runs one command line and says what to answer.
    pub async fn handle(&self, origin: &Origin, text: &str) -> Answer {
        let Some(member) = self.member(origin.platform, &origin.user) else {
            return Answer::private(format!(
                "Sorry, I do not know who you are: ask an admin to add your {} handle to a member in tocsin's config.",
                origin.platform
            ));
        };
        let command = match command::parse(text) {
            Ok(c) => c,
            // The error shows back what was typed (an unknown verb, a bad matcher): that part is
            // escaped and its mentions defused like any other untrusted text, so `@channel` typed
            // as a command pings no one. Only the fixed usage stays as code.
            Err(e) => {
                let esc = Escape::for_platform(origin.platform);
                return Answer::private(match e {
                    CommandError::Empty => e.to_string(),
                    CommandError::Unknown(verb) => format!(
                        "I do not know the command \u{201c}{}\u{201d}. Type `help` for the list.",
                        esc.apply(&verb)
                    ),
                    CommandError::Usage { problem, usage } => {
                        format!("{} Usage: `{usage}`", esc.apply(&problem))
                    }
                });
            }
        };
        let esc = Escape::for_platform(origin.platform);
        let role = self.roles.role(member).unwrap_or(Role::Viewer);
        match command {
            Command::Help => return Answer::private(command::help()),
            Command::Status => return self.status(origin, esc).await,
            _ if role < Role::Editor => {
                return Answer::private(format!(
                    "Sorry {}, you are a {} in tocsin: you can use `status` and `help`; acting on tickets needs the editor role.",
                    esc.apply(member),
                    role.as_str()
                ))
            }
            _ => {}
        }
        let actor = {
            let a = Actor::new(member, origin.platform);
            match &origin.room {
                Some(room) => a.in_room(room.clone()),
                None => a,
            }
        };
        match command {
            Command::Ack { ticket } => self.act(ticket, Action::Ack, &actor, esc).await,
            Command::Resolve { ticket } => self.act(ticket, Action::Resolve, &actor, esc).await,
            Command::Note { ticket, text } => {
                // Typed where the room can read it, so the note is public (and mirrored to the ticket's
                // other rooms; routing skips the room it came from).
                let action = Action::Note {
                    text,
                    visibility: Visibility::Public,
                };
                self.act(ticket, action, &actor, esc).await
            }
            Command::Assign { ticket, to } => {
                let to = match to {
                    Assignee::Me => member.to_string(),
                    Assignee::Named(name) => match self.resolve_member(origin.platform, &name) {
                        Some(m) => m,
                        None => {
                            return Answer::private(format!(
                                "`{}` is not a tocsin member (nor a {} handle of one).",
                                esc.apply(&name),
                                origin.platform
                            ))
                        }
                    },
                };
                let action = Action::Assign { member: Some(to) };
                self.act(ticket, action, &actor, esc).await
            }
            Command::Unassign { ticket } => {
                self.act(ticket, Action::Assign { member: None }, &actor, esc)
                    .await
            }
            Command::Silence {
                matchers,
                duration,
                comment,
            } => {
                let now = self.clock.now();
                let comment = if comment.trim().is_empty() {
                    format!("Silenced from {}.", origin.platform)
                } else {
                    comment
                };
                let draft = SilenceDraft {
                    matchers,
                    starts_at: now,
                    ends_at: now.plus(duration),
                    comment,
                    author: member.to_string(),
                };
                if let Err(e) = draft.validate(now) {
                    return Answer::private(format!(
                        "Sorry, that silence cannot be made: {}.",
                        esc.apply(&e.to_string())
                    ));
                }
                match self.store.create_silence(draft, now).await {
                    Ok(s) => {
                        self.outbox.notify();
                        Answer::public(format!(
                            "Silence {} by {} until {}: {} ({}).",
                            s.id,
                            esc.apply(member),
                            s.ends_at.to_rfc3339(),
                            esc.apply(&show_matchers(&s.matchers)),
                            esc.apply(&s.comment)
                        ))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, member, "A silence from chat failed.");
                        Answer::private(format!(
                            "Sorry, the silence could not be saved: {}.",
                            esc.apply(&store_problem(&e))
                        ))
                    }
                }
            }
            Command::Help | Command::Status => unreachable!("answered above"),
        }
    }

    /// A member name, or a handle on `platform` of a member (for Mattermost the user name, as
    /// people type it in `assign T-1 @bob`: this names whom to assign, not who is asking).
    fn resolve_member(&self, platform: &str, name: &str) -> Option<String> {
        if self.roles.contains(name) {
            return Some(name.to_string());
        }
        self.members
            .get(platform)
            .and_then(|m| m.get(name))
            .filter(|m| self.roles.contains(m))
            .cloned()
    }

    async fn act(&self, number: i64, action: Action, actor: &Actor, esc: Escape) -> Answer {
        let reference = format!("T-{number}");
        let now = self.clock.now();
        let result = self
            .store
            .act(&TicketRef::Number(number), action.clone(), actor, now)
            .await;
        let who = esc.apply(&actor.member);
        match result {
            Ok(_) => {
                // The action may have written deliveries (an ack or resolve edits the room's message).
                self.outbox.notify();
                Answer::public(match action {
                    Action::Ack => format!("{reference} acknowledged by {who}."),
                    Action::Resolve => format!("{reference} resolved by {who}."),
                    Action::Note { .. } => format!("Note added to {reference} by {who}."),
                    Action::Assign { member: Some(to) } if to == actor.member => {
                        format!("{who} took {reference}.")
                    }
                    Action::Assign { member: Some(to) } => {
                        format!("{reference} assigned to {} by {who}.", esc.apply(&to))
                    }
                    Action::Assign { member: None } => {
                        format!("{reference} unassigned by {who}.")
                    }
                })
            }
            Err(StoreError::NotFound) => {
                Answer::private(format!("There is no ticket {reference}."))
            }
            Err(StoreError::Rejected(r)) => Answer::private(match r {
                ActionError::AlreadyAcked(_) => format!("{reference} is already acknowledged."),
                ActionError::Resolved(_) => format!("{reference} is already resolved."),
                ActionError::AlreadyAssigned(_, m) => {
                    format!("{reference} is already assigned to {}.", esc.apply(&m))
                }
                ActionError::NotAssigned(_) => format!("{reference} is not assigned to anyone."),
                ActionError::EmptyNote => "The note has no text.".to_string(),
                other => format!("{reference}: {}.", esc.apply(&other.to_string())),
            }),
            Err(e) => {
                tracing::warn!(error = %e, ticket = %reference, "A chat action failed.");
                Answer::private(format!(
                    "Sorry, {reference} could not be changed: {}.",
                    esc.apply(&store_problem(&e))
                ))
            }
        }
    }

    async fn status(&self, origin: &Origin, esc: Escape) -> Answer {
        let filter = TicketFilter {
            states: vec![TicketState::Open, TicketState::Acked],
            room: origin.room.clone(),
            limit: STATUS_MAX + 1,
            ..TicketFilter::default()
        };
        let mut tickets = match self.store.list_tickets(&filter).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "Listing tickets for chat failed.");
                return Answer::private(format!(
                    "Sorry, the tickets could not be listed: {}.",
                    esc.apply(&store_problem(&e))
                ));
            }
        };
        tickets.sort_by_key(|t| std::cmp::Reverse(t.number));
        let place = match &origin.room {
            Some(room) => format!("in {}", esc.apply(room)),
            None => "anywhere".to_string(),
        };
        if tickets.is_empty() {
            return Answer::private(format!("No open tickets {place}."));
        }
        let more = tickets.len() > STATUS_MAX;
        tickets.truncate(STATUS_MAX);
        let mut out = format!(
            "{} open ticket{} {place}:",
            if more {
                format!("More than {STATUS_MAX}")
            } else {
                tickets.len().to_string()
            },
            if tickets.len() == 1 { "" } else { "s" }
        );
        for t in &tickets {
            out.push('\n');
            out.push_str(&self.status_line(t, esc));
        }
        if more {
            let mut link = format!("{}/tickets?state=open,acked", self.public_url);
            if let Some(room) = &origin.room {
                link.push_str(&format!("&room={room}"));
            }
            out.push_str(&format!("\n… and more: {link}"));
        }
        Answer::private(out)
    }

    /// `T-7 [critical] Disk full on db1 (acked, bob) http://.../tickets/T-7`.
    fn status_line(&self, t: &Ticket, esc: Escape) -> String {
        let title: String = one_line(&t.title).chars().take(200).collect();
        let assignee = match &t.assignee {
            Some(a) => esc.apply(a),
            None => "unassigned".into(),
        };
        format!(
            "{} [{}] {} ({}, {assignee}) {}/tickets/{}",
            t.reference(),
            t.severity.as_str(),
            esc.apply(&title),
            t.state.as_str(),
            self.public_url,
            t.reference()
        )
    }
}

/// What to tell a chat user about a store failure, without internals.
fn store_problem(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(_) | StoreError::Fenced(_) => {
            "tocsin's storage is unavailable; try again in a moment".into()
        }
        StoreError::NotFound => "not found".into(),
        StoreError::Rejected(r) => r.to_string(),
        StoreError::Full(m) => m.clone(),
        StoreError::Other(_) => "something went wrong; the server log has the details".into(),
    }
}

fn show_matchers(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(Matcher::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn one_line(raw: &str) -> String {
    raw.replace(['\r', '\n'], " ")
}

pub use crate::ingest::secrets_match;

/// The request body, or the app's JSON error for one that could not be read (413 past `limit`).
pub fn read_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
    limit: usize,
) -> Result<axum::body::Bytes, crate::error::ApiError> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            crate::error::ApiError::PayloadTooLarge {
                limit: limit as u64,
            }
        } else {
            crate::error::ApiError::bad_request("invalid_body", e.body_text())
        }
    })
}

/// Decodes an `application/x-www-form-urlencoded` body (`+` is a space, `%XX` a byte). A repeated key
/// keeps its first value; bytes that are not UTF-8 become U+FFFD.
pub fn form(body: &[u8]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        out.entry(percent_decode(k))
            .or_insert_with(|| percent_decode(v));
    }
    out
}

fn percent_decode(raw: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How untrusted text is made safe for the platform an answer goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// Slack mrkdwn: `& < >` as entities (no `<!channel>`), formatting disarmed, `@here` defused.
    Slack,
    /// Mattermost Markdown: punctuation backslash-escaped, `@here`/`@channel`/`@all` defused.
    Markdown,
    /// Plain text (Matrix bodies): mentions defused.
    Plain,
}

impl Escape {
    fn for_platform(platform: &str) -> Escape {
        match platform {
            "slack" => Escape::Slack,
            "mattermost" => Escape::Markdown,
            _ => Escape::Plain,
        }
    }

    fn apply(self, raw: &str) -> String {
        match self {
            Escape::Slack => text::escape_slack(raw),
            Escape::Markdown => text::escape_markdown(raw),
            Escape::Plain => text::plain(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_keep_alert_text_from_pinging() {
        for platform in ["slack", "mattermost", "matrix"] {
            let out = Escape::for_platform(platform).apply("<!channel> @here @all @channel");
            for bad in ["@here", "@all", "@channel"] {
                assert!(!out.contains(bad), "{platform}: {out}");
            }
            // `<!channel>` only means something to Slack (and Mattermost's Slack compatibility).
            if platform != "matrix" {
                assert!(!out.contains("<!"), "{platform}: {out}");
            }
        }
    }

    #[test]
    fn forms_decode_plus_percent_and_bad_escapes() {
        let f = form(b"text=ack+T-1%20now&user_id=U1&empty=&bare&text=second&odd=%zz%4");
        assert_eq!(f["text"], "ack T-1 now");
        assert_eq!(f["user_id"], "U1");
        assert_eq!(f["empty"], "");
        assert_eq!(f["bare"], "");
        assert_eq!(f["odd"], "%zz%4");
        assert_eq!(form(b"a=%C3%A9%FF")["a"], "é\u{FFFD}");
    }
}
