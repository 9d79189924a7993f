//! Write-behind for new tickets and timeline entries on PostgreSQL: a transaction keeps its openings
//! (a new ticket with its first entry, `TicketRows::insert_opened`), the entries it appends
//! (`insert_entry`), updates of tickets it has not written yet, and routing's rows (a ticket's rooms,
//! the rooms its firing went to, its deliveries: `queue_delivery`), and writes them together, in one
//! statement, just before its next statement or its commit, whichever comes first. The entries' feed
//! rows (with their search rows, which name feed ids) wait longer: they are written in one statement
//! right before the commit, under the feed lock, in the order the entries were appended; when tickets
//! or entries are still kept then, that same statement writes them too.
//!
//! Why: every statement is a round trip, and applying a storm of new alerts made one per alert (the
//! profile showed sessions idle in transaction, waiting for tocsin, and half the CPU idle). Kept
//! openings are flushed before *any* other statement of the transaction, so whatever it reads or
//! writes next sees them exactly as if each had been written at once: a later entry on the same
//! ticket, an outbox row referencing it, a read of the key. A failure in the flush fails the
//! transaction like the insert would have; the processor then applies the batch's alerts one by one,
//! so a bad alert is still told apart from the others.
//!
//! Why the feed rows wait for the commit: the feed lock (see tickets.rs) is held from the first feed
//! row until the commit, and every transaction that adds an entry takes it. Taken at a batch's first
//! entry, a journal batch held it for its whole length, and the outbox, which records each send with
//! an entry, waited for every batch in turn (PostgreSQL fell behind at 1,000 alerts/s). Taken at the
//! end, it is held for one statement (which takes it, writes the feed rows and notifies) and the
//! commit. A statement naming the feed or search tables writes the kept feed rows first, so the
//! transaction still reads its own.

use std::sync::LazyLock;

use tokio_postgres::types::ToSql;

use super::rows::TICKET_COLUMNS;
use super::tickets::NewTicket;
use super::{err, get, json_err, search, PgTx, FEED_CHANNEL, FEED_LOCK};
use crate::domain::ticket::Ticket;
use crate::domain::time::Timestamp;
use crate::domain::timeline::Entry;
use crate::store::tx::NewDelivery;
use crate::store::Result;

/// What a transaction has not written yet: new tickets (as last updated), then entries in the order
/// they were appended, on those tickets or others; routing's rows for them (a ticket's rooms, the
/// rooms its firing went to, its deliveries in the order queued); and the feed rows of entries
/// written, in the same order.
#[derive(Default)]
pub(super) struct Pending {
    tickets: Vec<Ticket>,
    entries: Vec<(String, Entry)>,
    /// `(room, ticket_id)` of `ticket_rooms`.
    rooms: Vec<(String, String)>,
    /// `(ticket_id, room)` of `fired_rooms`.
    fired: Vec<(String, String)>,
    deliveries: Vec<KeptDelivery>,
    feed: Vec<FeedRow>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.tickets.is_empty()
            && self.entries.is_empty()
            && self.rooms.is_empty()
            && self.fired.is_empty()
            && self.deliveries.is_empty()
    }
}

/// An outbox row not written yet (`OutboxRows::queue_delivery`).
struct KeptDelivery {
    room: String,
    ticket_id: Option<String>,
    kind: &'static str,
    content: String,
    at: i64,
    held_until: Option<i64>,
}

/// An entry's feed row and search row, not written yet.
struct FeedRow {
    ticket_id: String,
    seq: i64,
    visibility: &'static str,
    /// None for a kind search does not index (`EntryKind::searchable`): no search row.
    document: Option<String>,
}

