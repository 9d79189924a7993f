//! Members on PostgreSQL: presence reports per source, unsubscribes, browser session generations.

use std::collections::BTreeSet;

use super::{get, PgTx};
use crate::domain::presence::{Presence, PresenceState};
use crate::domain::time::Timestamp;
use crate::store::tx::MemberRows;
use crate::store::Result;

impl MemberRows for PgTx<'_> {
    fn presence(&mut self) -> Result<Vec<(String, Presence)>> {
        self.query(
            "SELECT member, source, state, since FROM presence ORDER BY member, source",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok((
                get(r, 0)?,
                Presence {
                    state: PresenceState::from_name(get(r, 2)?).unwrap_or(PresenceState::Offline),
                    since: Timestamp::from_millis(get(r, 3)?),
                    source: get(r, 1)?,
                },
            ))
        })
        .collect()
    }

    fn set_presence(&mut self, member: &str, p: &Presence) -> Result<()> {
        self.exec(
            "INSERT INTO presence (member, source, state, since) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (member, source) DO UPDATE SET state = $3, since = $4",
            &[&member, &p.source, &p.state.as_str(), &p.since.as_millis()],
        )
        .map(|_| ())
    }

    fn unsubscribed(&mut self) -> Result<BTreeSet<String>> {
        self.query("SELECT member FROM unsubscribed", &[])?
            .iter()
            .map(|r| get(r, 0))
            .collect()
    }

    fn is_unsubscribed(&mut self, member: &str) -> Result<bool> {
        get(
            &self.query_one(
                "SELECT EXISTS (SELECT 1 FROM unsubscribed WHERE member = $1)",
                &[&member],
            )?,
            0,
        )
    }

    fn set_unsubscribed(
        &mut self,
        member: &str,
        unsubscribed: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let n = if unsubscribed {
            self.exec(
                "INSERT INTO unsubscribed (member, at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&member, &now.as_millis()],
            )?
        } else {
            self.exec("DELETE FROM unsubscribed WHERE member = $1", &[&member])?
        };
        Ok(n > 0)
    }

    fn session_generation(&mut self, member: &str) -> Result<i64> {
        Ok(self
            .query_opt(
                "SELECT generation FROM session_generations WHERE member = $1",
                &[&member],
            )?
            .map(|r| get(&r, 0))
            .transpose()?
            .unwrap_or(0))
    }

    fn bump_session(&mut self, member: &str) -> Result<i64> {
        get(
            &self.query_one(
                "INSERT INTO session_generations (member, generation) VALUES ($1, 1) \
                 ON CONFLICT (member) DO UPDATE SET generation = session_generations.generation + 1 \
                 RETURNING generation",
                &[&member],
            )?,
            0,
        )
    }
}
