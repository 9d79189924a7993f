//! Connections for the synchronous orchestration: `postgres` clients, each with its prepared statements,
//! each owned by a thread of its own that runs the jobs given to it, at most [`super::POOL_SIZE`].
//!
//! Written here rather than taken from a pool crate because a connection must carry its statement cache
//! (r2d2's pooled `postgres::Client` cannot) and must be made, used and dropped off the async runtime
//! (its driver owns a small runtime, which may not be dropped on an async one).
//!
//! Why a thread per connection rather than tokio's blocking pool: on the blocking pool any of its
//! threads (ten or more in a storm, shared with the plugins and silences) ran any connection, and each
//! kept in its allocator cache what the connections' statements had freed there (row buffers, decoded
//! batches). A connection used by one thread only reuses the memory its own last statement freed:
//! PostgreSQL's memory per alert held fell by about a third (`benches/versus.rs`; ARCHITECTURE.md,
//! "Memory"). The hop is the same: a job is handed to a waiting thread either way, and the thread
//! drives the connection itself, so a statement is still one socket round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use postgres::Statement;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{describe, Target, POOL_SIZE, WAIT};
use crate::store::{Result, StoreError};

/// One connection and the statements prepared on it.
pub(super) struct Conn {
    pub client: postgres::Client,
    pub stmts: HashMap<String, Statement>,
    /// The pool's [`Shared::breaks`] when it was made.
    made_after: u64,
}

/// Work for a connection's thread, given the connection it keeps (`None` before the first job and
/// after the connection broke).
type Job = Box<dyn FnOnce(&mut Option<Conn>) + Send>;

/// A connection's thread, by the channel it takes jobs from.
type Worker = mpsc::Sender<Job>;

pub(super) struct Pool {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

/// What the pool's threads share with it.
struct Shared {
    target: Arc<Target>,
    /// Threads waiting for a job, the last one back first: its connection is the one most likely
    /// open, and its allocator cache still warm. A thread puts itself back here when its job is done,
    /// before it gives up its permit, so there are never more threads than permits.
    idle: Mutex<Vec<Worker>>,
    /// How many times a connection was found broken. A connection made before the last break is
    /// dropped before it is used again.
    ///
    /// Why: a connection the database dropped (a restart, a failover, a cut network) is found broken
    /// only when next used, and the cause of one break has almost always broken the others too. Taking
    /// the last thread back first, the requests failing while the database is away all go to one
    /// thread, and the others' connections would each fail one request after it came back. A new
    /// connection costs a few milliseconds, once per break.
    breaks: AtomicU64,
}

impl Pool {
    pub(super) fn new(target: Arc<Target>) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                target,
                idle: Mutex::default(),
                breaks: AtomicU64::new(0),
            }),
            permits: Arc::new(Semaphore::new(POOL_SIZE)),
        }
    }

    /// Runs `f` on a connection, on that connection's thread. Waiting for a connection, or making
    /// one, is bounded by [`WAIT`]; then the operation fails as unavailable. A connection that broke
    /// is not kept.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T> + Send + 'static,
    {
        let shown = &self.shared.target.shown;
        let permit = tokio::time::timeout(WAIT, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable(format!("no connection to {shown} within 5 s")))?
            .map_err(|_| StoreError::Unavailable("the pool is closed".into()))?;
        let kept = self
            .shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let worker = match kept {
            Some(w) => w,
            None => start_worker()?,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = job(f, Arc::clone(&self.shared), worker.clone(), permit, tx);
        worker
            .send(job)
            .map_err(|_| StoreError::Other("a database thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Other("a database job failed: its thread stopped".into()))?
    }
}

/// The job `Pool::run` hands a thread: run `f` on the thread's connection (made first when there is
/// none), drop the connection if it broke, put the thread back in line, then answer.
fn job<T, F>(
    f: F,
    shared: Arc<Shared>,
    me: Worker,
    permit: OwnedSemaphorePermit,
    reply: tokio::sync::oneshot::Sender<Result<T>>,
) -> Job
where
    T: Send + 'static,
    F: FnOnce(&mut Conn) -> Result<T> + Send + 'static,
{
    Box::new(move |slot: &mut Option<Conn>| {
        let out = with_conn(slot, &shared).and_then(f);
        if slot.as_ref().is_some_and(|c| c.client.is_closed()) {
            *slot = None;
            shared.breaks.fetch_add(1, Ordering::Relaxed);
        }
        shared
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(me);
        drop(permit);
        let _ = reply.send(out);
    })
}

/// The thread's connection, made when it has none, or the one it had is closed or older than the
/// pool's last break.
fn with_conn<'a>(slot: &'a mut Option<Conn>, shared: &Shared) -> Result<&'a mut Conn> {
    let breaks = shared.breaks.load(Ordering::Relaxed);
    if let Some(c) = slot
        .take()
        .filter(|c| c.made_after == breaks && !c.client.is_closed())
    {
        return Ok(slot.insert(c));
    }
    let target = &shared.target;
    let client = postgres::Config::from(target.config.clone())
        .connect(target.tls.clone())
        .map_err(|e| {
            StoreError::Unavailable(format!("cannot reach {}: {}", target.shown, describe(&e)))
        })?;
    Ok(slot.insert(Conn {
        client,
        stmts: HashMap::new(),
        made_after: breaks,
    }))
}

/// Starts a connection's thread. It runs jobs until every handle to it is gone (the pool dropped), then
/// drops its connection there, off the async runtime. A job that panics ends the thread and its
/// connection; its caller gets an error, and the next caller starts a new thread.
fn start_worker() -> Result<Worker> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("tocsin-postgres".into())
        .spawn(move || {
            let mut conn = None;
            for job in rx {
                job(&mut conn);
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start a database thread: {e}")))?;
    Ok(tx)
}
