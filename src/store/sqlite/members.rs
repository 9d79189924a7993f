//! Members on SQLite: presence reports per source, unsubscribes, browser session generations (one
//! counter per member, bumped at sign-out, so every cookie issued before stops working).

use std::collections::BTreeSet;

use rusqlite::{params, OptionalExtension};

use super::{err, exec, SqliteTx};
use crate::domain::presence::{Presence, PresenceState};
use crate::domain::time::Timestamp;
use crate::store::tx::MemberRows;
use crate::store::Result;

impl MemberRows for SqliteTx<'_> {
    fn presence(&mut self) -> Result<Vec<(String, Presence)>> {
        let mut stmt = self
            .c
            .prepare_cached("SELECT member, source, state, since FROM presence ORDER BY member")
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(2)?;
                Ok((
                    r.get::<_, String>(0)?,
                    Presence {
                        state: PresenceState::from_name(&state).unwrap_or(PresenceState::Offline),
                        since: Timestamp::from_millis(r.get(3)?),
                        source: r.get(1)?,
                    },
                ))
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn set_presence(&mut self, member: &str, presence: &Presence) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO presence (member, source, state, since) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (member, source) DO UPDATE SET state = ?3, since = ?4",
            params![
                member,
                presence.source,
                presence.state.as_str(),
                presence.since.as_millis()
            ],
        )
        .map(|_| ())
    }

    fn unsubscribed(&mut self) -> Result<BTreeSet<String>> {
        let mut stmt = self
            .c
            .prepare_cached("SELECT member FROM unsubscribed")
            .map_err(err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn is_unsubscribed(&mut self, member: &str) -> Result<bool> {
        self.c
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM unsubscribed WHERE member = ?1)")
            .and_then(|mut s| s.query_row([member], |r| r.get(0)))
            .map_err(err)
    }

    fn set_unsubscribed(
        &mut self,
        member: &str,
        unsubscribed: bool,
        now: Timestamp,
    ) -> Result<bool> {
        let n = if unsubscribed {
            exec(
                self.c,
                "INSERT OR IGNORE INTO unsubscribed (member, at) VALUES (?1, ?2)",
                params![member, now.as_millis()],
            )?
        } else {
            exec(
                self.c,
                "DELETE FROM unsubscribed WHERE member = ?1",
                [member],
            )?
        };
        Ok(n > 0)
    }

    fn session_generation(&mut self, member: &str) -> Result<i64> {
        self.c
            .prepare_cached("SELECT generation FROM session_generations WHERE member = ?1")
            .and_then(|mut s| s.query_row([member], |r| r.get(0)).optional())
            .map(|g| g.unwrap_or(0))
            .map_err(err)
    }

    fn bump_session(&mut self, member: &str) -> Result<i64> {
        self.c
            .prepare_cached(
                "INSERT INTO session_generations (member, generation) VALUES (?1, 1) \
                 ON CONFLICT (member) DO UPDATE SET generation = generation + 1 \
                 RETURNING generation",
            )
            .and_then(|mut s| s.query_row([member], |r| r.get(0)))
            .map_err(err)
    }
}
