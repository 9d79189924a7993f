//! Tickets and timelines on SQLite. Every entry also gets its feed row (the position live readers
//! resume from) and its search row, in the same transaction (search rows written just before the
//! commit: see `SqliteTx`).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use rusqlite::{params, OptionalExtension};

use super::rows::{self, TICKET_COLUMNS};
use super::{err, exec, json_err, retention, SqliteTx};
use crate::domain::ticket::{Heartbeat, Ticket};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind};
use crate::store::tx::TicketRows;
use crate::store::{Result, TicketRef};

/// A new ticket's row. It fires no trigger (see `insert_ticket`), so SQLite needs no statement
/// journal for it.
pub(super) static INSERT_TICKET: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tickets ({TICKET_COLUMNS}, is_latest) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, 1)"
    )
});

/// A key's current ticket: read for every alert applied, so its text is built once.
static LATEST_FOR_KEY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TICKET_COLUMNS} FROM tickets WHERE source = ?1 AND fingerprint = ?2 AND is_latest = 1"
    )
});

fn resolution_json(ticket: &Ticket) -> Result<Option<String>> {
    ticket
        .resolution
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json_err)
}

impl TicketRows for SqliteTx<'_> {
    fn latest_for_key(&mut self, source: &str, fingerprint: &str) -> Result<Option<Ticket>> {
        self.c
            .prepare_cached(&LATEST_FOR_KEY)
            .and_then(|mut s| {
                s.query_row(params![source, fingerprint], rows::ticket)
                    .optional()
            })
            .map_err(err)
    }

    fn find_ticket(&mut self, r: &TicketRef) -> Result<Option<Ticket>> {
        let (sql, arg): (String, rusqlite::types::Value) = match r {
            TicketRef::Id(id) => (
                format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"),
                id.clone().into(),
            ),
            TicketRef::Number(n) => (
                format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE number = ?1"),
                (*n).into(),
            ),
        };
        self.c
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row([arg], rows::ticket).optional())
            .map_err(err)
    }

    fn retire_ticket(&mut self, id: &str) -> Result<()> {
        exec(
            self.c,
            "UPDATE tickets SET is_latest = 0 WHERE id = ?1",
            [id],
        )
        .map(|_| ())
    }

    fn next_ticket_number(&mut self) -> Result<i64> {
        self.c
            .prepare_cached(retention::NEXT_NUMBER)
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(err)
    }

    fn insert_ticket(&mut self, ticket: &Ticket) -> Result<()> {
        exec(
            self.c,
            &INSERT_TICKET,
            params![
                ticket.id,
                ticket.number,
                ticket.source,
                ticket.fingerprint,
                ticket.title,
                ticket.severity.as_str(),
                ticket.state.as_str(),
                resolution_json(ticket)?,
                serde_json::to_string(&ticket.labels).map_err(json_err)?,
                serde_json::to_string(&ticket.annotations).map_err(json_err)?,
                ticket.description,
                ticket.url,
                ticket.starts_at.map(Timestamp::as_millis),
                ticket.ends_at.map(Timestamp::as_millis),
                ticket.created_at.as_millis(),
                ticket.updated_at.as_millis(),
                ticket.last_seen.as_millis(),
                ticket.resolved_at.map(Timestamp::as_millis),
                ticket.acked_by,
                ticket.firing_count,
                ticket.resend_count,
                ticket.previous_id,
                ticket.last_seq,
                serde_json::to_string(&ticket.routing).map_err(json_err)?,
                ticket.assignee,
            ],
        )?;
        // Counted here rather than by a trigger (migration 0016).
        exec(
            self.c,
            "INSERT INTO ticket_counts (state, n) VALUES (?1, 1) \
             ON CONFLICT (state) DO UPDATE SET n = n + 1",
            [ticket.state.as_str()],
        )?;
        // The title's search row is known by minus the ticket number (see `retention`).
        self.add_search(-ticket.number, &ticket.title, &ticket.id, "public");
        Ok(())
    }

    fn update_ticket(&mut self, ticket: &Ticket) -> Result<()> {
        exec(
            self.c,
            "UPDATE tickets SET title = ?2, severity = ?3, state = ?4, resolution = ?5, labels = ?6, \
             annotations = ?7, description = ?8, url = ?9, starts_at = ?10, ends_at = ?11, \
             updated_at = ?12, last_seen = ?13, resolved_at = ?14, acked_by = ?15, firing_count = ?16, \
             resend_count = ?17, last_seq = ?18, routing = ?19, assignee = ?20 WHERE id = ?1",
            params![
                ticket.id,
                ticket.title,
                ticket.severity.as_str(),
                ticket.state.as_str(),
                resolution_json(ticket)?,
                serde_json::to_string(&ticket.labels).map_err(json_err)?,
                serde_json::to_string(&ticket.annotations).map_err(json_err)?,
                ticket.description,
                ticket.url,
                ticket.starts_at.map(Timestamp::as_millis),
                ticket.ends_at.map(Timestamp::as_millis),
                ticket.updated_at.as_millis(),
                ticket.last_seen.as_millis(),
                ticket.resolved_at.map(Timestamp::as_millis),
                ticket.acked_by,
                ticket.firing_count,
                ticket.resend_count,
                ticket.last_seq,
                serde_json::to_string(&ticket.routing).map_err(json_err)?,
                ticket.assignee,
            ],
        )
        .map(|_| ())
    }

    fn latest_for_keys(&mut self, keys: &[(String, String)]) -> Result<Vec<Ticket>> {
        // One indexed lookup each: no round trips to save on SQLite.
        let mut out = Vec::with_capacity(keys.len());
        for (source, fingerprint) in keys {
            out.extend(self.latest_for_key(source, fingerprint)?);
        }
        Ok(out)
    }

    fn touch_tickets(&mut self, beats: &[Heartbeat]) -> Result<()> {
        let mut stmt = self
            .c
            .prepare_cached(
                "UPDATE tickets SET updated_at = ?2, last_seen = ?3, ends_at = ?4, resend_count = ?5 \
                 WHERE id = ?1",
            )
            .map_err(err)?;
        for b in beats {
            stmt.execute(params![
                b.id,
                b.updated_at.as_millis(),
                b.last_seen.as_millis(),
                b.ends_at.map(Timestamp::as_millis),
                b.resend_count,
            ])
            .map_err(err)?;
        }
        Ok(())
    }

    fn tickets_expiring(&mut self, now: Timestamp, limit: usize) -> Result<Vec<Ticket>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {TICKET_COLUMNS} FROM tickets WHERE state <> 'resolved' \
                 AND ends_at IS NOT NULL AND ends_at <= ?1 ORDER BY ends_at LIMIT ?2"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![now.as_millis(), limit as i64], rows::ticket)
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn next_seq(&mut self, ticket_id: &str) -> Result<Option<i64>> {
        self.c
            .prepare_cached(
                "UPDATE tickets SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
            )
            .and_then(|mut s| s.query_row([ticket_id], |r| r.get(0)).optional())
            .map_err(err)
    }

    fn next_seqs(&mut self, ticket_ids: &[&str]) -> Result<Vec<Option<i64>>> {
        // One by one: a statement here is a function call, not a round trip.
        ticket_ids.iter().map(|id| self.next_seq(id)).collect()
    }

    fn insert_entry(&mut self, ticket_id: &str, entry: &Entry) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO timeline (ticket_id, seq, at, kind, visibility, actor, text, data) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                ticket_id,
                entry.seq,
                entry.at.as_millis(),
                entry.kind.as_str(),
                entry.visibility.as_str(),
                entry.actor,
                entry.text,
                serde_json::to_string(&entry.data).map_err(json_err)?,
            ],
        )?;
        // One writer: feed ids are taken in commit order.
        exec(
            self.c,
            "INSERT INTO feed (ticket_id, seq) VALUES (?1, ?2)",
            params![ticket_id, entry.seq],
        )?;
        // An entry's search row is known by its feed id (see `retention`).
        if entry.kind.searchable() {
            let feed_id = self.c.last_insert_rowid();
            self.add_search(feed_id, &entry.text, ticket_id, entry.visibility.as_str());
        }
        Ok(())
    }

    fn timeline(&mut self, ticket_id: &str, after: i64, limit: usize) -> Result<Vec<Entry>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT seq, at, kind, visibility, actor, text, data FROM timeline \
                 WHERE ticket_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![ticket_id, after, limit as i64], rows::entry)
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn latest_entry_kind(
        &mut self,
        ticket_id: &str,
        kinds: &[EntryKind],
    ) -> Result<Option<EntryKind>> {
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("?{}", i + 2)).collect();
        let sql = format!(
            "SELECT kind FROM timeline WHERE ticket_id = ?1 AND kind IN ({}) ORDER BY seq DESC LIMIT 1",
            marks.join(", ")
        );
        let mut args: Vec<rusqlite::types::Value> = vec![ticket_id.to_string().into()];
        args.extend(kinds.iter().map(|k| k.as_str().to_string().into()));
        let kind: Option<String> = self
            .c
            .prepare_cached(&sql)
            .and_then(|mut s| {
                s.query_row(rusqlite::params_from_iter(args), |r| r.get(0))
                    .optional()
            })
            .map_err(err)?;
        Ok(kind.as_deref().and_then(EntryKind::from_name))
    }

    fn add_ticket_room(&mut self, room: &str, ticket_id: &str) -> Result<()> {
        exec(
            self.c,
            "INSERT OR IGNORE INTO ticket_rooms (room, ticket_id) VALUES (?1, ?2)",
            params![room, ticket_id],
        )
        .map(|_| ())
    }

    fn fired_rooms(&mut self, ticket_id: &str) -> Result<BTreeSet<String>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT room FROM fired_rooms WHERE ticket_id = ?1 \
                 UNION SELECT room FROM threads WHERE ticket_id = ?1 \
                 UNION SELECT room FROM outbox WHERE ticket_id = ?1 AND kind = 'root' AND state = 'pending'",
            )
            .map_err(err)?;
        let rows = stmt.query_map([ticket_id], |r| r.get(0)).map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn add_fired_room(&mut self, ticket_id: &str, room: &str) -> Result<()> {
        exec(
            self.c,
            "INSERT OR IGNORE INTO fired_rooms (ticket_id, room) VALUES (?1, ?2)",
            params![ticket_id, room],
        )
        .map(|_| ())
    }

    fn purge_resolved(&mut self, cutoff: Timestamp, limit: usize) -> Result<usize> {
        self.flush_search()?;
        retention::purge(self.c, cutoff, limit)
    }
}
