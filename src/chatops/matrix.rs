//! The Matrix bot: reads the rooms named in `chatops.matrix.rooms` with `/sync`, runs commands typed
//! there, and turns replies in a ticket's thread into public notes on that ticket.
//!
//! The bot is the account of the rooms' Matrix sinks (same homeserver and access token), so the messages
//! it reads back from tocsin itself are recognised by their sender and skipped. What it does with a
//! person's message:
//!
//! - In the thread of a ticket's root message (or a reply to that message): a command (`!tocsin ...`,
//!   `tocsin: ...`, the bot's user ID first, or the bare word `ack`, `resolve`, `status` or `help`) runs
//!   against that ticket; anything else becomes a public note on the ticket by the member the sender is
//!   (`members.<name>.handles.matrix`). Routing does not post the note back into that room.
//! - In the room's main timeline: only messages addressed to tocsin, that is a prefix as above or a bare
//!   command (`ack T-3`, `resolve T-3`, `note T-3 text`, `assign T-3 bob`, `unassign T-3`, `status`,
//!   `help`, `silence alertname=x 2h`), run through [`ChatOps::handle`]. The answer goes to the named
//!   ticket's thread when it has one in this room, else it replies to the command. Chatter is left
//!   alone.
//!
//! The first `/sync` only takes the position: what was said before tocsin started is not run again.
//! Nothing else is persisted. Answers use the command's event ID as the transaction ID, so a repeated
//! answer is sent once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};

use super::{ChatOps, Origin};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::{Config, SinkConfig};
use crate::domain::ticket::{Action, Actor, Ticket};
use crate::domain::timeline::Visibility;
use crate::outbox::Outbox;
use crate::sinks::http::Client;
use crate::sinks::matrix::sync::{BotError, MatrixBotClient, RoomMessage};
use crate::store::{Store, StoreError, TicketRef};

/// How long one `/sync` waits for something new when the server runs the bot.
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(25);
/// The first wait after a failed `/sync`; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Command words that are read in the main timeline without a prefix. The ones acting on a ticket
/// need its reference next (`ack T-3`); `status` and `help` must stand alone; `silence` needs a matcher.
const TICKET_VERBS: [&str; 5] = ["ack", "resolve", "note", "assign", "unassign"];
/// Words that alone, in a ticket's thread, are a command on that ticket (or a question to tocsin).
const THREAD_WORDS: [&str; 4] = ["ack", "resolve", "status", "help"];

/// One bot account (homeserver and access token) and the tocsin rooms it reads.
#[derive(Debug)]
pub struct MatrixBot {
    client: MatrixBotClient,
    /// Matrix room ID → tocsin room name.
    rooms: BTreeMap<String, String>,
    room_ids: Vec<String>,
    chatops: Arc<ChatOps>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    outbox: Arc<Outbox>,
    sync_timeout_ms: AtomicU64,
    state: Mutex<SyncState>,
}

