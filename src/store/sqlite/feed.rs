//! Reading across tickets on SQLite: lists with FTS5 search, the feed, counts.

use rusqlite::Connection;

use super::rows::{self, TICKET_COLUMNS};
use super::{err, in_list, SqliteTx};
use crate::domain::ticket::{Ticket, TicketState};
use crate::store::tx::FeedRows;
use crate::store::{FeedEvent, FeedQuery, Result, Stats, TicketFilter};

pub(super) fn last_id(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT COALESCE(MAX(id), 0) FROM feed")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(err)
}

/// Turns what a person typed into an FTS5 query: each word quoted (so operators and punctuation in it
/// mean nothing) and matched as a prefix; all words must occur. `None` when nothing is left.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"*", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl FeedRows for SqliteTx<'_> {
    fn list_tickets(&mut self, filter: &TicketFilter) -> Result<Vec<Ticket>> {
        self.flush_search()?;
        let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        sql.push_str(&in_list(
            " AND state",
            &mut args,
            filter.states.iter().map(|v| v.as_str()),
        ));
        sql.push_str(&in_list(
            " AND severity",
            &mut args,
            filter.severities.iter().map(|v| v.as_str()),
        ));
        if let Some(source) = &filter.source {
            args.push(source.clone().into());
            sql.push_str(&format!(" AND source = ?{}", args.len()));
        }
        if let Some(room) = &filter.room {
            args.push(room.clone().into());
            sql.push_str(&format!(
                " AND id IN (SELECT ticket_id FROM ticket_rooms WHERE room = ?{})",
                args.len()
            ));
        }
        if let Some(q) = filter.text.as_deref().and_then(fts_query) {
            args.push(q.into());
            let mut sub = format!(
                "SELECT ticket_id FROM search WHERE search MATCH ?{}",
                args.len()
            );
            sub.push_str(&in_list(
                " AND visibility",
                &mut args,
                filter.visible.iter().map(|v| v.as_str()),
            ));
            sql.push_str(&format!(" AND id IN ({sub})"));
        }
        if let Some(before) = filter.before_number {
            args.push(before.into());
            sql.push_str(&format!(" AND number < ?{}", args.len()));
        }
        args.push((filter.limit as i64).into());
        sql.push_str(&format!(" ORDER BY number DESC LIMIT ?{}", args.len()));
        let mut stmt = self.c.prepare_cached(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), rows::ticket)
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn feed(&mut self, q: &FeedQuery) -> Result<Vec<FeedEvent>> {
        let mut sql = String::from(
            "SELECT f.id, f.ticket_id, tk.number, tk.title, \
             tl.seq, tl.at, tl.kind, tl.visibility, tl.actor, tl.text, tl.data \
             FROM feed f JOIN timeline tl ON tl.ticket_id = f.ticket_id AND tl.seq = f.seq \
             JOIN tickets tk ON tk.id = f.ticket_id WHERE f.id > ?1",
        );
        let mut args: Vec<rusqlite::types::Value> = vec![q.after.into()];
        if let Some(id) = &q.ticket_id {
            args.push(id.clone().into());
            sql.push_str(&format!(" AND f.ticket_id = ?{}", args.len()));
        }
        if let Some(room) = &q.room {
            args.push(room.clone().into());
            sql.push_str(&format!(
                " AND f.ticket_id IN (SELECT ticket_id FROM ticket_rooms WHERE room = ?{})",
                args.len()
            ));
        }
        sql.push_str(&in_list(
            " AND tl.visibility",
            &mut args,
            q.visible.iter().map(|v| v.as_str()),
        ));
        args.push((q.limit.max(1) as i64).into());
        sql.push_str(&format!(" ORDER BY f.id LIMIT ?{}", args.len()));
        let mut stmt = self.c.prepare_cached(&sql).map_err(err)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                let number: i64 = r.get(2)?;
                Ok(FeedEvent {
                    id: r.get(0)?,
                    ticket_id: r.get(1)?,
                    ticket: format!("T-{number}"),
                    title: r.get(3)?,
                    entry: rows::entry_at(r, 4)?,
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn stats(&mut self) -> Result<Stats> {
        use crate::store::tx::JournalRows;
        let mut stats = Stats::default();
        let mut stmt = self
            .c
            // Kept by triggers: O(1) in the number of tickets.
            .prepare_cached("SELECT state, n FROM ticket_counts")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .map_err(err)?;
        for row in rows {
            let (state, n) = row.map_err(err)?;
            match TicketState::from_name(&state) {
                Some(TicketState::Open) => stats.open = n,
                Some(TicketState::Acked) => stats.acked = n,
                Some(TicketState::Resolved) => stats.resolved = n,
                None => {}
            }
        }
        drop(stmt);
        (stats.journal_backlog, stats.journal_bytes) = self.journal_size()?;
        Ok(stats)
    }
}
