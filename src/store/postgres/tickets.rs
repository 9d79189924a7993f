//! Tickets and timelines on PostgreSQL. Inside a write, tickets are read `FOR UPDATE`, so an action and
//! an alert on the same ticket never both read the same `last_seq`.
//!
//! Feed ids in commit order: a sequence hands out ids in the order transactions ask, not the order they
//! commit, so a reader resuming after id 8 could skip an id 7 that committed later. Each transaction
//! that writes entries therefore takes a transaction-level advisory lock (held until it commits or
//! rolls back) before its first feed row; ids are then taken in lock order, and the transaction that
//! took id 7 has committed (and is visible) before any other can take id 8.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use tokio_postgres::types::{ToSql, Type};

use super::rows::{self, TICKET_COLUMNS};
use super::{get, json_err, search, PgTx, FEED_LOCK};
use crate::domain::ticket::{Heartbeat, Ticket};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind};
use crate::store::tx::TicketRows;
use crate::store::{Result, TicketRef};

/// `latest_for_keys`: the current ticket of each (source, fingerprint) pair given as two arrays.
static LATEST_FOR_KEYS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TICKET_COLUMNS} FROM tickets \
         JOIN unnest($1::text[], $2::text[]) AS k(key_source, key_fingerprint) \
         ON source = key_source AND fingerprint = key_fingerprint \
         WHERE is_latest ORDER BY id FOR UPDATE OF tickets"
    )
});

/// The statements that insert a new ticket and its title's search row, as `WITH` parts, bound to
/// [`NewTicket::params`] (`$1` to `$26`).
fn new_ticket() -> String {
    format!(
        "ticket AS (INSERT INTO tickets ({TICKET_COLUMNS}, is_latest) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
         $19, $20, $21, $22, $23, $24, $25, true)), \
         title AS (INSERT INTO search (ticket_id, feed_id, visibility, body) \
         VALUES ($1, NULL, 'public', $26::text::tsvector))"
    )
}

/// A new ticket's values as the database takes them: its columns, then its title's search document.
pub(super) struct NewTicket<'a> {
    pub(super) t: &'a Ticket,
    pub(super) severity: &'static str,
    pub(super) state: &'static str,
    pub(super) resolution: Option<String>,
    pub(super) labels: String,
    pub(super) annotations: String,
    pub(super) starts_at: Option<i64>,
    pub(super) ends_at: Option<i64>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) last_seen: i64,
    pub(super) resolved_at: Option<i64>,
    pub(super) routing: String,
    pub(super) document: String,
}

impl<'a> NewTicket<'a> {
    pub(super) fn new(t: &'a Ticket) -> Result<Self> {
        Ok(NewTicket {
            t,
            severity: t.severity.as_str(),
            state: t.state.as_str(),
            resolution: resolution_json(t)?,
            labels: serde_json::to_string(&t.labels).map_err(json_err)?,
            annotations: serde_json::to_string(&t.annotations).map_err(json_err)?,
            starts_at: ms(t.starts_at),
            ends_at: ms(t.ends_at),
            created_at: t.created_at.as_millis(),
            updated_at: t.updated_at.as_millis(),
            last_seen: t.last_seen.as_millis(),
            resolved_at: ms(t.resolved_at),
            routing: serde_json::to_string(&t.routing).map_err(json_err)?,
            document: search::document(&t.title),
        })
    }

    /// `$1` to `$26` of [`new_ticket`].
    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let t = self.t;
        vec![
            &t.id,
            &t.number,
            &t.source,
            &t.fingerprint,
            &t.title,
            &self.severity,
            &self.state,
            &self.resolution,
            &self.labels,
            &self.annotations,
            &t.description,
            &t.url,
            &self.starts_at,
            &self.ends_at,
            &self.created_at,
            &self.updated_at,
            &self.last_seen,
            &self.resolved_at,
            &t.acked_by,
            &t.firing_count,
            &t.resend_count,
            &t.previous_id,
            &t.last_seq,
            &self.routing,
            &t.assignee,
            &self.document,
        ]
    }
}

impl PgTx<'_> {
    /// Takes the feed lock, once per transaction, before its first entry (see `FEED_LOCK`).
    pub(super) fn lock_feed(&mut self) -> Result<()> {
        if !self.feed_locked {
            self.exec("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])?;
            self.feed_locked = true;
        }
        Ok(())
    }
}

fn ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_millis)
}

fn resolution_json(ticket: &Ticket) -> Result<Option<String>> {
    ticket
        .resolution
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)
}