#[derive(Debug, Default)]
struct SyncState {
    /// The bot's own user ID, from `whoami`.
    user_id: Option<String>,
    /// Where the next `/sync` starts; `None` before the first.
    since: Option<String>,
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Intent {
    /// A command line for [`ChatOps::handle`].
    Command(String),
    /// A note on the thread's ticket.
    Note,
    /// Not for tocsin.
    Nothing,
}

impl MatrixBot {
    /// One bot per distinct homeserver and access token among `chatops.matrix.rooms`; none without
    /// that block. A named room that is not a Matrix room is an error (validation reports it first).
    pub fn from_config(
        config: &Config,
        chatops: &Arc<ChatOps>,
        store: &Arc<dyn Store>,
        clock: &Arc<dyn Clock>,
        outbox: &Arc<Outbox>,
    ) -> Result<Vec<Arc<MatrixBot>>, String> {
        let Some(matrix) = config.chatops.as_ref().and_then(|c| c.matrix.as_ref()) else {
            return Ok(Vec::new());
        };
        let http = Client::new();
        let mut accounts: BTreeMap<(String, String), (MatrixBotClient, BTreeMap<String, String>)> =
            BTreeMap::new();
        for name in &matrix.rooms {
            let sink = match config.rooms.get(name).map(|r| &r.sink) {
                Some(SinkConfig::Matrix(m)) => m,
                Some(_) => {
                    return Err(format!(
                        "chatops.matrix.rooms: `{name}` is not a room of kind matrix"
                    ))
                }
                None => return Err(format!("chatops.matrix.rooms: no room `{name}`")),
            };
            let key = (
                sink.homeserver.0.trim().trim_end_matches('/').to_string(),
                sink.access_token.expose().to_string(),
            );
            let client = MatrixBotClient::new(sink, &http)
                .map_err(|e| format!("chatops.matrix.rooms: `{name}`: {e}"))?;
            accounts
                .entry(key)
                .or_insert_with(|| (client, BTreeMap::new()))
                .1
                .entry(sink.room_id.0.trim().to_string())
                .or_insert_with(|| name.clone());
        }
        Ok(accounts
            .into_values()
            .map(|(client, rooms)| {
                Arc::new(MatrixBot {
                    client,
                    room_ids: rooms.keys().cloned().collect(),
                    rooms,
                    chatops: Arc::clone(chatops),
                    store: Arc::clone(store),
                    clock: Arc::clone(clock),
                    outbox: Arc::clone(outbox),
                    sync_timeout_ms: AtomicU64::new(SYNC_TIMEOUT.as_millis() as u64),
                    state: Mutex::new(SyncState::default()),
                })
            })
            .collect())
    }

    /// The bot's lease in a cluster: one instance reads its rooms at a time.
    pub fn lease(&self) -> String {
        format!("matrix:{}", self.rooms().join(","))
    }

    /// The tocsin rooms this bot reads.
    pub fn rooms(&self) -> Vec<&str> {
        self.rooms.values().map(String::as_str).collect()
    }

    /// How long each `/sync` waits for news (tests shorten it).
    pub fn set_sync_timeout(&self, timeout: Duration) {
        self.sync_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// One `/sync` round: waits for new messages (up to the sync timeout), handles them, and returns
    /// how many were for tocsin (commands run, notes added, refusals sent). The first round only takes
    /// the position and handles nothing.
    pub async fn step(&self) -> Result<usize, BotError> {
        let mut state = self.state.lock().await;
        let me = match &state.user_id {
            Some(me) => me.clone(),
            None => {
                let me = self.client.whoami().await?;
                state.user_id = Some(me.clone());
                me
            }
        };
        let Some(since) = state.since.clone() else {
            let batch = self.client.sync(None, 0, &self.room_ids).await?;
            tracing::info!(user = %me, rooms = ?self.rooms(), "The Matrix bot is reading its rooms.");
            state.since = Some(batch.next_batch);
            return Ok(0);
        };
        let timeout = self.sync_timeout_ms.load(Ordering::Relaxed);
        let batch = self
            .client
            .sync(Some(&since), timeout, &self.room_ids)
            .await?;
        // Moving on before handling: a message that fails is logged, not run again later.
        state.since = Some(batch.next_batch);
        let mut handled = 0;
        for m in batch.messages {
            if m.sender == me {
                continue;
            }
            let Some(room) = self.rooms.get(&m.room_id).cloned() else {
                continue;
            };
            match self.message(&me, &room, &m).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(room = %room, event = %m.event_id, error = %e, "A Matrix message could not be handled.")
                }
            }
        }
        Ok(handled)
    }

