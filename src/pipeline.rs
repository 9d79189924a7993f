//! The processor: takes accepted alerts from the journal and applies them to tickets, behind ingest.
//!
//! Ingest only appends to the journal and answers; this worker does the rest at its own pace, so a slow
//! later stage (plugins, delivery) never holds a sender's request. It is driven in steps: the server
//! loops over [`Processor::step`] and [`Processor::sweep`]; tests call them directly instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::domain::ticket::Policy;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How many journal entries one step applies in one transaction. Large enough to amortise the commit,
/// small enough that ingest appends never wait long behind it on the single writer.
const BATCH: usize = 256;

/// Shared between ingest and the processor: a wake-up signal and the count of unapplied alerts.
#[derive(Debug, Default)]
pub struct Journal {
    wake: Notify,
    backlog: AtomicU64,
}

impl Journal {
    pub fn new(backlog: u64) -> Self {
        Journal {
            wake: Notify::new(),
            backlog: AtomicU64::new(backlog),
        }
    }

    /// Called by ingest after a durable append.
    pub fn appended(&self, n: u64) {
        self.backlog.fetch_add(n, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn applied(&self, n: u64) {
        // Saturating: after a restart the counter starts from the store's count, and entries appended
        // concurrently may be applied before they were counted.
        let _ = self
            .backlog
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }
}

/// Applies journal entries to tickets and expires leases.
#[derive(Debug, Clone)]
pub struct Processor {
    store: Arc<dyn Store>,
    policy: Policy,
    metrics: Arc<Metrics>,
    journal: Arc<Journal>,
    clock: Arc<dyn Clock>,
}

impl Processor {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Policy,
        metrics: Arc<Metrics>,
        journal: Arc<Journal>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Processor {
            store,
            policy,
            metrics,
            journal,
            clock,
        }
    }

    /// Applies one batch of pending alerts. Returns how many journal entries it consumed (0 = idle).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_journal(BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let n = pending.len();
        let received: Vec<_> = pending.iter().map(|e| e.alert.received_at).collect();
        // Plugins will run here, between reading the journal and applying it (their own issue).
        let applied = self.store.apply_journal(pending, &self.policy).await?;
        self.journal.applied(n as u64);
        let now = self.clock.now();
        for a in &applied {
            self.metrics.alert_processed(a.outcome);
        }
        for at in received {
            self.metrics.processing_latency.observe(now.since(at));
        }
        Ok(n)
    }

    /// Steps until the journal is empty. Returns the number of entries consumed.
    pub async fn drain(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            match self.step().await? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    }

    /// Resolves tickets whose lease has run out by the clock's now. Returns how many.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let ids = self.store.expire_leases(self.clock.now(), 500).await?;
            total += ids.len();
            if ids.len() < 500 {
                return Ok(total);
            }
        }
    }

    /// The server's loop: process whenever woken, sweep leases every second, and on shutdown finish the
    /// journal (so in-flight work completes) before returning.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        const SWEEP_EVERY: Duration = Duration::from_secs(1);
        let mut next_sweep = Instant::now();
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Sweep on time even under constant load.
            if Instant::now() >= next_sweep {
                self.sweep_logged().await;
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            match self.step().await {
                Ok(0) => {
                    failures = 0;
                    tokio::select! {
                        _ = self.journal.wake.notified() => {}
                        _ = tokio::time::sleep_until(next_sweep) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "Processing the journal failed; will retry.");
                    // Back off so a broken database does not turn into a busy loop.
                    let pause = Duration::from_millis(100u64 << failures.min(6));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                }
            }
        }
        match self.drain().await {
            Ok(n) if n > 0 => tracing::info!(applied = n, "Finished the journal before stopping."),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Could not finish the journal; it resumes at the next start.")
            }
        }
    }

    async fn sweep_logged(&self) {
        match self.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(resolved = n, "Resolved tickets whose lease ran out."),
            Err(e) => tracing::warn!(error = %e, "Sweeping leases failed; will retry."),
        }
    }
}
