//! The journal on PostgreSQL: accepted alerts in order, the dead journal beside it, dropped alerts.

use super::pool::Conn;
use super::{err, get, json_err, prepared, PgTx};
use crate::domain::alert::Alert;
use crate::domain::time::Timestamp;
use crate::store::tx::JournalRows;
use crate::store::{
    DeadJournal, DroppedAlert, JournalBatch, JournalEntry, Result, StoreError, KEEP_DROPPED,
};

const APPEND: &str = "INSERT INTO journal (received_at, alert) \
     SELECT * FROM unnest($1::bigint[], $2::text[]) RETURNING id";

/// Alerts as the journal stores them: `(received_at, JSON)` columns.
pub(super) type Encoded = (Vec<i64>, Vec<String>);

pub(super) fn encode(alerts: &[Alert]) -> Result<Encoded> {
    let mut at = Vec::with_capacity(alerts.len());
    let mut json = Vec::with_capacity(alerts.len());
    for a in alerts {
        at.push(a.received_at.as_millis());
        json.push(serde_json::to_string(a).map_err(|e| StoreError::Other(e.to_string()))?);
    }
    Ok((at, json))
}

/// Appends alerts in one statement (its own transaction), returning their ids in the alerts' order:
/// one statement takes its ids from the sequence in row order.
pub(super) fn append(conn: &mut Conn, (at, json): &Encoded) -> Result<Vec<i64>> {
    let client = &mut conn.client;
    let stmt = prepared(&mut conn.stmts, || client.prepare(APPEND), APPEND)?;
    let rows = conn.client.query(&stmt, &[at, json]).map_err(err)?;
    let mut ids = rows
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<Vec<i64>>>()?;
    ids.sort_unstable();
    Ok(ids)
}

