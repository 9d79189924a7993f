//! Emails on PostgreSQL: scheduled rows, their outcomes, threads per member and ticket, replies taken.

use super::{get, json_err, PgTx};
use crate::domain::mail::MailReason;
use crate::domain::time::Timestamp;
use crate::store::tx::{EmailRow, EmailRows};
use crate::store::{EmailResult, EmailThread, Result};

impl EmailRows for PgTx<'_> {
    fn email_waiting(&mut self, member: &str, ticket_id: &str) -> Result<bool> {
        get(
            &self.query_one(
                "SELECT EXISTS (SELECT 1 FROM emails WHERE member = $1 AND ticket_id = $2 AND state = 'pending')",
                &[&member, &ticket_id],
            )?,
            0,
        )
    }

    fn insert_email(
        &mut self,
        member: &str,
        ticket_id: &str,
        reason: &MailReason,
        created_at: Timestamp,
        due: Timestamp,
    ) -> Result<i64> {
        get(
            &self.query_one(
                "INSERT INTO emails (member, ticket_id, reason, created_at, next_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[
                    &member,
                    &ticket_id,
                    &serde_json::to_string(reason).map_err(json_err)?,
                    &created_at.as_millis(),
                    &due.as_millis(),
                ],
            )?,
            0,
        )
    }

    fn emails_due(&mut self, now: Timestamp, limit: usize) -> Result<Vec<EmailRow>> {
        self.query(
            "SELECT id, member, ticket_id, reason, created_at, attempts FROM emails \
             WHERE state = 'pending' AND next_at <= $1 ORDER BY member, next_at, id LIMIT $2",
            &[&now.as_millis(), &(limit as i64)],
        )?
        .iter()
        .map(|r| {
            Ok((
                get(r, 0)?,
                get(r, 1)?,
                get(r, 2)?,
                serde_json::from_str::<MailReason>(get(r, 3)?).unwrap_or(MailReason::Member),
                Timestamp::from_millis(get(r, 4)?),
                get::<i64>(r, 5)? as u32,
            ))
        })
        .collect()
    }

    fn pending_email(&mut self, id: i64) -> Result<Option<(String, String)>> {
        self.query_opt(
            "SELECT member, ticket_id FROM emails WHERE id = $1 AND state = 'pending' FOR UPDATE",
            &[&id],
        )?
        .map(|r| Ok((get(&r, 0)?, get(&r, 1)?)))
        .transpose()
    }

    fn settle_email(&mut self, id: i64, result: &EmailResult, now: Timestamp) -> Result<()> {
        match result {
            EmailResult::Sent { message_id, .. } => self.exec(
                "UPDATE emails SET state = 'sent', sent_at = $2, message_id = $3, \
                 attempts = attempts + 1 WHERE id = $1",
                &[&id, &now.as_millis(), message_id],
            ),
            EmailResult::Deferred { until, .. } => self.exec(
                "UPDATE emails SET next_at = $2 WHERE id = $1",
                &[&id, &until.as_millis()],
            ),
            EmailResult::Cancelled { reason, .. } => self.exec(
                "UPDATE emails SET state = 'cancelled', last_error = $2 WHERE id = $1",
                &[&id, reason],
            ),
            EmailResult::Failed { error, next_at, .. } => self.exec(
                "UPDATE emails SET attempts = attempts + 1, next_at = $2, last_error = $3 WHERE id = $1",
                &[&id, &next_at.as_millis(), error],
            ),
            EmailResult::GaveUp { error, .. } => self.exec(
                "UPDATE emails SET state = 'failed', attempts = attempts + 1, last_error = $2 WHERE id = $1",
                &[&id, error],
            ),
        }
        .map(|_| ())
    }

    fn fail_email(&mut self, id: i64, error: &str) -> Result<()> {
        self.exec(
            "UPDATE emails SET state = 'failed', last_error = $2 WHERE id = $1 AND state = 'pending'",
            &[&id, &error],
        )
        .map(|_| ())
    }

    fn set_email_thread(&mut self, member: &str, ticket_id: &str, message_id: &str) -> Result<()> {
        self.exec(
            "INSERT INTO email_threads (member, ticket_id, root, last) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (member, ticket_id) DO UPDATE SET last = $3",
            &[&member, &ticket_id, &message_id],
        )
        .map(|_| ())
    }

    fn email_thread(&mut self, member: &str, ticket_id: &str) -> Result<Option<EmailThread>> {
        self.query_opt(
            "SELECT root, last FROM email_threads WHERE member = $1 AND ticket_id = $2",
            &[&member, &ticket_id],
        )?
        .map(|r| {
            Ok(EmailThread {
                root: get(&r, 0)?,
                last: get(&r, 1)?,
            })
        })
        .transpose()
    }

    fn last_sent(&mut self, member: &str) -> Result<Option<Timestamp>> {
        get::<Option<i64>>(
            &self.query_one(
                "SELECT MAX(sent_at) FROM emails WHERE member = $1",
                &[&member],
            )?,
            0,
        )
        .map(|t| t.map(Timestamp::from_millis))
    }

    fn forget_replies(&mut self, now: Timestamp) -> Result<()> {
        self.exec(
            "DELETE FROM inbound_seen WHERE until <= $1",
            &[&now.as_millis()],
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
        Ok(self.exec(
            "INSERT INTO inbound_seen (message_id, ticket_id, member, until) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&message_id, &ticket_id, &member, &until.as_millis()],
        )? == 1)
    }
}
