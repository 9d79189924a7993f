//! Change events on PostgreSQL: one row per change, and the open tickets of a system (by their `source`
//! label, read from the labels' JSON), as on SQLite (`sqlite/changes.rs`).

use tokio_postgres::Row;

use super::{get, json_err, PgTx};
use crate::domain::change::{Change, ChangeDraft};
use crate::domain::time::Timestamp;
use crate::store::tx::ChangeRows;
use crate::store::{ChangeFilter, Result, StoreError};

const COLUMNS: &str =
    "id, source, payload_source, summary, at, received_at, attach_until, details, links";

fn change(r: &Row) -> Result<Change> {
    let decode = |i: usize| -> Result<serde_json::Value> {
        serde_json::from_str(get::<&str>(r, i)?)
            .map_err(|e| StoreError::Other(format!("column {i} is not the JSON expected: {e}")))
    };
    Ok(Change {
        id: get(r, 0)?,
        source: get(r, 1)?,
        payload_source: get(r, 2)?,
        summary: get(r, 3)?,
        at: Timestamp::from_millis(get(r, 4)?),
        received_at: Timestamp::from_millis(get(r, 5)?),
        attach_until: Timestamp::from_millis(get(r, 6)?),
        details: decode(7)?,
        links: serde_json::from_value(decode(8)?)
            .map_err(|e| StoreError::Other(format!("column 8 is not the links expected: {e}")))?,
    })
}

impl ChangeRows for PgTx<'_> {
    fn insert_change(&mut self, c: &ChangeDraft) -> Result<i64> {
        self.lock_feed()?;
        let details = serde_json::to_string(&c.details).map_err(json_err)?;
        let links = serde_json::to_string(&c.links).map_err(json_err)?;
        let row = self.query_one(
            "INSERT INTO changes (source, payload_source, summary, at, received_at, attach_until, \
             details, links) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            &[
                &c.source,
                &c.payload_source,
                &c.summary,
                &c.at.as_millis(),
                &c.received_at.as_millis(),
                &c.attach_until.as_millis(),
                &details,
                &links,
            ],
        )?;
        get(&row, 0)
    }

    fn changes(&mut self, f: &ChangeFilter) -> Result<Vec<Change>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM changes WHERE ($1::text IS NULL OR source = $1) \
                 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
            ),
            &[&f.source, &f.before_id, &(f.limit as i64)],
        )?
        .iter()
        .map(change)
        .collect()
    }

    fn changes_attachable(&mut self, at: Timestamp, limit: usize) -> Result<Vec<Change>> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM changes WHERE attach_until >= $1 ORDER BY id DESC LIMIT $2"
            ),
            &[&at.as_millis(), &(limit as i64)],
        )?
        .iter()
        .map(change)
        .collect()
    }

    fn open_tickets_labelled(
        &mut self,
        source: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        self.query(
            "SELECT id FROM tickets WHERE source = $1 AND is_latest AND state <> 'resolved' \
             AND labels::jsonb ->> 'source' = $2 ORDER BY number DESC LIMIT $3",
            &[&source, &label, &(limit as i64)],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn purge_changes(&mut self, before: Timestamp) -> Result<usize> {
        self.exec(
            "DELETE FROM changes WHERE received_at < $1",
            &[&before.as_millis()],
        )
        .map(|n| n as usize)
    }
}
