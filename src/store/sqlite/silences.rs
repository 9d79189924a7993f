//! Silences on SQLite. There are few (at most `silence::MAX_SILENCES` in force or upcoming): their
//! matchers are evaluated in Rust, not SQL.

use rusqlite::{params, OptionalExtension};

use super::rows::{self, SILENCE_COLUMNS};
use super::{err, exec, json_err, SqliteTx};
use crate::domain::silence::{Silence, SilenceDraft};
use crate::domain::time::Timestamp;
use crate::store::tx::SilenceRows;
use crate::store::Result;

impl SilenceRows for SqliteTx<'_> {
    fn silences_between(&mut self, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE starts_at <= ?2 AND ends_at > ?1 ORDER BY id"
            ))
            .map_err(err)?;
        let rows = stmt
            .query_map(params![from.as_millis(), to.as_millis()], rows::silence)
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn all_silences(&mut self) -> Result<Vec<Silence>> {
        let mut stmt = self
            .c
            .prepare_cached(&format!(
                "SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id DESC"
            ))
            .map_err(err)?;
        let rows = stmt.query_map([], rows::silence).map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn silences_ending_after(&mut self, now: Timestamp) -> Result<usize> {
        self.c
            .query_row(
                "SELECT COUNT(*) FROM silences WHERE ends_at > ?1",
                [now.as_millis()],
                |r| r.get(0),
            )
            .map_err(err)
    }

    fn insert_silence(&mut self, draft: &SilenceDraft, now: Timestamp) -> Result<i64> {
        exec(
            self.c,
            "INSERT INTO silences (matchers, starts_at, ends_at, comment, author, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                serde_json::to_string(&draft.matchers).map_err(json_err)?,
                draft.starts_at.as_millis(),
                draft.ends_at.as_millis(),
                draft.comment,
                draft.author,
                now.as_millis(),
            ],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn find_silence(&mut self, id: i64) -> Result<Option<Silence>> {
        self.c
            .prepare_cached(&format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([id], rows::silence).optional())
            .map_err(err)
    }

    fn end_silence(&mut self, id: i64, now: Timestamp, member: &str) -> Result<()> {
        exec(
            self.c,
            "UPDATE silences SET ends_at = ?2, starts_at = MIN(starts_at, ?2), expired_by = ?3 \
             WHERE id = ?1",
            params![id, now.as_millis(), member],
        )
        .map(|_| ())
    }
}
