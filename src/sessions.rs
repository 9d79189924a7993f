//! Members' browser-session generations, cached in front of the store: a session cookie names the
//! generation it was issued in, and signing out bumps it (see `web::session`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreError};

/// Members' session generations, read from the store and kept. Alone (SQLite), an instance keeps them
/// for good: every bump goes through [`Sessions::end`]. Sharing the database with other instances, it
/// keeps each for [`SHARED_FOR`] only, since a sign-out on another instance bumps it there. Only names
/// that passed the MAC check are looked up, so the map holds at most one entry per member.
#[derive(Debug, Default)]
pub struct Sessions {
    generations: Mutex<HashMap<String, (i64, Instant)>>,
    /// How long a generation read from the store is believed; `None`: for good.
    keep: Option<Duration>,
}

/// How long an instance sharing the database believes a generation: the longest a session signed out
/// on another instance still works on this one.
pub const SHARED_FOR: Duration = Duration::from_secs(1);

impl Sessions {
    /// Generations kept for `keep` (`None`: for good).
    pub fn new(keep: Option<Duration>) -> Sessions {
        Sessions {
            generations: Mutex::default(),
            keep,
        }
    }

    fn cached(&self, member: &str) -> Option<i64> {
        let g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let (generation, read_at) = g.get(member)?;
        self.keep
            .is_none_or(|k| read_at.elapsed() < k)
            .then_some(*generation)
    }

    fn remember(&self, member: &str, generation: i64) {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let e = g
            .entry(member.to_string())
            .or_insert((generation, Instant::now()));
        *e = (e.0.max(generation), Instant::now());
    }

    /// A member's current generation.
    pub async fn generation(&self, store: &dyn Store, member: &str) -> Result<i64, StoreError> {
        if let Some(g) = self.cached(member) {
            return Ok(g);
        }
        let g = store.session_generation(member).await?;
        self.remember(member, g);
        Ok(g)
    }

    /// Ends every session of a member.
    pub async fn end(&self, store: &dyn Store, member: &str) -> Result<(), StoreError> {
        let g = store.end_sessions(member).await?;
        self.remember(member, g);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    /// Two instances on one database: a sign-out through one ends the session on the other once what
    /// the other kept is too old (here at once), and never while it keeps generations for good.
    #[tokio::test]
    async fn a_sign_out_elsewhere_counts_once_the_kept_generation_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let (a, shared, alone) = (
            Sessions::new(Some(Duration::ZERO)),
            Sessions::new(Some(Duration::ZERO)),
            Sessions::new(None),
        );
        let before = shared.generation(&store, "alice").await.unwrap();
        assert_eq!(alone.generation(&store, "alice").await.unwrap(), before);
        a.end(&store, "alice").await.unwrap();
        assert!(shared.generation(&store, "alice").await.unwrap() > before);
        assert_eq!(alone.generation(&store, "alice").await.unwrap(), before);
    }
}
