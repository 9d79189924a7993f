//! The outbox on SQLite: deliveries per room in order, their threads, off-hours notices.

use rusqlite::{params, OptionalExtension};

use super::rows::{self, DELIVERY_COLUMNS};
use super::{err, exec, SqliteTx};
use crate::domain::time::Timestamp;
use crate::store::tx::{NewDelivery, OutboxRows, Settled, Sorted};
use crate::store::{Delivery, DeliveryResult, Result, RoomBacklog};

const FROM_OUTBOX: &str =
    "FROM outbox o LEFT JOIN threads th ON th.ticket_id = o.ticket_id AND th.room = o.room";

impl OutboxRows for SqliteTx<'_> {
    fn insert_delivery(&mut self, d: NewDelivery<'_>) -> Result<i64> {
        exec(
            self.c,
            "INSERT INTO outbox (room, ticket_id, kind, content, created_at, next_at, held_until) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
            params![
                d.room,
                d.ticket_id,
                d.kind.as_str(),
                serde_json::to_string(d.content).unwrap_or_default(),
                d.at.as_millis(),
                d.held_until.map(Timestamp::as_millis),
            ],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn find_delivery(&mut self, id: i64) -> Result<Option<Delivery>> {
        self.c
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} {FROM_OUTBOX} WHERE o.id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], rows::delivery).optional())
            .map_err(err)
    }

    fn pending_deliveries(
        &mut self,
        room: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Sorted<Delivery>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} {FROM_OUTBOX} \
                 WHERE o.room = ?1 AND o.state = 'pending' \
                 AND (o.held_until IS NULL OR o.held_until <= ?2) ORDER BY o.id LIMIT ?3"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![room, now.as_millis(), limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, rows::delivery(r)))
            })
            .map_err(err)?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for row in rows {
            match row.map_err(err)? {
                (_, Ok(d)) => good.push(d),
                (id, Err(e)) => bad.push((id, e.to_string())),
            }
        }
        Ok((good, bad))
    }

    fn backlog(&mut self, now: Timestamp) -> Result<Vec<RoomBacklog>> {
        // Rows held until a room's hours start are not there yet: they neither count nor block.
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT o.room, COUNT(*), \
                 (SELECT h.next_at FROM outbox h WHERE h.room = o.room AND h.state = 'pending' \
                  AND (h.held_until IS NULL OR h.held_until <= ?1) ORDER BY h.id LIMIT 1) \
                 FROM outbox o WHERE o.state = 'pending' \
                 AND (o.held_until IS NULL OR o.held_until <= ?1) GROUP BY o.room",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([now.as_millis()], |r| {
                Ok(RoomBacklog {
                    room: r.get(0)?,
                    pending: r.get::<_, i64>(1)? as u64,
                    head_next_at: Timestamp::from_millis(r.get(2)?),
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn dead_deliveries(&mut self, limit: usize) -> Result<Vec<Delivery>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} {FROM_OUTBOX} \
                 WHERE o.state = 'dead' ORDER BY o.id DESC LIMIT ?1"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, rows::delivery(r)))
            })
            .map_err(err)?;
        // Rows that cannot be read are left out of the list (their ids are logged), so one cannot
        // hide all the others from the admin page.
        let mut out = Vec::new();
        for row in rows {
            match row.map_err(err)? {
                (_, Ok(d)) => out.push(d),
                (id, Err(e)) => {
                    tracing::warn!(delivery = id, error = %e, "A dead outbox row cannot be read.")
                }
            }
        }
        Ok(out)
    }

    fn settle_deliveries(&mut self, results: &[DeliveryResult]) -> Result<Vec<Option<Settled>>> {
        // One by one: a statement here is a function call, not a round trip.
        results.iter().map(|r| settle_one(self.c, r)).collect()
    }

    fn kill_delivery(&mut self, id: i64, error: &str) -> Result<()> {
        exec(
            self.c,
            "UPDATE outbox SET state = 'dead', last_error = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, error],
        )
        .map(|_| ())
    }

    fn take_pending_deliveries(&mut self, ids: &[i64]) -> Result<Vec<Option<Option<String>>>> {
        // One by one: a statement here is a function call, not a round trip.
        let mut stmt = self
            .c
            .prepare_cached(
                "DELETE FROM outbox WHERE id = ?1 AND state = 'pending' RETURNING ticket_id",
            )
            .map_err(err)?;
        ids.iter()
            .map(|id| stmt.query_row([id], |r| r.get(0)).optional().map_err(err))
            .collect()
    }

    fn revive_delivery(&mut self, id: i64, now: Timestamp) -> Result<bool> {
        Ok(exec(
            self.c,
            "UPDATE outbox SET state = 'pending', attempts = 0, created_at = ?2, next_at = ?2 \
             WHERE id = ?1 AND state = 'dead'",
            params![id, now.as_millis()],
        )? == 1)
    }

    fn set_thread(&mut self, ticket_id: &str, room: &str, handle: &str) -> Result<()> {
        exec(
            self.c,
            "INSERT OR REPLACE INTO threads (ticket_id, room, handle) VALUES (?1, ?2, ?3)",
            params![ticket_id, room, handle],
        )
        .map(|_| ())
    }

    fn thread_root(&mut self, ticket_id: &str, room: &str) -> Result<Option<String>> {
        self.c
            .prepare_cached("SELECT handle FROM threads WHERE ticket_id = ?1 AND room = ?2")
            .and_then(|mut s| {
                s.query_row(params![ticket_id, room], |r| r.get(0))
                    .optional()
            })
            .map_err(err)
    }

    fn thread_ticket(&mut self, room: &str, handle: &str) -> Result<Option<String>> {
        self.c
            .prepare_cached("SELECT ticket_id FROM threads WHERE room = ?1 AND handle = ?2")
            .and_then(|mut s| s.query_row(params![room, handle], |r| r.get(0)).optional())
            .map_err(err)
    }

    fn notice_posted(&mut self, room: &str, period_start: Timestamp) -> Result<bool> {
        self.c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM off_hours_notices WHERE room = ?1 AND period_start = ?2)",
            )
            .and_then(|mut s| s.query_row(params![room, period_start.as_millis()], |r| r.get(0)))
            .map_err(err)
    }

    fn record_notice(&mut self, room: &str, period_start: Timestamp, at: Timestamp) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO off_hours_notices (room, period_start, posted_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (room) DO UPDATE SET period_start = ?2, posted_at = ?3",
            params![room, period_start.as_millis(), at.as_millis()],
        )
        .map(|_| ())
    }
}

/// Settles one delivery (see `OutboxRows::settle_deliveries`).
fn settle_one(c: &rusqlite::Connection, result: &DeliveryResult) -> Result<Option<Settled>> {
    let id = result.id();
    // `attempts` as it was before this attempt, from the row as the statement left it.
    let (sql, params): (&str, Vec<rusqlite::types::Value>) = match result {
        DeliveryResult::Sent { .. } | DeliveryResult::Skipped { .. } => (
            "DELETE FROM outbox WHERE id = ?1 RETURNING room, ticket_id, kind, attempts",
            vec![id.into()],
        ),
        DeliveryResult::Failed { error, next_at, .. } => (
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3 \
             WHERE id = ?1 RETURNING room, ticket_id, kind, attempts - 1",
            vec![id.into(), next_at.as_millis().into(), error.clone().into()],
        ),
        DeliveryResult::Dead { error, .. } => (
            "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 \
             WHERE id = ?1 RETURNING room, ticket_id, kind, attempts - 1",
            vec![id.into(), error.clone().into()],
        ),
    };
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_row(rusqlite::params_from_iter(params), rows::settled)
                .optional()
        })
        .map_err(err)
}
