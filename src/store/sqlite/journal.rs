//! The journal on SQLite: accepted alerts in order, the dead journal beside it, dropped alerts.

use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension};

use super::{err, exec, json_err, SqliteTx};
use crate::domain::alert::Alert;
use crate::domain::time::Timestamp;
use crate::store::tx::JournalRows;
use crate::store::{
    DeadJournal, DroppedAlert, JournalBatch, JournalEntry, Result, StoreError, KEEP_DROPPED,
};

/// Alerts as journal rows: receipt time and JSON.
pub(super) type Encoded = Vec<(Timestamp, String)>;

/// Encodes alerts for [`append`]. Done by the caller, before the job reaches the writer thread: the
/// one writer is what every commit waits for, so work that needs no database stays off it.
pub(super) fn encode(alerts: &[Alert]) -> Result<Encoded> {
    alerts
        .iter()
        .map(|a| {
            serde_json::to_string(a)
                .map(|json| (a.received_at, json))
                .map_err(|e| StoreError::Other(e.to_string()))
        })
        .collect()
}

/// Appends encoded alerts in order, returning their ids.
pub(super) fn append(c: &Connection, rows: &[(Timestamp, String)]) -> Result<Vec<i64>> {
    let mut stmt = c
        .prepare_cached("INSERT INTO journal (received_at, alert) VALUES (?1, ?2)")
        .map_err(err)?;
    let mut ids = Vec::with_capacity(rows.len());
    for (received_at, json) in rows {
        stmt.execute(params![received_at.as_millis(), json])
            .map_err(err)?;
        ids.push(c.last_insert_rowid());
    }
    Ok(ids)
}

/// The journal's lowest and highest ids. Two subqueries, because SQLite reads `MIN(id)` or `MAX(id)`
/// off the index only when it is a query's one aggregate: `SELECT MIN(id), MAX(id)` read every row,
/// at every scrape and readiness check (perf: a twentieth of the process's time in a storm).
pub(super) const ID_RANGE: &str =
    "SELECT (SELECT MIN(id) FROM journal), (SELECT MAX(id) FROM journal)";