/// The kept feed rows (`$n` to `$n+3`), in order, with their search rows, under the feed lock
/// (`$n+4`, taken by the statement itself: `lk` is scanned before any row reaches the insert, so
/// before any id is taken), and the commit's notification on channel `$n+5`; returns the last feed
/// id. One round trip instead of three (lock, insert, notify): the outbox records each send in a
/// transaction of its own. CTEs to follow a `WITH` or other CTEs, with the final `SELECT`.
fn feed_ctes(n: usize) -> String {
    let p = |i: usize| format!("${}", n + i);
    format!(
        "f AS (SELECT * FROM unnest({}::text[], {}::int8[], {}::text[], {}::text[]) \
         WITH ORDINALITY AS f(tid, seq, vis, doc, ord)), \
         lk AS (SELECT pg_advisory_xact_lock({}::int8)), \
         feed_row AS (INSERT INTO feed (ticket_id, seq) SELECT tid, seq FROM f CROSS JOIN lk \
             ORDER BY ord RETURNING id, ticket_id, seq), \
         search_row AS (INSERT INTO search (ticket_id, feed_id, visibility, body) \
             SELECT fr.ticket_id, fr.id, f.vis, f.doc::tsvector FROM feed_row fr \
             JOIN f ON f.tid = fr.ticket_id AND f.seq = fr.seq WHERE f.doc IS NOT NULL), \
         last AS (SELECT max(id) AS id FROM feed_row) \
         SELECT id, pg_notify({}, id::text) FROM last",
        p(0),
        p(1),
        p(2),
        p(3),
        p(4),
        p(5)
    )
}

/// The kept feed rows alone ($1 to $6 of [`feed_ctes`]).
static FEED: LazyLock<String> = LazyLock::new(|| format!("WITH {}", feed_ctes(1)));
/// [`statement`] without the feed rows, and with them, each with and without new tickets; built
/// once, as they are used on every write that adds a ticket, an entry or a delivery.
static KEPT: LazyLock<String> = LazyLock::new(|| statement(false, false));
static KEPT_AND_FEED: LazyLock<String> = LazyLock::new(|| statement(true, false));
static KEPT_TICKETS: LazyLock<String> = LazyLock::new(|| statement(false, true));
static KEPT_TICKETS_AND_FEED: LazyLock<String> = LazyLock::new(|| statement(true, true));

/// The kept tickets ($1 to $26), entries ($27 to $34), ticket rooms ($35, $36), fired rooms ($37,
/// $38) and deliveries ($39 to $44, inserted in the order kept, so their ids keep the room's order),
/// one array per `unnest` argument; with `feed`, all the transaction's feed rows too ($45 to $50 of
/// [`feed_ctes`]), at its commit: one round trip where two were, on every write that adds an entry
/// (each recorded send among them). Without `tickets` it inserts no tickets, not even none: an
/// `INSERT INTO tickets` of no rows still runs the table's statement trigger (migration 0007),
/// 0.1 ms on every recorded send.
fn statement(feed: bool, tickets: bool) -> String {
    let ticket: Vec<String> = (1..=25).map(|i| format!("c{i}")).collect();
    let ticket = ticket.join(", ");
    format!(
        "WITH t AS (SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::int8[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], \
             $18::int8[], $19::text[], $20::int8[], $21::int8[], $22::text[], $23::int8[], \
             $24::text[], $25::text[], $26::text[]) AS t({ticket}, title_doc)), \
         e AS (SELECT * FROM unnest($27::text[], $28::int8[], $29::int8[], $30::text[], $31::text[], \
             $32::text[], $33::text[], $34::text[]) AS e(tid, seq, at, kind, vis, actor, body, data)), \
         {}\
         entry AS (INSERT INTO timeline (ticket_id, seq, at, kind, visibility, actor, text, data) \
             SELECT tid, seq, at, kind, vis, actor, body, data FROM e), \
         room AS (INSERT INTO ticket_rooms (room, ticket_id) \
             SELECT * FROM unnest($35::text[], $36::text[]) ON CONFLICT DO NOTHING), \
         fired AS (INSERT INTO fired_rooms (ticket_id, room) \
             SELECT * FROM unnest($37::text[], $38::text[]) ON CONFLICT DO NOTHING), \
         delivery AS (INSERT INTO outbox (room, ticket_id, kind, content, created_at, next_at, held_until) \
             SELECT room, tid, kind, content, at, at, held FROM unnest($39::text[], $40::text[], \
             $41::text[], $42::text[], $43::int8[], $44::int8[]) WITH ORDINALITY \
             AS d(room, tid, kind, content, at, held, ord) ORDER BY ord){}",
        if tickets {
            format!(
                "ticket AS (INSERT INTO tickets ({TICKET_COLUMNS}, is_latest) SELECT {ticket}, true FROM t), \
                 title AS (INSERT INTO search (ticket_id, feed_id, visibility, body) \
                     SELECT c1, NULL, 'public', title_doc::tsvector FROM t), "
            )
        } else {
            String::new()
        },
        if feed {
            format!(", {}", feed_ctes(45))
        } else {
            " SELECT 1".to_string()
        }
    )
}

