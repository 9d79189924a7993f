//! Members' browser-session generations, cached in front of the store: a session cookie names the
//! generation it was issued in, and signing out bumps it (see `web::session`).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::{Store, StoreError};

/// Members' session generations, read from the store once and kept (tocsin is one process, and every
/// bump goes through [`Sessions::end`]). Only names that passed the MAC check are looked up, so the
/// map holds at most one entry per member.
#[derive(Debug, Default)]
pub struct Sessions {
    generations: Mutex<HashMap<String, i64>>,
}

impl Sessions {
    fn cached(&self, member: &str) -> Option<i64> {
        self.generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(member)
            .copied()
    }

    fn remember(&self, member: &str, generation: i64) {
        let mut g = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let e = g.entry(member.to_string()).or_insert(generation);
        *e = (*e).max(generation);
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