impl TicketRows for PgTx<'_> {
    fn latest_for_key(&mut self, source: &str, fingerprint: &str) -> Result<Option<Ticket>> {
        self.query_opt(
            &format!(
                "SELECT {TICKET_COLUMNS} FROM tickets WHERE source = $1 AND fingerprint = $2 \
                 AND is_latest FOR UPDATE"
            ),
            &[&source, &fingerprint],
        )?
        .map(|r| rows::ticket(&r))
        .transpose()
    }

    fn find_ticket(&mut self, r: &TicketRef) -> Result<Option<Ticket>> {
        // FOR UPDATE is refused in a read-only transaction; reads do not need it.
        let lock = if self.read_only { "" } else { " FOR UPDATE" };
        let row = match r {
            TicketRef::Id(id) => self.query_opt(
                &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = $1{lock}"),
                &[id],
            )?,
            TicketRef::Number(n) => self.query_opt(
                &format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = $1{lock}"),
                &[n],
            )?,
        };
        row.map(|r| rows::ticket(&r)).transpose()
    }

    fn retire_ticket(&mut self, id: &str) -> Result<()> {
        self.exec("UPDATE tickets SET is_latest = false WHERE id = $1", &[&id])
            .map(|_| ())
    }

    fn next_ticket_number(&mut self) -> Result<i64> {
        match self.numbers.pop_front() {
            Some(n) => Ok(n),
            None => get(&self.query_one("SELECT nextval('ticket_numbers')", &[])?, 0),
        }
    }

    fn reserve_ticket_numbers(&mut self, count: &dyn Fn() -> usize) -> Result<()> {
        let want = i64::try_from(count().saturating_sub(self.numbers.len())).unwrap_or(0);
        if want == 0 {
            return Ok(());
        }
        let rows = self.query(
            "SELECT nextval('ticket_numbers') FROM generate_series(1, $1::bigint)",
            &[&want],
        )?;
        let mut taken = rows
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<Vec<i64>>>()?;
        taken.sort_unstable();
        self.numbers.extend(taken);
        Ok(())
    }

    fn insert_ticket(&mut self, t: &Ticket) -> Result<()> {
        let values = NewTicket::new(t)?;
        self.exec(&format!("WITH {} SELECT 1", new_ticket()), &values.params())
            .map(|_| ())
    }

    fn insert_opened(&mut self, t: &Ticket, e: &Entry) -> Result<()> {
        // Kept and written with the transaction's other openings in one statement (openings.rs).
        self.defer_opening(t, e)
    }

    fn update_ticket(&mut self, t: &Ticket) -> Result<()> {
        // A ticket this transaction opened and has not written yet is written as it is now.
        if self.absorb_update(t) {
            return Ok(());
        }
        self.exec(
            "UPDATE tickets SET title = $2, severity = $3, state = $4, resolution = $5, labels = $6, \
             annotations = $7, description = $8, url = $9, starts_at = $10, ends_at = $11, \
             updated_at = $12, last_seen = $13, resolved_at = $14, acked_by = $15, firing_count = $16, \
             resend_count = $17, last_seq = $18, routing = $19, assignee = $20 WHERE id = $1",
            &[
                &t.id,
                &t.title,
                &t.severity.as_str(),
                &t.state.as_str(),
                &resolution_json(t)?,
                &serde_json::to_string(&t.labels).map_err(json_err)?,
                &serde_json::to_string(&t.annotations).map_err(json_err)?,
                &t.description,
                &t.url,
                &ms(t.starts_at),
                &ms(t.ends_at),
                &t.updated_at.as_millis(),
                &t.last_seen.as_millis(),
                &ms(t.resolved_at),
                &t.acked_by,
                &t.firing_count,
                &t.resend_count,
                &t.last_seq,
                &serde_json::to_string(&t.routing).map_err(json_err)?,
                &t.assignee,
            ],
        )
        .map(|_| ())
    }

    fn latest_for_keys(&mut self, keys: &[(String, String)]) -> Result<Vec<Ticket>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for a whole batch's keys instead of one per alert; locked in id order.
        // Planned for each batch (see `query_planned`): a plan kept from when `tickets` was small
        // scanned the whole table for every batch once it had grown.
        let (sources, fingerprints): (Vec<&str>, Vec<&str>) =
            keys.iter().map(|(s, f)| (s.as_str(), f.as_str())).unzip();
        self.query_planned(
            &LATEST_FOR_KEYS,
            &[
                (&sources, Type::TEXT_ARRAY),
                (&fingerprints, Type::TEXT_ARRAY),
            ],
        )?
        .iter()
        .map(rows::ticket)
        .collect()
    }

    fn touch_tickets(&mut self, beats: &[Heartbeat]) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = beats.iter().map(|b| b.id.as_str()).collect();
        let updated: Vec<i64> = beats.iter().map(|b| b.updated_at.as_millis()).collect();
        let seen: Vec<i64> = beats.iter().map(|b| b.last_seen.as_millis()).collect();
        let ends: Vec<Option<i64>> = beats.iter().map(|b| ms(b.ends_at)).collect();
        let resends: Vec<i64> = beats.iter().map(|b| b.resend_count).collect();
        self.exec(
            "UPDATE tickets SET updated_at = b.updated_at, last_seen = b.last_seen, \
             ends_at = b.ends_at, resend_count = b.resend_count \
             FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[]) \
             AS b(id, updated_at, last_seen, ends_at, resend_count) WHERE tickets.id = b.id",
            &[&ids, &updated, &seen, &ends, &resends],
        )
        .map(|_| ())
    }

    fn tickets_expiring(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Ticket>> {
        self.query(
            &format!(
                "SELECT {TICKET_COLUMNS} FROM tickets WHERE state <> 'resolved' \
                 AND ends_at IS NOT NULL AND ends_at <= $1 ORDER BY ends_at LIMIT $2 FOR UPDATE"
            ),
            &[&now.as_millis(), &(limit as i64)],
        )?
        .iter()
        .map(rows::ticket)
        .collect()
    }

    fn next_seq(&mut self, ticket_id: &str) -> Result<Option<i64>> {
        self.query_opt(
            "UPDATE tickets SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
            &[&ticket_id],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn next_seqs(&mut self, ticket_ids: &[&str]) -> Result<Vec<Option<i64>>> {
        if ticket_ids.len() <= 1 {
            return ticket_ids.iter().map(|id| self.next_seq(id)).collect();
        }
        // Each ticket counted once, moved on by how often it is named; the seqs are handed out
        // from the old value up, in the order named.
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for r in self.query(
            "WITH w AS (SELECT t, count(*) AS n FROM unnest($1::text[]) AS u(t) GROUP BY t) \
             UPDATE tickets SET last_seq = tickets.last_seq + w.n FROM w WHERE tickets.id = w.t \
             RETURNING tickets.id, tickets.last_seq - w.n",
            &[&ticket_ids],
        )? {
            last.insert(get(&r, 0)?, get(&r, 1)?);
        }
        Ok(ticket_ids
            .iter()
            .map(|id| {
                last.get_mut(*id).map(|seq| {
                    *seq += 1;
                    *seq
                })
            })
            .collect())
    }

    fn insert_entry(&mut self, ticket_id: &str, entry: &Entry) -> Result<()> {
        // Kept and written with the transaction's other new rows in one statement (openings.rs).
        self.defer_entry(ticket_id, entry)
    }

    fn timeline(&mut self, ticket_id: &str, after: i64, limit: usize) -> Result<Vec<Entry>> {
        self.query(
            "SELECT seq, at, kind, visibility, actor, text, data FROM timeline \
             WHERE ticket_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&ticket_id, &after, &(limit as i64)],
        )?
        .iter()
        .map(|r| rows::entry_at(r, 0))
        .collect()
    }

    fn latest_entry_kind(
        &mut self,
        ticket_id: &str,
        kinds: &[EntryKind],
    ) -> Result<Option<EntryKind>> {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let kind: Option<String> = self
            .query_opt(
                "SELECT kind FROM timeline WHERE ticket_id = $1 AND kind = ANY($2) \
                 ORDER BY seq DESC LIMIT 1",
                &[&ticket_id, &kinds],
            )?
            .map(|r| get(&r, 0))
            .transpose()?;
        Ok(kind.as_deref().and_then(EntryKind::from_name))
    }

    fn add_ticket_room(&mut self, room: &str, ticket_id: &str) -> Result<()> {
        // Kept and written with the transaction's other new rows in one statement (openings.rs).
        self.defer_ticket_room(room, ticket_id)
    }

    fn fired_rooms(&mut self, ticket_id: &str) -> Result<BTreeSet<String>> {
        self.query(
            "SELECT room FROM fired_rooms WHERE ticket_id = $1 \
             UNION SELECT room FROM threads WHERE ticket_id = $1 \
             UNION SELECT room FROM outbox WHERE ticket_id = $1 AND kind = 'root' AND state = 'pending'",
            &[&ticket_id],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn add_fired_room(&mut self, ticket_id: &str, room: &str) -> Result<()> {
        // Kept and written with the transaction's other new rows in one statement (openings.rs).
        self.defer_fired_room(ticket_id, room)
    }

    fn purge_resolved(&mut self, cutoff: Timestamp, limit: usize) -> Result<usize> {
        let doomed: Vec<String> = self
            .query(
                "SELECT id FROM tickets WHERE state = 'resolved' AND resolved_at < $1 \
                 ORDER BY resolved_at LIMIT $2 FOR UPDATE",
                &[&cutoff.as_millis(), &(limit as i64)],
            )?
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<_>>()?;
        if doomed.is_empty() {
            return Ok(0);
        }
        for sql in [
            "DELETE FROM search WHERE ticket_id = ANY($1)",
            "DELETE FROM feed WHERE ticket_id = ANY($1)",
            "DELETE FROM timeline WHERE ticket_id = ANY($1)",
            "DELETE FROM ticket_rooms WHERE ticket_id = ANY($1)",
            "DELETE FROM fired_rooms WHERE ticket_id = ANY($1)",
            "DELETE FROM threads WHERE ticket_id = ANY($1)",
            "DELETE FROM outbox WHERE ticket_id = ANY($1)",
            "DELETE FROM emails WHERE ticket_id = ANY($1)",
            "DELETE FROM email_threads WHERE ticket_id = ANY($1)",
            "DELETE FROM tickets WHERE id = ANY($1)",
        ] {
            self.exec(sql, &[&doomed])?;
        }
        Ok(doomed.len())
    }
}
