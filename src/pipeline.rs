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
use crate::domain::alert::{Alert, Labels, Severity, Status};
use crate::domain::plugin::Routing;
use crate::domain::ticket::Policy;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::plugin::Plugins;
use crate::store::{JournalEntry, Store, StoreError};

/// Source name of tocsin's own system tickets (a plugin switched off, ...). Reserved in the config.
pub const SYSTEM_SOURCE: &str = "tocsin";

/// A system alert about a plugin: firing when it was switched off, resolved when it is back on.
pub fn plugin_alert(
    plugin: &str,
    firing: bool,
    detail: &str,
    now: crate::domain::time::Timestamp,
) -> Alert {
    Alert {
        source: SYSTEM_SOURCE.to_string(),
        fingerprint: format!("plugin-disabled:{plugin}"),
        status: if firing {
            Status::Firing
        } else {
            Status::Resolved
        },
        title: format!("Plugin {plugin} is switched off after repeated failures"),
        severity: Severity::Error,
        labels: Labels::from([
            ("alertname".to_string(), "PluginDisabled".to_string()),
            ("plugin".to_string(), plugin.to_string()),
        ]),
        annotations: Labels::new(),
        description: Some(detail.to_string()),
        url: None,
        starts_at: None,
        ends_at: None,
        received_at: now,
        routing: Routing::default(),
        raw: None,
    }
}

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
    plugins: Arc<Plugins>,
    outbox: Arc<Outbox>,
}

impl Processor {
    pub fn new(
        store: Arc<dyn Store>,
        policy: Policy,
        metrics: Arc<Metrics>,
        journal: Arc<Journal>,
        clock: Arc<dyn Clock>,
        plugins: Arc<Plugins>,
        outbox: Arc<Outbox>,
    ) -> Self {
        Processor {
            store,
            policy,
            metrics,
            journal,
            clock,
            plugins,
            outbox,
        }
    }

    /// Runs each entry's plugin chain off the async runtime, with the registry current now: a reload
    /// during the batch does not touch it. Plugins switched off by this batch get a system ticket.
    async fn run_plugins(
        &self,
        entries: Vec<JournalEntry>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let registry = self.plugins.current();
        if registry.chains.is_empty() {
            return Ok(entries);
        }
        let (entries, results) = tokio::task::spawn_blocking(move || {
            let mut entries = entries;
            let mut results = Vec::new();
            for e in &mut entries {
                let r = registry.run(&mut e.alert, &e.id.to_string());
                e.failures = r.failures.clone();
                e.dropped = r.dropped.clone();
                results.push(r);
            }
            (entries, results)
        })
        .await
        .map_err(|e| StoreError::Other(format!("plugin task failed: {e}")))?;
        let now = self.clock.now();
        let mut system = Vec::new();
        for r in results {
            for (plugin, outcome, elapsed) in &r.calls {
                self.metrics.plugin_call(plugin, outcome, *elapsed);
            }
            if let Some(d) = &r.dropped {
                self.metrics.plugin_drop(&d.plugin, &d.reason);
            }
            for (plugin, last_error) in r.disabled {
                tracing::error!(%plugin, %last_error, "Plugin switched off after repeated failures.");
                system.push(plugin_alert(&plugin, true, &format!("Last failure: {last_error}. Alerts go on without it until the next reload."), now));
            }
        }
        if !system.is_empty() {
            self.store.append_journal(&system).await?;
            self.journal.appended(system.len() as u64);
        }
        Ok(entries)
    }

    /// Applies one batch of pending alerts. Returns how many journal entries it consumed (0 = idle).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let pending = self.store.pending_journal(BATCH).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let n = pending.len();
        let received: Vec<_> = pending.iter().map(|e| e.alert.received_at).collect();
        let pending = self.run_plugins(pending).await?;
        let applied = self.store.apply_journal(pending, &self.policy).await?;
        self.journal.applied(n as u64);
        // The batch may have written deliveries in the same transaction.
        self.outbox.notify();
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
            if !ids.is_empty() {
                self.outbox.notify();
            }
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
