//! Change events on SQLite: one row per change, and the open tickets of a system (by their `source`
//! label, read from the labels' JSON).

use rusqlite::{params, Row};

use super::{err, exec, json_err, SqliteTx};
use crate::domain::change::{Change, ChangeDraft};
use crate::domain::time::Timestamp;
use crate::store::tx::ChangeRows;
use crate::store::{ChangeFilter, Result};

const COLUMNS: &str =
    "id, source, payload_source, summary, at, received_at, attach_until, details, links";

fn json<T: serde::de::DeserializeOwned>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn change(r: &Row<'_>) -> rusqlite::Result<Change> {
    Ok(Change {
        id: r.get(0)?,
        source: r.get(1)?,
        payload_source: r.get(2)?,
        summary: r.get(3)?,
        at: Timestamp::from_millis(r.get(4)?),
        received_at: Timestamp::from_millis(r.get(5)?),
        attach_until: Timestamp::from_millis(r.get(6)?),
        details: json(r, 7)?,
        links: json(r, 8)?,
    })
}

impl ChangeRows for SqliteTx<'_> {
    fn insert_change(&mut self, c: &ChangeDraft) -> Result<i64> {
        let details = serde_json::to_string(&c.details).map_err(json_err)?;
        let links = serde_json::to_string(&c.links).map_err(json_err)?;
        exec(
            self.c,
            "INSERT INTO changes (source, payload_source, summary, at, received_at, attach_until, \
             details, links) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                c.source,
                c.payload_source,
                c.summary,
                c.at.as_millis(),
                c.received_at.as_millis(),
                c.attach_until.as_millis(),
                details,
                links
            ],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn changes(&mut self, f: &ChangeFilter) -> Result<Vec<Change>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM changes WHERE (?1 IS NULL OR source = ?1) \
                 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![f.source, f.before_id, f.limit as i64], change)
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn changes_attachable(&mut self, at: Timestamp, limit: usize) -> Result<Vec<Change>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM changes WHERE attach_until >= ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![at.as_millis(), limit as i64], change)
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn open_tickets_labelled(
        &mut self,
        source: &str,
        label: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT id FROM tickets WHERE source = ?1 AND is_latest = 1 AND state <> 'resolved' \
                 AND json_extract(labels, '$.source') = ?2 ORDER BY number DESC LIMIT ?3",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![source, label, limit as i64], |r| r.get(0))
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn purge_changes(&mut self, before: Timestamp) -> Result<usize> {
        exec(
            self.c,
            "DELETE FROM changes WHERE received_at < ?1",
            params![before.as_millis()],
        )
    }
}
