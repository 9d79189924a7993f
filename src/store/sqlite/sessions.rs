//! SQL for browser session generations: one counter per member, bumped when they sign out, so every
//! session cookie issued before stops working (and stays stopped across restarts).

use rusqlite::{Connection, OptionalExtension, Transaction};

use super::err;
use crate::store::Result;

/// A member's current generation (0 before their first sign-out).
pub(super) fn generation(c: &Connection, member: &str) -> Result<i64> {
    c.prepare_cached("SELECT generation FROM session_generations WHERE member = ?1")
        .and_then(|mut s| s.query_row([member], |r| r.get(0)).optional())
        .map(|g| g.unwrap_or(0))
        .map_err(err)
}

/// Bumps a member's generation and returns the new one.
pub(super) fn bump(t: &Transaction<'_>, member: &str) -> Result<i64> {
    t.prepare_cached(
        "INSERT INTO session_generations (member, generation) VALUES (?1, 1) \
         ON CONFLICT (member) DO UPDATE SET generation = generation + 1 \
         RETURNING generation",
    )
    .and_then(|mut s| s.query_row([member], |r| r.get(0)))
    .map_err(err)
}
