//! Emails on SQLite: scheduled rows, their outcomes, threads per member and ticket, replies taken.

use rusqlite::{params, OptionalExtension};

use super::{err, exec, json_err, SqliteTx};
use crate::domain::mail::MailReason;
use crate::domain::time::Timestamp;
use crate::store::tx::{EmailRow, EmailRows};
use crate::store::{EmailResult, EmailThread, Result};

impl EmailRows for SqliteTx<'_> {
    fn email_waiting(&mut self, member: &str, ticket_id: &str) -> Result<bool> {
        self.c
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM emails WHERE member = ?1 AND ticket_id = ?2 AND state = 'pending')",
            )
            .and_then(|mut s| s.query_row(params![member, ticket_id], |r| r.get(0)))
            .map_err(err)
    }

    fn insert_email(
        &mut self,
        member: &str,
        ticket_id: &str,
        reason: &MailReason,
        created_at: Timestamp,
        due: Timestamp,
    ) -> Result<i64> {
        exec(
            self.c,
            "INSERT INTO emails (member, ticket_id, reason, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                member,
                ticket_id,
                serde_json::to_string(reason).map_err(json_err)?,
                created_at.as_millis(),
                due.as_millis(),
            ],
        )?;
        Ok(self.c.last_insert_rowid())
    }

    fn emails_due(&mut self, now: Timestamp, limit: usize) -> Result<Vec<EmailRow>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT id, member, ticket_id, reason, created_at, attempts FROM emails \
                 WHERE state = 'pending' AND next_at <= ?1 ORDER BY member, next_at, id LIMIT ?2",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![now.as_millis(), limit as i64], |r| {
                let reason: String = r.get(3)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    serde_json::from_str::<MailReason>(&reason).unwrap_or(MailReason::Member),
                    Timestamp::from_millis(r.get(4)?),
                    r.get(5)?,
                ))
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn pending_email(&mut self, id: i64) -> Result<Option<(String, String)>> {
        self.c
            .prepare_cached(
                "SELECT member, ticket_id FROM emails WHERE id = ?1 AND state = 'pending'",
            )
            .and_then(|mut s| s.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .map_err(err)
    }

    fn settle_email(&mut self, id: i64, result: &EmailResult, now: Timestamp) -> Result<()> {
        match result {
            EmailResult::Sent { message_id, .. } => exec(
                self.c,
                "UPDATE emails SET state = 'sent', sent_at = ?2, message_id = ?3, \
                 attempts = attempts + 1 WHERE id = ?1",
                params![id, now.as_millis(), message_id],
            ),
            EmailResult::Deferred { until, .. } => exec(
                self.c,
                "UPDATE emails SET next_at = ?2 WHERE id = ?1",
                params![id, until.as_millis()],
            ),
            EmailResult::Cancelled { reason, .. } => exec(
                self.c,
                "UPDATE emails SET state = 'cancelled', last_error = ?2 WHERE id = ?1",
                params![id, reason],
            ),
            EmailResult::Failed { error, next_at, .. } => exec(
                self.c,
                "UPDATE emails SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                params![id, next_at.as_millis(), error],
            ),
            EmailResult::GaveUp { error, .. } => exec(
                self.c,
                "UPDATE emails SET state = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                params![id, error],
            ),
        }
        .map(|_| ())
    }

    fn fail_email(&mut self, id: i64, error: &str) -> Result<()> {
        exec(
            self.c,
            "UPDATE emails SET state = 'failed', last_error = ?2 WHERE id = ?1 AND state = 'pending'",
            params![id, error],
        )
        .map(|_| ())
    }

    fn set_email_thread(&mut self, member: &str, ticket_id: &str, message_id: &str) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO email_threads (member, ticket_id, root, last) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (member, ticket_id) DO UPDATE SET last = ?3",
            params![member, ticket_id, message_id],
        )
        .map(|_| ())
    }

    fn email_thread(&mut self, member: &str, ticket_id: &str) -> Result<Option<EmailThread>> {
        self.c
            .prepare_cached(
                "SELECT root, last FROM email_threads WHERE member = ?1 AND ticket_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![member, ticket_id], |r| {
                    Ok(EmailThread {
                        root: r.get(0)?,
                        last: r.get(1)?,
                    })
                })
                .optional()
            })
            .map_err(err)
    }

    fn last_sent(&mut self, member: &str) -> Result<Option<Timestamp>> {
        self.c
            .prepare_cached("SELECT MAX(sent_at) FROM emails WHERE member = ?1")
            .and_then(|mut s| s.query_row([member], |r| r.get::<_, Option<i64>>(0)))
            .map(|t| t.map(Timestamp::from_millis))
            .map_err(err)
    }

    fn forget_replies(&mut self, now: Timestamp) -> Result<()> {
        exec(
            self.c,
            "DELETE FROM inbound_seen WHERE until <= ?1",
            [now.as_millis()],
        )
        .map(|_| ())
    }

    fn remember_reply(
        &mut self,
        message_id: &str,
        ticket_id: &str,
        member: &str,
        until: Timestamp,
    ) -> Result<bool> {
        Ok(exec(
            self.c,
            "INSERT OR IGNORE INTO inbound_seen (message_id, ticket_id, member, until) \
             VALUES (?1, ?2, ?3, ?4)",
            params![message_id, ticket_id, member, until.as_millis()],
        )? == 1)
    }
}
