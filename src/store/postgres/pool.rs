//! Connections for the synchronous orchestration: `postgres` clients (each drives its own connection on
//! the thread that waits for it, so a statement is one socket round trip with no hop to another
//! thread), each with its prepared statements, at most [`super::POOL_SIZE`] at a time.
//!
//! Written here rather than taken from a pool crate because a connection must carry its statement cache
//! (r2d2's pooled `postgres::Client` cannot) and must be made, used and dropped on blocking threads
//! (its driver owns a small runtime, which may not be dropped on an async one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use postgres::Statement;
use tokio::sync::Semaphore;

use super::{describe, Target, POOL_SIZE, WAIT};
use crate::store::{Result, StoreError};

/// One connection and the statements prepared on it.
pub(super) struct Conn {
    pub client: postgres::Client,
    pub stmts: HashMap<String, Statement>,
}

pub(super) struct Pool {
    target: Arc<Target>,
    idle: Arc<Mutex<Vec<Conn>>>,
    permits: Arc<Semaphore>,
}

impl Pool {
    pub(super) fn new(target: Arc<Target>) -> Pool {
        Pool {
            target,
            idle: Arc::default(),
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
        }
    }

    /// Runs `f` on a connection, on a blocking thread. Waiting for a connection, or making one, is
    /// bounded by [`WAIT`]; then the operation fails as unavailable. A connection that broke is not
    /// kept.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    {
        let shown = &self.target.shown;
        let permit = tokio::time::timeout(WAIT, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable(format!("no connection to {shown} within 5 s")))?
            .map_err(|_| StoreError::Unavailable("the pool is closed".into()))?;
        let (idle, target) = (Arc::clone(&self.idle), Arc::clone(&self.target));
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let kept = idle.lock().ok().and_then(|mut i| i.pop());
            let mut conn = match kept {
                Some(c) if !c.client.is_closed() => c,
                _ => Conn {
                    client: postgres::Config::from(target.config.clone())
                        .connect(target.tls.clone())
                        .map_err(|e| {
                            StoreError::Unavailable(format!(
                                "cannot reach {}: {}",
                                target.shown,
                                describe(&e)
                            ))
                        })?,
                    stmts: HashMap::new(),
                },
            };
            let out = f(&mut conn);
            if !conn.client.is_closed() {
                if let Ok(mut i) = idle.lock() {
                    i.push(conn);
                }
            }
            out
        })
        .await
        .map_err(|e| StoreError::Other(format!("a database job failed: {e}")))?
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // A client owns a runtime, which must not be dropped on an async thread.
        let conns = self
            .idle
            .lock()
            .map(|mut i| std::mem::take(&mut *i))
            .unwrap_or_default();
        if !conns.is_empty() {
            std::thread::spawn(move || drop(conns));
        }
    }
}
