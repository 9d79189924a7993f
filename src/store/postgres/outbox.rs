//! The outbox on PostgreSQL: deliveries per room in order, their threads, off-hours notices.

use std::collections::{BTreeMap, BTreeSet};

use super::rows::{self, DELIVERY_COLUMNS};
use super::{get, PgTx};
use crate::domain::time::Timestamp;
use crate::store::tx::{NewDelivery, OutboxRows, Settled, Sorted};
use crate::store::{Delivery, DeliveryResult, Result, RoomBacklog};

const FROM_OUTBOX: &str =
    "FROM outbox o LEFT JOIN threads th ON th.ticket_id = o.ticket_id AND th.room = o.room";

impl OutboxRows for PgTx<'_> {
    fn insert_delivery(&mut self, d: NewDelivery<'_>) -> Result<i64> {
        get(
            &self.query_one(
                "INSERT INTO outbox (room, ticket_id, kind, content, created_at, next_at, held_until) \
                 VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id",
                &[
                    &d.room,
                    &d.ticket_id,
                    &d.kind.as_str(),
                    &serde_json::to_string(d.content).unwrap_or_default(),
                    &d.at.as_millis(),
                    &d.held_until.map(Timestamp::as_millis),
                ],
            )?,
            0,
        )
    }

    fn queue_delivery(&mut self, d: NewDelivery<'_>) -> Result<()> {
        // Kept and written with the transaction's other new rows in one statement (openings.rs).
        self.defer_delivery(d);
        Ok(())
    }

    fn find_delivery(&mut self, id: i64) -> Result<Option<Delivery>> {
        self.query_opt(
            &format!("SELECT {DELIVERY_COLUMNS} {FROM_OUTBOX} WHERE o.id = $1"),
            &[&id],
        )?
        .map(|r| rows::delivery(&r))
        .transpose()
    }

    fn pending_deliveries(
        &mut self,
        room: &str,
        now: Timestamp,
        limit: usize,
    ) -> Result<Sorted<Delivery>> {
        let rows = self.query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} {FROM_OUTBOX} \
                 WHERE o.room = $1 AND o.state = 'pending' \
                 AND (o.held_until IS NULL OR o.held_until <= $2) ORDER BY o.id LIMIT $3"
            ),
            &[&room, &now.as_millis(), &(limit as i64)],
        )?;
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for r in &rows {
            match rows::delivery(r) {
                Ok(d) => good.push(d),
                Err(e) => bad.push((get(r, 0)?, e.to_string())),
            }
        }
        Ok((good, bad))
    }

    fn backlog(&mut self, now: Timestamp) -> Result<Vec<RoomBacklog>> {
        // Rows held until a room's hours start are not there yet: they neither count nor block.
        self.query(
            "SELECT o.room, COUNT(*), \
             (SELECT h.next_at FROM outbox h WHERE h.room = o.room AND h.state = 'pending' \
              AND (h.held_until IS NULL OR h.held_until <= $1) ORDER BY h.id LIMIT 1) \
             FROM outbox o WHERE o.state = 'pending' \
             AND (o.held_until IS NULL OR o.held_until <= $1) GROUP BY o.room",
            &[&now.as_millis()],
        )?
        .iter()
        .map(|r| {
            Ok(RoomBacklog {
                room: get(r, 0)?,
                pending: get::<i64>(r, 1)? as u64,
                head_next_at: Timestamp::from_millis(get(r, 2)?),
            })
        })
        .collect()
    }

    fn dead_deliveries(&mut self, limit: usize) -> Result<Vec<Delivery>> {
        let rows = self.query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} {FROM_OUTBOX} \
                 WHERE o.state = 'dead' ORDER BY o.id DESC LIMIT $1"
            ),
            &[&(limit as i64)],
        )?;
        // Rows that cannot be read are left out of the list (their ids are logged), so one cannot
        // hide all the others from the admin page.
        let mut out = Vec::new();
        for r in &rows {
            match rows::delivery(r) {
                Ok(d) => out.push(d),
                Err(e) => {
                    let id: i64 = get(r, 0)?;
                    tracing::warn!(delivery = id, error = %e, "A dead outbox row cannot be read.")
                }
            }
        }
        Ok(out)
    }

    fn settle_deliveries(&mut self, results: &[DeliveryResult]) -> Result<Vec<Option<Settled>>> {
        // The usual step: every attempt sent (or skipped), each delivery once. One statement for
        // all, where one each was a round trip per send recorded.
        let ids: Vec<i64> = results.iter().map(DeliveryResult::id).collect();
        let removals = results.iter().all(|r| {
            matches!(
                r,
                DeliveryResult::Sent { .. } | DeliveryResult::Skipped { .. }
            )
        });
        if results.len() > 1 && removals && ids.iter().collect::<BTreeSet<_>>().len() == ids.len() {
            let mut gone = BTreeMap::new();
            for r in self.query(
                "DELETE FROM outbox WHERE id = ANY($1) RETURNING room, ticket_id, kind, attempts, id",
                &[&ids],
            )? {
                gone.insert(get::<i64>(&r, 4)?, rows::settled(&r)?);
            }
            return Ok(ids.iter().map(|id| gone.remove(id)).collect());
        }
        // Otherwise one by one, as the results came.
        results.iter().map(|r| self.settle_one(r)).collect()
    }

    fn kill_delivery(&mut self, id: i64, error: &str) -> Result<()> {
        self.exec(
            "UPDATE outbox SET state = 'dead', last_error = $2 WHERE id = $1 AND state = 'pending'",
            &[&id, &error],
        )
        .map(|_| ())
    }

    fn take_pending_deliveries(&mut self, ids: &[i64]) -> Result<Vec<Option<Option<String>>>> {
        // One statement for a whole storm digest, where one each was a round trip per change.
        let mut gone = BTreeMap::new();
        for r in self.query(
            "DELETE FROM outbox WHERE id = ANY($1) AND state = 'pending' RETURNING id, ticket_id",
            &[&ids],
        )? {
            gone.insert(get::<i64>(&r, 0)?, get::<Option<String>>(&r, 1)?);
        }
        Ok(ids.iter().map(|id| gone.remove(id)).collect())
    }

    fn revive_delivery(&mut self, id: i64, now: Timestamp) -> Result<bool> {
        Ok(self.exec(
            "UPDATE outbox SET state = 'pending', attempts = 0, created_at = $2, next_at = $2 \
             WHERE id = $1 AND state = 'dead'",
            &[&id, &now.as_millis()],
        )? == 1)
    }

    fn set_thread(&mut self, ticket_id: &str, room: &str, handle: &str) -> Result<()> {
        self.exec(
            "INSERT INTO threads (ticket_id, room, handle) VALUES ($1, $2, $3) \
             ON CONFLICT (ticket_id, room) DO UPDATE SET handle = EXCLUDED.handle",
            &[&ticket_id, &room, &handle],
        )
        .map(|_| ())
    }

    fn thread_root(&mut self, ticket_id: &str, room: &str) -> Result<Option<String>> {
        self.query_opt(
            "SELECT handle FROM threads WHERE ticket_id = $1 AND room = $2",
            &[&ticket_id, &room],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn thread_ticket(&mut self, room: &str, handle: &str) -> Result<Option<String>> {
        self.query_opt(
            "SELECT ticket_id FROM threads WHERE room = $1 AND handle = $2 LIMIT 1",
            &[&room, &handle],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }

    fn notice_posted(&mut self, room: &str, period_start: Timestamp) -> Result<bool> {
        get(
            &self.query_one(
                "SELECT EXISTS (SELECT 1 FROM off_hours_notices WHERE room = $1 AND period_start = $2)",
                &[&room, &period_start.as_millis()],
            )?,
            0,
        )
    }

    fn record_notice(&mut self, room: &str, period_start: Timestamp, at: Timestamp) -> Result<()> {
        self.exec(
            "INSERT INTO off_hours_notices (room, period_start, posted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (room) DO UPDATE SET period_start = $2, posted_at = $3",
            &[&room, &period_start.as_millis(), &at.as_millis()],
        )
        .map(|_| ())
    }
}

impl PgTx<'_> {
    /// Settles one delivery (see `OutboxRows::settle_deliveries`).
    fn settle_one(&mut self, result: &DeliveryResult) -> Result<Option<Settled>> {
        let id = result.id();
        // `attempts` as it was before this attempt, from the row as the statement left it.
        let row = match result {
            DeliveryResult::Sent { .. } | DeliveryResult::Skipped { .. } => self.query_opt(
                "DELETE FROM outbox WHERE id = $1 RETURNING room, ticket_id, kind, attempts",
                &[&id],
            ),
            DeliveryResult::Failed { error, next_at, .. } => self.query_opt(
                "UPDATE outbox SET attempts = attempts + 1, next_at = $2, last_error = $3 \
                 WHERE id = $1 RETURNING room, ticket_id, kind, attempts - 1",
                &[&id, &next_at.as_millis(), error],
            ),
            DeliveryResult::Dead { error, .. } => self.query_opt(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = $2 \
                 WHERE id = $1 RETURNING room, ticket_id, kind, attempts - 1",
                &[&id, error],
            ),
        }?;
        row.map(|r| rows::settled(&r)).transpose()
    }
}