impl JournalRows for SqliteTx<'_> {
    fn append_journal(&mut self, alerts: &[Alert]) -> Result<Vec<i64>> {
        append(self.c, &encode(alerts)?)
    }

    fn append_journal_raw(&mut self, received_at: Timestamp, alert: &str) -> Result<i64> {
        exec(
            self.c,
            "INSERT INTO journal (received_at, alert) VALUES (?1, ?2)",
            params![received_at.as_millis(), alert],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn pending_journal(&mut self, after: i64, limit: usize) -> Result<JournalBatch> {
        let mut stmt = self
            .c
            .prepare_cached("SELECT id, alert FROM journal WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(err)?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(err)?;
        let mut out = JournalBatch::default();
        for row in rows {
            let (id, json) = row.map_err(err)?;
            // A row that does not decode is reported apart: it must not hold up the others.
            match serde_json::from_str(&json) {
                Ok(alert) => out.entries.push(JournalEntry::new(id, alert)),
                Err(e) => out
                    .unreadable
                    .push((id, format!("the stored alert cannot be read: {e}"))),
            }
        }
        Ok(out)
    }

    fn take_journal_many(&mut self, ids: &[i64]) -> Result<BTreeSet<i64>> {
        let mut stmt = self
            .c
            .prepare_cached("DELETE FROM journal WHERE id = ?1")
            .map_err(err)?;
        let mut taken = BTreeSet::new();
        for &id in ids {
            if stmt.execute([id]).map_err(err)? == 1 {
                taken.insert(id);
            }
        }
        Ok(taken)
    }

    fn take_journal_row(&mut self, id: i64) -> Result<Option<(Timestamp, String)>> {
        self.c
            .prepare_cached("DELETE FROM journal WHERE id = ?1 RETURNING received_at, alert")
            .and_then(|mut s| {
                s.query_row([id], |r| Ok((Timestamp::from_millis(r.get(0)?), r.get(1)?)))
                    .optional()
            })
            .map_err(err)
    }

    fn oldest_pending(&mut self) -> Result<Option<Timestamp>> {
        self.c
            .query_row(
                "SELECT received_at FROM journal ORDER BY id LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map(|t| t.map(Timestamp::from_millis))
            .map_err(err)
    }

    fn journal_size(&mut self) -> Result<(u64, u64)> {
        // As on PostgreSQL: exact while the journal is small; past that, estimated from the id range
        // (rows leave it in id order) and the newest rows' sizes. Measuring every row of a large
        // backlog reads every alert, at each scrape and readiness check: in a storm, that scan took
        // a reader core from the processor (perf: `lengthFunc` and page copies).
        const EXACT_UP_TO: i64 = 10_000;
        let (min, max): (Option<i64>, Option<i64>) = self
            .c
            .query_row(ID_RANGE, [], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(err)?;
        let (Some(min), Some(max)) = (min, max) else {
            return Ok((0, 0));
        };
        let span = max - min + 1;
        if span <= EXACT_UP_TO {
            return self
                .c
                .query_row(
                    "SELECT COUNT(*), COALESCE(SUM(length(alert)), 0) FROM journal",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(err);
        }
        let average: f64 = self
            .c
            .query_row(
                "SELECT COALESCE(AVG(length(alert)), 0) FROM \
                 (SELECT alert FROM journal ORDER BY id DESC LIMIT 100)",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        Ok((span as u64, span as u64 * average.max(0.0) as u64))
    }

    fn insert_dead(
        &mut self,
        journal_id: i64,
        received_at: Timestamp,
        buried_at: Timestamp,
        reason: &str,
        alert: &str,
    ) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO dead_journal (journal_id, received_at, buried_at, reason, alert) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                journal_id,
                received_at.as_millis(),
                buried_at.as_millis(),
                reason,
                alert
            ],
        )
        .map(|_| ())
    }

    fn take_dead(&mut self, id: i64) -> Result<Option<(i64, Timestamp, String)>> {
        self.c
            .prepare_cached(
                "DELETE FROM dead_journal WHERE id = ?1 RETURNING journal_id, received_at, alert",
            )
            .and_then(|mut s| {
                s.query_row([id], |r| {
                    Ok((r.get(0)?, Timestamp::from_millis(r.get(1)?), r.get(2)?))
                })
                .optional()
            })
            .map_err(err)
    }

    fn dead_journal(&mut self, limit: usize) -> Result<Vec<DeadJournal>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT id, journal_id, received_at, buried_at, reason, alert FROM dead_journal \
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(DeadJournal {
                    id: r.get(0)?,
                    journal_id: r.get(1)?,
                    received_at: Timestamp::from_millis(r.get(2)?),
                    buried_at: Timestamp::from_millis(r.get(3)?),
                    reason: r.get(4)?,
                    alert: r.get(5)?,
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn dead_count(&mut self) -> Result<u64> {
        self.c
            .query_row("SELECT COUNT(*) FROM dead_journal", [], |r| r.get(0))
            .map_err(err)
    }

    fn insert_dropped(
        &mut self,
        at: Timestamp,
        plugin: &str,
        reason: &str,
        alert: &Alert,
    ) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO dropped (at, plugin, reason, alert) VALUES (?1, ?2, ?3, ?4)",
            params![
                at.as_millis(),
                plugin,
                reason,
                serde_json::to_string(alert).map_err(json_err)?,
            ],
        )?;
        // Keep the list bounded: every 100 inserts, forget all but the newest KEEP_DROPPED.
        let id = self.c.last_insert_rowid();
        if id % 100 == 0 {
            exec(
                self.c,
                "DELETE FROM dropped WHERE id <= ?1",
                [id - KEEP_DROPPED as i64],
            )?;
        }
        Ok(())
    }

    fn dropped(&mut self, limit: usize) -> Result<Vec<DroppedAlert>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT id, at, plugin, reason, alert FROM dropped ORDER BY id DESC LIMIT ?1",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, at, plugin, reason, alert) = row.map_err(err)?;
            out.push(DroppedAlert {
                id,
                at: Timestamp::from_millis(at),
                plugin,
                reason,
                alert: serde_json::from_str(&alert).map_err(json_err)?,
            });
        }
        Ok(out)
    }
}