/// One column of the kept tickets.
fn col<'a, 'b, T>(tickets: &'a [NewTicket<'b>], f: impl Fn(&'a NewTicket<'b>) -> T) -> Vec<T> {
    tickets.iter().map(f).collect()
}

impl PgTx<'_> {
    /// Keeps a new ticket and its first entry.
    pub(super) fn defer_opening(&mut self, t: &Ticket, e: &Entry) -> Result<()> {
        self.pending.tickets.push(t.clone());
        self.pending.entries.push((t.id.clone(), e.clone()));
        Ok(())
    }

    /// Keeps an entry.
    pub(super) fn defer_entry(&mut self, ticket_id: &str, e: &Entry) -> Result<()> {
        self.pending
            .entries
            .push((ticket_id.to_string(), e.clone()));
        Ok(())
    }

    /// Keeps a ticket's room.
    pub(super) fn defer_ticket_room(&mut self, room: &str, ticket_id: &str) -> Result<()> {
        self.pending
            .rooms
            .push((room.to_string(), ticket_id.to_string()));
        Ok(())
    }

    /// Keeps a room a ticket's firing went to.
    pub(super) fn defer_fired_room(&mut self, ticket_id: &str, room: &str) -> Result<()> {
        self.pending
            .fired
            .push((ticket_id.to_string(), room.to_string()));
        Ok(())
    }

    /// Keeps a delivery.
    pub(super) fn defer_delivery(&mut self, d: NewDelivery<'_>) {
        self.pending.deliveries.push(KeptDelivery {
            room: d.room.to_string(),
            ticket_id: d.ticket_id.map(str::to_string),
            kind: d.kind.as_str(),
            content: serde_json::to_string(d.content).unwrap_or_default(),
            at: d.at.as_millis(),
            held_until: d.held_until.map(Timestamp::as_millis),
        });
    }

    /// An update of a ticket not written yet replaces the kept one (`true`); else it must be
    /// written (`false`).
    pub(super) fn absorb_update(&mut self, t: &Ticket) -> bool {
        match self.pending.tickets.iter_mut().find(|k| k.id == t.id) {
            Some(kept) => {
                kept.clone_from(t);
                true
            }
            None => false,
        }
    }

    /// Writes the kept tickets and entries, if any, in one statement; their feed rows stay kept.
    pub(super) fn flush_pending(&mut self) -> Result<()> {
        self.flush_kept(false).map(drop)
    }

    /// Writes the kept tickets, entries and routing rows, if any, in one statement, and with `feed`
    /// every kept feed row too (theirs last), as [`Self::flush_feed`] would; returns whether there
    /// was anything.
    fn flush_kept(&mut self, feed: bool) -> Result<bool> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        let kept_tickets = std::mem::take(&mut self.pending.tickets);
        let entries = std::mem::take(&mut self.pending.entries);
        let rooms = std::mem::take(&mut self.pending.rooms);
        let fired = std::mem::take(&mut self.pending.fired);
        let deliveries = std::mem::take(&mut self.pending.deliveries);
        let tickets = kept_tickets
            .iter()
            .map(NewTicket::new)
            .collect::<Result<Vec<_>>>()?;
        let data = entries
            .iter()
            .map(|(_, e)| serde_json::to_string(&e.data).map_err(json_err))
            .collect::<Result<Vec<_>>>()?;
        let t = &tickets[..];
        let id = col(t, |n| n.t.id.as_str());
        let number = col(t, |n| n.t.number);
        let source = col(t, |n| n.t.source.as_str());
        let fingerprint = col(t, |n| n.t.fingerprint.as_str());
        let title = col(t, |n| n.t.title.as_str());
        let severity = col(t, |n| n.severity);
        let state = col(t, |n| n.state);
        let resolution = col(t, |n| n.resolution.as_deref());
        let labels = col(t, |n| n.labels.as_str());
        let annotations = col(t, |n| n.annotations.as_str());
        let description = col(t, |n| n.t.description.as_deref());
        let url = col(t, |n| n.t.url.as_deref());
        let starts_at = col(t, |n| n.starts_at);
        let ends_at = col(t, |n| n.ends_at);
        let created_at = col(t, |n| n.created_at);
        let updated_at = col(t, |n| n.updated_at);
        let last_seen = col(t, |n| n.last_seen);
        let resolved_at = col(t, |n| n.resolved_at);
        let acked_by = col(t, |n| n.t.acked_by.as_deref());
        let firing_count = col(t, |n| n.t.firing_count);
        let resend_count = col(t, |n| n.t.resend_count);
        let previous_id = col(t, |n| n.t.previous_id.as_deref());
        let last_seq = col(t, |n| n.t.last_seq);
        let routing = col(t, |n| n.routing.as_str());
        let assignee = col(t, |n| n.t.assignee.as_deref());
        let title_doc = col(t, |n| n.document.as_str());
        let e_tid: Vec<&str> = entries.iter().map(|(id, _)| id.as_str()).collect();
        let e_seq: Vec<i64> = entries.iter().map(|(_, e)| e.seq).collect();
        let e_at: Vec<i64> = entries.iter().map(|(_, e)| e.at.as_millis()).collect();
        let e_kind: Vec<&str> = entries.iter().map(|(_, e)| e.kind.as_str()).collect();
        let e_vis: Vec<&str> = entries.iter().map(|(_, e)| e.visibility.as_str()).collect();
        let e_actor: Vec<&str> = entries.iter().map(|(_, e)| e.actor.as_str()).collect();
        let e_text: Vec<&str> = entries.iter().map(|(_, e)| e.text.as_str()).collect();
        let e_data: Vec<&str> = data.iter().map(String::as_str).collect();
        let r_room: Vec<&str> = rooms.iter().map(|(r, _)| r.as_str()).collect();
        let r_ticket: Vec<&str> = rooms.iter().map(|(_, t)| t.as_str()).collect();
        let f_ticket: Vec<&str> = fired.iter().map(|(t, _)| t.as_str()).collect();
        let f_room: Vec<&str> = fired.iter().map(|(_, r)| r.as_str()).collect();
        let d = &deliveries[..];
        let d_room: Vec<&str> = d.iter().map(|k| k.room.as_str()).collect();
        let d_ticket: Vec<Option<&str>> = d.iter().map(|k| k.ticket_id.as_deref()).collect();
        let d_kind: Vec<&str> = d.iter().map(|k| k.kind).collect();
        let d_content: Vec<&str> = d.iter().map(|k| k.content.as_str()).collect();
        let d_at: Vec<i64> = d.iter().map(|k| k.at).collect();
        let d_held: Vec<Option<i64>> = d.iter().map(|k| k.held_until).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &id,
            &number,
            &source,
            &fingerprint,
            &title,
            &severity,
            &state,
            &resolution,
            &labels,
            &annotations,
            &description,
            &url,
            &starts_at,
            &ends_at,
            &created_at,
            &updated_at,
            &last_seen,
            &resolved_at,
            &acked_by,
            &firing_count,
            &resend_count,
            &previous_id,
            &last_seq,
            &routing,
            &assignee,
            &title_doc,
            &e_tid,
            &e_seq,
            &e_at,
            &e_kind,
            &e_vis,
            &e_actor,
            &e_text,
            &e_data,
            &r_room,
            &r_ticket,
            &f_ticket,
            &f_room,
            &d_room,
            &d_ticket,
            &d_kind,
            &d_content,
            &d_at,
            &d_held,
        ];
        let new_rows = entries.iter().map(|(ticket_id, e)| FeedRow {
            document: e.kind.searchable().then(|| search::document(&e.text)),
            visibility: e.visibility.as_str(),
            seq: e.seq,
            ticket_id: ticket_id.clone(),
        });
        // Straight to the connection: `execute` would flush first, and this is the flush.
        if !feed {
            self.pending.feed.extend(new_rows);
            let s = self.stmt(if tickets.is_empty() {
                &KEPT
            } else {
                &KEPT_TICKETS
            })?;
            self.t.execute(&s, &params).map_err(err)?;
            return Ok(true);
        }
        let mut rows = std::mem::take(&mut self.pending.feed);
        rows.extend(new_rows);
        let (f_tid, f_seq, f_vis, f_doc) = feed_columns(&rows);
        params.extend([
            &f_tid as &(dyn ToSql + Sync),
            &f_seq,
            &f_vis,
            &f_doc,
            &FEED_LOCK,
            &FEED_CHANNEL,
        ]);
        let s = self.stmt(if tickets.is_empty() {
            &KEPT_AND_FEED
        } else {
            &KEPT_TICKETS_AND_FEED
        })?;
        let row = self.t.query_one(&s, &params).map_err(err)?;
        self.took_feed(&row)?;
        Ok(true)
    }

    /// The feed lock is held now, and the last feed id the statement returned is the transaction's.
    fn took_feed(&mut self, row: &tokio_postgres::Row) -> Result<()> {
        self.feed_locked = true;
        let last: Option<i64> = get(row, 0)?;
        if let Some(last) = last {
            self.last_feed = Some(self.last_feed.map_or(last, |l| l.max(last)));
        }
        Ok(())
    }

    /// Writes everything kept, the feed rows last, under the feed lock (taken by the statement if
    /// not yet), and notifies the feed's listeners (on commit).
    pub(super) fn flush_feed(&mut self) -> Result<()> {
        if self.flush_kept(true)? || self.pending.feed.is_empty() {
            return Ok(());
        }
        let feed = std::mem::take(&mut self.pending.feed);
        let (tid, seq, vis, doc) = feed_columns(&feed);
        let s = self.stmt(&FEED)?;
        let row = self
            .t
            .query_one(&s, &[&tid, &seq, &vis, &doc, &FEED_LOCK, &FEED_CHANNEL])
            .map_err(err)?;
        self.took_feed(&row)
    }
}

/// Feed rows as the `unnest` arrays of [`feed_ctes`]: ticket ids, seqs, visibilities, and search
/// documents (`None`: no search row).
type FeedColumns<'a> = (Vec<&'a str>, Vec<i64>, Vec<&'a str>, Vec<Option<&'a str>>);

/// Feed rows as the `unnest` arrays of [`feed_ctes`].
fn feed_columns(rows: &[FeedRow]) -> FeedColumns<'_> {
    (
        rows.iter().map(|f| f.ticket_id.as_str()).collect(),
        rows.iter().map(|f| f.seq).collect(),
        rows.iter().map(|f| f.visibility).collect(),
        rows.iter().map(|f| f.document.as_deref()).collect(),
    )
}
