//! Silences on PostgreSQL (few; matched in Rust, as on SQLite).

use super::rows::{self, SILENCE_COLUMNS};
use super::{get, json_err, PgTx};
use crate::domain::silence::{Silence, SilenceDraft};
use crate::domain::time::Timestamp;
use crate::store::tx::SilenceRows;
use crate::store::Result;

impl SilenceRows for PgTx<'_> {
    fn silences_between(&mut self, from: Timestamp, to: Timestamp) -> Result<Vec<Silence>> {
        self.query(
            &format!(
                "SELECT {SILENCE_COLUMNS} FROM silences WHERE starts_at <= $2 AND ends_at > $1 ORDER BY id"
            ),
            &[&from.as_millis(), &to.as_millis()],
        )?
        .iter()
        .map(rows::silence)
        .collect()
    }

    fn all_silences(&mut self) -> Result<Vec<Silence>> {
        self.query(
            &format!("SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id DESC"),
            &[],
        )?
        .iter()
        .map(rows::silence)
        .collect()
    }

    fn silences_ending_after(&mut self, now: Timestamp) -> Result<usize> {
        Ok(get::<i64>(
            &self.query_one(
                "SELECT COUNT(*) FROM silences WHERE ends_at > $1",
                &[&now.as_millis()],
            )?,
            0,
        )? as usize)
    }

    fn insert_silence(&mut self, draft: &SilenceDraft, now: Timestamp) -> Result<i64> {
        get(
            &self.query_one(
                "INSERT INTO silences (matchers, starts_at, ends_at, comment, author, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &serde_json::to_string(&draft.matchers).map_err(json_err)?,
                    &draft.starts_at.as_millis(),
                    &draft.ends_at.as_millis(),
                    &draft.comment,
                    &draft.author,
                    &now.as_millis(),
                ],
            )?,
            0,
        )
    }

    fn find_silence(&mut self, id: i64) -> Result<Option<Silence>> {
        self.query_opt(
            &format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1"),
            &[&id],
        )?
        .map(|r| rows::silence(&r))
        .transpose()
    }

    fn end_silence(&mut self, id: i64, now: Timestamp, member: &str) -> Result<()> {
        self.exec(
            "UPDATE silences SET ends_at = $2, starts_at = LEAST(starts_at, $2), expired_by = $3 \
             WHERE id = $1",
            &[&id, &now.as_millis(), &member],
        )
        .map(|_| ())
    }
}