    /// The server's loop: `/sync` until `stop` turns true, waiting longer after each failure.
    /// Only while this instance holds the bot's lease in `cluster`, so no message is handled twice.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
        let mut backoff = FIRST_BACKOFF;
        let lease = self.lease();
        loop {
            if *stop.borrow() {
                return;
            }
            let result = tokio::select! {
                r = cluster.under(&lease, self.step()) => match r {
                    Some(r) => r,
                    None => {
                        // Another instance reads these rooms; wait to take over if it goes away.
                        tokio::select! {
                            _ = cluster.changed.notified() => {}
                            _ = tokio::time::sleep(cluster.round_every()) => {}
                            _ = stop.changed() => return,
                        }
                        continue;
                    }
                },
                _ = stop.changed() => return,
            };
            let wait = match result {
                Ok(_) => {
                    backoff = FIRST_BACKOFF;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(rooms = ?self.rooms(), error = %e, "Reading Matrix failed; will retry.");
                    let wait = e.retry_after.unwrap_or(backoff).max(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Handles one person's message in `room`. `Ok(true)` when it was for tocsin.
    async fn message(&self, me: &str, room: &str, m: &RoomMessage) -> Result<bool, String> {
        // A thread under a ticket's root message, or a plain reply to that message.
        for root in [m.thread_root.as_deref(), m.in_reply_to.as_deref()]
            .into_iter()
            .flatten()
        {
            let ticket = self
                .store
                .ticket_by_root(room, root)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(ticket) = ticket {
                return self.in_thread(me, room, root, &ticket, m).await;
            }
        }
        let Some(line) = addressed(me, &m.body) else {
            return Ok(false);
        };
        let answer = self.chatops.handle(&self.origin(room, m), &line).await;
        // The answer goes under the ticket the command names, when it has a thread here.
        let mut thread = None;
        if let Some(number) = named_ticket(&line) {
            if let Ok(t) = self.store.get_ticket(&TicketRef::Number(number)).await {
                thread = self
                    .store
                    .ticket_root(&t.id, room)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        self.answer(m, &answer.text, thread.as_deref()).await;
        Ok(true)
    }

    async fn in_thread(
        &self,
        me: &str,
        room: &str,
        root: &str,
        ticket: &Ticket,
        m: &RoomMessage,
    ) -> Result<bool, String> {
        match thread_intent(me, &m.body, ticket.number) {
            Intent::Nothing => Ok(false),
            Intent::Command(line) => {
                let answer = self.chatops.handle(&self.origin(room, m), &line).await;
                self.answer(m, &answer.text, Some(root)).await;
                Ok(true)
            }
            Intent::Note => {
                let Some(member) = self.chatops.member("matrix", &m.sender) else {
                    self.answer(
                        m,
                        &format!(
                            "Sorry, I do not know who you are, so your reply was not added to {}: ask an admin to add your matrix handle to a member in tocsin's config.",
                            ticket.reference()
                        ),
                        Some(root),
                    )
                    .await;
                    return Ok(true);
                };
                // A thread reply becomes a note: writing, so editors and admins only.
                if !self.chatops.may_act(member) {
                    self.answer(
                        m,
                        &format!(
                            "Sorry, you are a viewer in tocsin: your reply was not added to {}.",
                            ticket.reference()
                        ),
                        Some(root),
                    )
                    .await;
                    return Ok(true);
                }
                let action = Action::Note {
                    text: m.body.clone(),
                    visibility: Visibility::Public,
                };
                let actor = Actor::new(member, "matrix").in_room(room);
                match self
                    .store
                    .act(
                        &TicketRef::Id(ticket.id.clone()),
                        action,
                        &actor,
                        self.clock.now(),
                    )
                    .await
                {
                    Ok(_) => {
                        // The note goes to the ticket's other rooms.
                        self.outbox.notify();
                        Ok(true)
                    }
                    Err(StoreError::Rejected(e)) => {
                        self.answer(
                            m,
                            &format!(
                                "Not added to {}: {}.",
                                ticket.reference(),
                                crate::sinks::text::plain(&e.to_string())
                            ),
                            Some(root),
                        )
                        .await;
                        Ok(true)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }

    fn origin(&self, room: &str, m: &RoomMessage) -> Origin {
        Origin {
            platform: "matrix",
            user: m.sender.clone(),
            room: Some(room.to_string()),
        }
    }

    /// Posts an answer to `m`: in `thread` when given, else in the thread `m` was typed in, else as a
    /// reply to it. Failures are logged: an answer is not worth holding up the next messages.
    async fn answer(&self, m: &RoomMessage, text: &str, thread: Option<&str>) {
        let txn = format!("tocsin-answer-{}", m.event_id);
        let sent = match thread.or(m.thread_root.as_deref()) {
            Some(root) => {
                self.client
                    .send_text(&m.room_id, text, Some(root), &txn)
                    .await
            }
            None => {
                self.client
                    .send_reply(&m.room_id, text, &m.event_id, &txn)
                    .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!(room = %m.room_id, event = %m.event_id, error = %e, "Could not answer on Matrix.");
        }
    }
}

/// The command line in a main-timeline message addressed to tocsin, without its prefix, or `None` for
/// chatter.
fn addressed(me: &str, body: &str) -> Option<String> {
    if let Some(rest) = strip_prefix(me, body) {
        return Some(rest.to_string());
    }
    bare_command(body).then(|| body.trim().to_string())
}

/// What a message in ticket `number`'s thread asks for: a command (with the ticket filled in when the
/// command names none), or a note.
fn thread_intent(me: &str, body: &str, number: i64) -> Intent {
    if body.trim().is_empty() {
        return Intent::Nothing;
    }
    let line = match strip_prefix(me, body) {
        Some(rest) => rest.to_string(),
        None => {
            let word = body.trim().to_lowercase();
            if THREAD_WORDS.contains(&word.as_str()) || bare_command(body) {
                body.trim().to_string()
            } else {
                return Intent::Note;
            }
        }
    };
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or_default();
    let verb = first.to_lowercase();
    if TICKET_VERBS.contains(&verb.as_str()) && !words.next().is_some_and(is_reference) {
        // `ack` → `ack T-3`; `assign bob` → `assign T-3 bob`; `note text` → `note T-3 text`.
        let rest = line.trim_start()[first.len()..].trim_start();
        let filled = if rest.is_empty() {
            format!("{verb} T-{number}")
        } else {
            format!("{verb} T-{number} {rest}")
        };
        return Intent::Command(filled);
    }
    Intent::Command(line)
}

/// The rest of a message that starts with `!tocsin`, `tocsin:` or the bot's user ID (a mention pill's
/// plain text, optionally followed by `:`).
fn strip_prefix<'a>(me: &str, body: &'a str) -> Option<&'a str> {
    let body = body.trim();
    let localpart = me
        .strip_prefix('@')
        .and_then(|m| m.split(':').next())
        .unwrap_or("tocsin");
    let candidates = [
        "!tocsin".to_string(),
        "tocsin:".to_string(),
        me.to_lowercase(),
        format!("{}:", localpart.to_lowercase()),
    ];
    for prefix in candidates {
        if body
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(&prefix))
        {
            let rest = &body[prefix.len()..];
            // `!tocsinx` is not the prefix; `!tocsin ack` and `@tocsin:hs: ack` are.
            if prefix.ends_with(':') || rest.starts_with(|c: char| c.is_whitespace() || c == ':') {
                let rest = rest.trim_start_matches(':').trim();
                return (!rest.is_empty()).then_some(rest);
            }
        }
    }
    None
}

/// Whether an unprefixed message is a command: a ticket verb with a `T-n` next, `status` or `help`
/// alone, or `silence` with a matcher.
fn bare_command(body: &str) -> bool {
    let words: Vec<&str> = body.split_whitespace().collect();
    let Some(first) = words.first() else {
        return false;
    };
    let verb = first.to_lowercase();
    match verb.as_str() {
        "status" | "help" => words.len() == 1,
        "silence" => words[1..]
            .iter()
            .any(|w| w.contains('=') || w.contains('~')),
        v if TICKET_VERBS.contains(&v) => words.get(1).is_some_and(|w| is_reference(w)),
        _ => false,
    }
}

/// The ticket a command line names as its second word (`ack T-3`).
fn named_ticket(line: &str) -> Option<i64> {
    let mut words = line.split_whitespace();
    let verb = words.next()?.to_lowercase();
    if !TICKET_VERBS.contains(&verb.as_str()) {
        return None;
    }
    ticket_number(words.next()?)
}

/// `T-3` or `t-3` (a bare number may be part of a note's text).
fn is_reference(word: &str) -> bool {
    word.get(..2).is_some_and(|h| h.eq_ignore_ascii_case("T-")) && ticket_number(word).is_some()
}

/// `T-3`, `t-3` or `3`.
fn ticket_number(word: &str) -> Option<i64> {
    match TicketRef::parse(word.trim_end_matches([',', '.', ':', ';'])) {
        TicketRef::Number(n) => Some(n),
        TicketRef::Id(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "@tocsin:hs";

    #[test]
    fn main_timeline_commands_are_addressed_and_chatter_is_not() {
        for (body, want) in [
            ("ack T-3", Some("ack T-3")),
            ("Resolve t-12", Some("Resolve t-12")),
            ("note T-3 disk replaced", Some("note T-3 disk replaced")),
            ("assign T-3 bob", Some("assign T-3 bob")),
            ("status", Some("status")),
            ("help", Some("help")),
            (
                "silence alertname=Disk 2h maintenance",
                Some("silence alertname=Disk 2h maintenance"),
            ),
            ("!tocsin ack T-3", Some("ack T-3")),
            ("!tocsin status", Some("status")),
            ("tocsin: help", Some("help")),
            ("@tocsin:hs: ack T-3", Some("ack T-3")),
            ("@tocsin:hs ack T-3", Some("ack T-3")),
            ("TOCSIN: status", Some("status")),
            // Chatter.
            ("ack", None),
            ("note to self: buy milk", None),
            ("help me with db1 please", None),
            ("status of db1?", None),
            ("silence please", None),
            ("!tocsinx ack T-3", None),
            ("!tocsin", None),
            ("the ack T-3 was wrong", None),
            ("ack 3", None),
        ] {
            assert_eq!(addressed(ME, body).as_deref(), want, "{body}");
        }
    }

    #[test]
    fn thread_replies_are_notes_unless_they_are_commands() {
        let cmd = |s: &str| Intent::Command(s.to_string());
        for (body, want) in [
            ("disk replaced, watching it", Intent::Note),
            ("ack", cmd("ack T-7")),
            ("Resolve", cmd("resolve T-7")),
            ("status", cmd("status")),
            ("ack T-2", cmd("ack T-2")),
            ("!tocsin ack", cmd("ack T-7")),
            ("!tocsin assign bob", cmd("assign T-7 bob")),
            ("tocsin: note rebooted", cmd("note T-7 rebooted")),
            ("!tocsin unassign", cmd("unassign T-7")),
            ("!tocsin resolve T-9", cmd("resolve T-9")),
            ("!tocsin silence host=db1 1h", cmd("silence host=db1 1h")),
            (
                "!tocsin note 5 disks replaced",
                cmd("note T-7 5 disks replaced"),
            ),
            ("ac\u{212A}", cmd("ack T-7")),
            ("ack, looking", Intent::Note),
            ("  ", Intent::Nothing),
        ] {
            assert_eq!(thread_intent(ME, body, 7), want, "{body}");
        }
    }

    #[test]
    fn the_named_ticket_is_found() {
        assert_eq!(named_ticket("ack T-3"), Some(3));
        assert_eq!(named_ticket("note t-12, disk"), Some(12));
        assert_eq!(named_ticket("status"), None);
        assert_eq!(named_ticket("ack"), None);
    }
}
