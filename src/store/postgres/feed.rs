//! Reading across tickets on PostgreSQL: lists with full-text search (see `search.rs`), the feed,
//! counts. Filters are arrays (`= ANY`), so each query is one prepared statement whatever is filtered.

use super::rows::{self, TICKET_COLUMNS};
use super::{get, search, PgTx};
use crate::domain::ticket::{Ticket, TicketState};
use crate::store::tx::{FeedRows, JournalRows};
use crate::store::{FeedEvent, FeedQuery, Result, Stats, TicketFilter};

impl FeedRows for PgTx<'_> {
    fn list_tickets(&mut self, f: &TicketFilter) -> Result<Vec<Ticket>> {
        let states: Vec<&str> = f.states.iter().map(|s| s.as_str()).collect();
        let severities: Vec<&str> = f.severities.iter().map(|s| s.as_str()).collect();
        let visible: Vec<&str> = f.visible.iter().map(|v| v.as_str()).collect();
        let text = f.text.as_deref().and_then(search::query);
        self.query(
            &format!(
                "SELECT {TICKET_COLUMNS} FROM tickets WHERE \
                 (cardinality($1::text[]) = 0 OR state = ANY($1)) \
                 AND (cardinality($2::text[]) = 0 OR severity = ANY($2)) \
                 AND ($3::text IS NULL OR source = $3) \
                 AND ($4::text IS NULL OR id IN (SELECT ticket_id FROM ticket_rooms WHERE room = $4)) \
                 AND ($5::text IS NULL OR id IN (SELECT ticket_id FROM search \
                      WHERE body @@ $5::text::tsquery \
                      AND (cardinality($6::text[]) = 0 OR visibility = ANY($6)))) \
                 AND ($7::bigint IS NULL OR number < $7) \
                 ORDER BY number DESC LIMIT $8"
            ),
            &[
                &states,
                &severities,
                &f.source,
                &f.room,
                &text,
                &visible,
                &f.before_number,
                &(f.limit as i64),
            ],
        )?
        .iter()
        .map(rows::ticket)
        .collect()
    }

    fn feed(&mut self, q: &FeedQuery) -> Result<Vec<FeedEvent>> {
        let visible: Vec<&str> = q.visible.iter().map(|v| v.as_str()).collect();
        self.query(
            "SELECT f.id, f.ticket_id, tk.number, tk.title, \
             tl.seq, tl.at, tl.kind, tl.visibility, tl.actor, tl.text, tl.data \
             FROM feed f JOIN timeline tl ON tl.ticket_id = f.ticket_id AND tl.seq = f.seq \
             JOIN tickets tk ON tk.id = f.ticket_id WHERE f.id > $1 \
             AND ($2::text IS NULL OR f.ticket_id = $2) \
             AND ($3::text IS NULL OR f.ticket_id IN (SELECT ticket_id FROM ticket_rooms WHERE room = $3)) \
             AND (cardinality($4::text[]) = 0 OR tl.visibility = ANY($4)) \
             ORDER BY f.id LIMIT $5",
            &[
                &q.after,
                &q.ticket_id,
                &q.room,
                &visible,
                &(q.limit.max(1) as i64),
            ],
        )?
        .iter()
        .map(|r| {
            let number: i64 = get(r, 2)?;
            Ok(FeedEvent {
                id: get(r, 0)?,
                ticket_id: get(r, 1)?,
                ticket: format!("T-{number}"),
                title: get(r, 3)?,
                entry: rows::entry_at(r, 4)?,
            })
        })
        .collect()
    }

    fn stats(&mut self) -> Result<Stats> {
        let mut stats = Stats::default();
        // Kept by a trigger: O(1) in the number of tickets.
        for r in self.query("SELECT state, n FROM ticket_counts", &[])? {
            let n = get::<i64>(&r, 1)?.max(0) as u64;
            match TicketState::from_name(get(&r, 0)?) {
                Some(TicketState::Open) => stats.open = n,
                Some(TicketState::Acked) => stats.acked = n,
                Some(TicketState::Resolved) => stats.resolved = n,
                None => {}
            }
        }
        (stats.journal_backlog, stats.journal_bytes) = self.journal_size()?;
        Ok(stats)
    }
}