impl JournalRows for PgTx<'_> {
    fn append_journal(&mut self, alerts: &[Alert]) -> Result<Vec<i64>> {
        let (at, json) = encode(alerts)?;
        let rows = self.query(APPEND, &[&at, &json])?;
        let mut ids = rows
            .iter()
            .map(|r| get(r, 0))
            .collect::<Result<Vec<i64>>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    fn append_journal_raw(&mut self, received_at: Timestamp, alert: &str) -> Result<i64> {
        get(
            &self.query_one(
                "INSERT INTO journal (received_at, alert) VALUES ($1, $2) RETURNING id",
                &[&received_at.as_millis(), &alert],
            )?,
            0,
        )
    }

    fn pending_journal(&mut self, after: i64, limit: usize) -> Result<JournalBatch> {
        let rows = self.query(
            "SELECT id, alert FROM journal WHERE id > $1 ORDER BY id LIMIT $2",
            &[&after, &(limit as i64)],
        )?;
        let mut out = JournalBatch::default();
        for row in rows {
            let id: i64 = get(&row, 0)?;
            let json: &str = get(&row, 1)?;
            // A row that does not decode is reported apart: it must not hold up the others.
            match serde_json::from_str(json) {
                Ok(alert) => out.entries.push(JournalEntry::new(id, alert)),
                Err(e) => out
                    .unreadable
                    .push((id, format!("the stored alert cannot be read: {e}"))),
            }
        }
        Ok(out)
    }

    fn take_journal_many(&mut self, ids: &[i64]) -> Result<std::collections::BTreeSet<i64>> {
        self.query(
            "DELETE FROM journal WHERE id = ANY($1) RETURNING id",
            &[&ids],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn take_journal_row(&mut self, id: i64) -> Result<Option<(Timestamp, String)>> {
        self.query_opt(
            "DELETE FROM journal WHERE id = $1 RETURNING received_at, alert",
            &[&id],
        )?
        .map(|r| Ok((Timestamp::from_millis(get(&r, 0)?), get(&r, 1)?)))
        .transpose()
    }

    fn oldest_pending(&mut self) -> Result<Option<Timestamp>> {
        self.query_opt("SELECT received_at FROM journal ORDER BY id LIMIT 1", &[])?
            .map(|r| get(&r, 0).map(Timestamp::from_millis))
            .transpose()
    }

    fn journal_size(&mut self) -> Result<(u64, u64)> {
        // Exact while the journal is small; past that, estimated from the id range (rows leave it
        // mostly in id order) and the newest rows' sizes. Counting and measuring every row of a large
        // backlog is a scan that detoasts every alert, and every instance asks each second (its
        // ingest limit) and at each scrape: in a storm that would cost more than the storm.
        const EXACT_UP_TO: i64 = 10_000;
        let r = self.query_one("SELECT MIN(id), MAX(id) FROM journal", &[])?;
        let (Some(min), Some(max)) = (get::<Option<i64>>(&r, 0)?, get::<Option<i64>>(&r, 1)?)
        else {
            return Ok((0, 0));
        };
        let span = max - min + 1;
        if span <= EXACT_UP_TO {
            let r = self.query_one(
                "SELECT COUNT(*), COALESCE(SUM(octet_length(alert)), 0)::bigint FROM journal",
                &[],
            )?;
            return Ok((get::<i64>(&r, 0)? as u64, get::<i64>(&r, 1)? as u64));
        }
        let r = self.query_one(
            "SELECT COALESCE(AVG(octet_length(alert)), 0)::bigint FROM \
             (SELECT alert FROM journal ORDER BY id DESC LIMIT 100) newest",
            &[],
        )?;
        let average = get::<i64>(&r, 0)?.max(0) as u64;
        Ok((span as u64, span as u64 * average))
    }

    fn insert_dead(
        &mut self,
        journal_id: i64,
        received_at: Timestamp,
        buried_at: Timestamp,
        reason: &str,
        alert: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO dead_journal (journal_id, received_at, buried_at, reason, alert) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &journal_id,
                &received_at.as_millis(),
                &buried_at.as_millis(),
                &reason,
                &alert,
            ],
        )
        .map(|_| ())
    }

    fn take_dead(&mut self, id: i64) -> Result<Option<(i64, Timestamp, String)>> {
        self.query_opt(
            "DELETE FROM dead_journal WHERE id = $1 RETURNING journal_id, received_at, alert",
            &[&id],
        )?
        .map(|r| {
            Ok((
                get(&r, 0)?,
                Timestamp::from_millis(get(&r, 1)?),
                get(&r, 2)?,
            ))
        })
        .transpose()
    }

    fn dead_journal(&mut self, limit: usize) -> Result<Vec<DeadJournal>> {
        self.query(
            "SELECT id, journal_id, received_at, buried_at, reason, alert FROM dead_journal \
             ORDER BY id DESC LIMIT $1",
            &[&(limit as i64)],
        )?
        .iter()
        .map(|r| {
            Ok(DeadJournal {
                id: get(r, 0)?,
                journal_id: get(r, 1)?,
                received_at: Timestamp::from_millis(get(r, 2)?),
                buried_at: Timestamp::from_millis(get(r, 3)?),
                reason: get(r, 4)?,
                alert: get(r, 5)?,
            })
        })
        .collect()
    }

    fn dead_count(&mut self) -> Result<u64> {
        Ok(get::<i64>(
            &self.query_one("SELECT COUNT(*) FROM dead_journal", &[])?,
            0,
        )? as u64)
    }

    fn insert_dropped(
        &mut self,
        at: Timestamp,
        plugin: &str,
        reason: &str,
        alert: &Alert,
    ) -> Result<()> {
        let json = serde_json::to_string(alert).map_err(json_err)?;
        let id: i64 = get(
            &self.query_one(
                "INSERT INTO dropped (at, plugin, reason, alert) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&at.as_millis(), &plugin, &reason, &json],
            )?,
            0,
        )?;
        // Keep the list bounded: every 100 inserts, forget all but the newest KEEP_DROPPED.
        if id % 100 == 0 {
            self.exec(
                "DELETE FROM dropped WHERE id <= $1",
                &[&(id - KEEP_DROPPED as i64)],
            )?;
        }
        Ok(())
    }

    fn dropped(&mut self, limit: usize) -> Result<Vec<DroppedAlert>> {
        self.query(
            "SELECT id, at, plugin, reason, alert FROM dropped ORDER BY id DESC LIMIT $1",
            &[&(limit as i64)],
        )?
        .iter()
        .map(|r| {
            Ok(DroppedAlert {
                id: get(r, 0)?,
                at: Timestamp::from_millis(get(r, 1)?),
                plugin: get(r, 2)?,
                reason: get(r, 3)?,
                alert: serde_json::from_str(get::<&str>(r, 4)?).map_err(json_err)?,
            })
        })
        .collect()
    }
}
