//! The processor: takes accepted alerts from the journal and applies them to tickets, behind ingest.
//!
//! Ingest only appends to the journal and answers; this worker does the rest at its own pace, so a slow
//! later stage (plugins, delivery) never holds a sender's request. It is driven in steps: the server
//! loops over [`Processor::step`] and [`Processor::sweep`]; tests call them directly instead of sleeping.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster::{Cluster, Mode, JOURNAL, SWEEPS};
use crate::domain::alert::Alert;
use crate::domain::ticket::Policy;
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::plugin::{Kv, PluginClock, Plugins, Registry};
use crate::store::{self, Applied, JournalEntry, Store, StoreError};

pub use crate::domain::system::{plugin_alert, SYSTEM_SOURCE};

/// How many journal entries one step applies in one transaction. Large enough to amortise the commit,
/// small enough that ingest appends never wait long behind it on the single writer.
const BATCH: usize = 256;

/// Shared between ingest and the processor: a wake-up signal and the count of unapplied alerts.
#[derive(Debug, Default)]
pub struct Journal {
    wake: Notify,
    backlog: AtomicU64,
    /// Roughly how many bytes the unapplied alerts take ([`Alert::approx_size`]), so a few huge alerts
    /// are bounded like many small ones (`ingest.max_backlog_bytes`).
    bytes: AtomicU64,
}

impl Journal {
    pub fn new(backlog: u64, bytes: u64) -> Self {
        Journal {
            wake: Notify::new(),
            backlog: AtomicU64::new(backlog),
            bytes: AtomicU64::new(bytes),
        }
    }

    /// Called by ingest with the accepted alerts, after a durable append.
    pub fn accepted(&self, alerts: &[Alert]) {
        let bytes: u64 = alerts.iter().map(Alert::approx_size).sum();
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.appended(alerts.len() as u64);
    }

    pub fn backlog_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Called by ingest after a durable append.
    pub fn appended(&self, n: u64) {
        self.backlog.fetch_add(n, Ordering::Relaxed);
        self.wake.notify_one();
    }

    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Sets the counts to the store's, where other instances append to and apply the same journal
    /// (this instance's own counts would drift: it sees only its own appends, or only its applies).
    pub fn resync(&self, backlog: u64, bytes: u64) {
        self.backlog.store(backlog, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    fn applied(&self, n: u64, bytes: u64) {
        // Saturating: after a restart the counter starts from the store's count, and entries appended
        // concurrently may be applied before they were counted.
        let _ = self
            .backlog
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(bytes))
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
    /// `tickets.retention`; `None` keeps tickets for ever.
    retention: Option<Duration>,
    /// Which plugins' kv stores hold what the store has, and under which journal lease.
    kv_loaded: Arc<Mutex<KvLoaded>>,
    /// The batch read ahead by the last step, if any (see [`Processor::step`]).
    ahead: Arc<Mutex<Option<Prepared>>>,
}

/// A journal batch read, run through the plugins and matched against silences: ready to write.
#[derive(Debug)]
struct Prepared {
    /// The journal lease token it was read under (`None`: no lease).
    token: Option<i64>,
    /// The highest journal id read, where the batch after it starts.
    last_id: i64,
    /// Rows read, readable or not.
    n: usize,
    unreadable: Vec<(i64, String)>,
    /// Entries whose plugin chain panicked in the host, with why.
    panicked: Vec<(i64, String)>,
    pending: Vec<JournalEntry>,
    received: Vec<Timestamp>,
    bytes: u64,
}

/// The plugins' kv stores loaded from the store, and the journal lease token they were loaded under.
///
/// Why per token: another instance may have held the journal, and written its plugins' state, since
/// this one last did; a new token means the lease changed hands, so what is in memory may be stale.
/// Why per kv store (not per plugin name): a reload that adds a plugin, or adds back one it removed,
/// gives it a fresh, empty store, which must be loaded before the plugin runs.
#[derive(Debug, Default)]
struct KvLoaded {
    /// `None`: nothing loaded yet. `Some(None)`: loaded with no lease (alone on SQLite, or tests
    /// driving steps without a cluster), which never changes hands.
    token: Option<Option<i64>>,
    /// Weak: a store a reload dropped is not kept alive for this; its allocation stays while the
    /// weak reference does, so a new store never compares equal to it.
    kvs: BTreeMap<String, Weak<Mutex<Kv>>>,
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
            retention: None,
            kv_loaded: Arc::default(),
            ahead: Arc::default(),
        }
    }

    /// Deletes tickets resolved longer than `keep` ago (see [`Processor::retain`]).
    pub fn with_retention(mut self, keep: Option<Duration>) -> Self {
        self.retention = keep;
        self
    }

    /// Runs each entry's plugin chain off the async runtime, with the registry current now: a reload
    /// during the batch does not touch it. Plugins switched off by this batch get a system ticket.
    /// Returns the entries to apply, and those whose chain panicked in the host (with why), which are
    /// moved aside instead: a host bug met by one alert must not stop the others.
    async fn run_plugins(
        &self,
        registry: &Arc<Registry>,
        entries: Vec<JournalEntry>,
    ) -> Result<(Vec<JournalEntry>, Vec<(i64, String)>), StoreError> {
        let registry = Arc::clone(registry);
        if registry.chains.is_empty() {
            return Ok((entries, Vec::new()));
        }
        let now = self.clock.now();
        let run_registry = Arc::clone(&registry);
        let (entries, results, panicked) = tokio::task::spawn_blocking(move || {
            let registry = run_registry;
            let mut kept = Vec::with_capacity(entries.len());
            let mut results = Vec::new();
            let mut panicked = Vec::new();
            for mut e in entries {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    registry.run_at(&mut e.alert, &e.id.to_string(), now, PluginClock::System)
                }));
                match run {
                    Ok(mut r) => {
                        e.failures = r.failures.clone();
                        e.decisions = std::mem::take(&mut r.decisions);
                        e.dropped = r.dropped.clone();
                        results.push(r);
                        kept.push(e);
                    }
                    Err(_) => panicked.push((e.id, "the plugin host panicked on it".to_string())),
                }
            }
            (kept, results, panicked)
        })
        .await
        .map_err(|e| StoreError::Other(format!("plugin task failed: {e}")))?;
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
                let mut alert = plugin_alert(&plugin, true, &format!("Last failure: {last_error}. Alerts go on without it until the next reload."), now);
                // Routed like any `tocsin` ticket, and to the plugin's `alert_room` if it has one.
                if let Some(room) = registry
                    .plugins
                    .get(&plugin)
                    .and_then(|p| p.alert_room.clone())
                {
                    alert.routing.rooms.push(room);
                }
                system.push(alert);
            }
        }
        if !system.is_empty() {
            self.store.append_journal(&system).await?;
            self.journal.appended(system.len() as u64);
        }
        Ok((entries, panicked))
    }

    /// Finds, for each entry, the silences that may apply to its ticket changes, here rather than on
    /// the store's one writer: user regexes are evaluated off the async runtime and outside the write
    /// transaction, and the writer re-checks only those that matched (usually none). A silence created
    /// while the batch is between this and its commit applies from the next batch on.
    async fn find_silences(
        &self,
        mut entries: Vec<JournalEntry>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let times = entries.iter().map(|e| e.alert.received_at);
        let (Some(earliest), Some(latest)) = (times.clone().min(), times.max()) else {
            return Ok(entries);
        };
        let live = self.store.silences_between(earliest, latest).await?;
        if live.is_empty() {
            for e in &mut entries {
                e.silences = Some(Vec::new());
            }
            return Ok(entries);
        }
        tokio::task::spawn_blocking(move || {
            for e in &mut entries {
                e.silences = Some(
                    live.iter()
                        .filter(|s| s.may_silence(&e.alert))
                        .cloned()
                        .collect(),
                );
            }
            entries
        })
        .await
        .map_err(|e| StoreError::Other(format!("silence task failed: {e}")))
    }

    /// Moves journal row `id` to the dead journal; a system ticket names it.
    async fn bury(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        tracing::error!(journal_id = id, %reason, "A journal row cannot be processed; moved it to the dead journal.");
        if self
            .store
            .bury_journal(id, reason, self.clock.now())
            .await?
        {
            self.metrics.alert_processed("dead");
            // The notice about it is a new journal row.
            self.journal.appended(1);
        }
        Ok(())
    }

    /// Applies entries; when the batch fails for a reason that is not the database's (the data of one
    /// entry), applies them one at a time so only the bad one is moved aside and the rest go on.
    async fn apply(&self, entries: Vec<JournalEntry>) -> Result<Vec<Applied>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // Shared, not copied: the entries are needed again only if the batch fails.
        let entries: Arc<[JournalEntry]> = entries.into();
        let error = match self
            .store
            .apply_journal(Arc::clone(&entries), &self.policy)
            .await
        {
            Ok(applied) => return Ok(applied),
            Err(e @ (StoreError::Unavailable(_) | StoreError::Fenced(_))) => return Err(e),
            Err(e) => e,
        };
        if let [only] = &entries[..] {
            self.bury(only.id, &format!("applying it failed: {error}"))
                .await?;
            return Ok(Vec::new());
        }
        tracing::warn!(%error, "A journal batch failed; applying its entries one at a time.");
        let mut all = Vec::new();
        for entry in entries.iter() {
            let id = entry.id;
            match self
                .store
                .apply_journal(Arc::from([entry.clone()]), &self.policy)
                .await
            {
                Ok(mut applied) => all.append(&mut applied),
                Err(e @ (StoreError::Unavailable(_) | StoreError::Fenced(_))) => return Err(e),
                Err(e) => self.bury(id, &format!("applying it failed: {e}")).await?,
            }
        }
        Ok(all)
    }

    /// Applies one batch of pending alerts. Returns how many journal rows it consumed (0 = idle),
    /// counting rows moved to the dead journal.
    ///
    /// When the batch is full (a backlog), the next one is read, run through the plugins and matched
    /// against silences while this one is applied, and kept for the next step: the store's writer
    /// applying one batch and the plugins preparing the next then work on two cores at once. A batch
    /// read ahead is used only under the same journal lease token, and dropped when this batch fails
    /// (the next step reads again from the oldest row). So a step still applies exactly one batch, in
    /// journal order; a plugin reload or a new silence reaches the batch after the one read ahead.
    pub async fn step(&self) -> Result<usize, StoreError> {
        // One registry for the whole step: the stores loaded are those of the plugins that run, and
        // saved after.
        let registry = self.plugins.current();
        self.load_kv(&registry).await?;
        let token = store::current_fence().map(|f| f.token);
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|p| p.token == token);
        let batch = match ahead {
            Some(batch) => batch,
            None => self.prepare(&registry, 0, token).await?,
        };
        if batch.n == 0 {
            // Changes a failed save kept are tried again even when no alerts come.
            self.save_kv(&registry).await;
            return Ok(0);
        }
        if batch.n < BATCH {
            return self.commit(batch).await;
        }
        let after = batch.last_id;
        let (applied, next) =
            tokio::join!(self.commit(batch), self.prepare(&registry, after, token));
        let n = applied?;
        match next {
            Ok(next) if next.n > 0 => {
                *self.ahead.lock().unwrap_or_else(PoisonError::into_inner) = Some(next);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "Reading ahead failed; the next step reads again.")
            }
        }
        Ok(n)
    }

    /// Reads the oldest batch after journal id `after` and runs it through the plugins and the
    /// silences: everything before the write.
    async fn prepare(
        &self,
        registry: &Arc<Registry>,
        after: i64,
        token: Option<i64>,
    ) -> Result<Prepared, StoreError> {
        let batch = self.store.pending_journal_after(after, BATCH).await?;
        let n = batch.len();
        let last_id = batch
            .entries
            .iter()
            .map(|e| e.id)
            .chain(batch.unreadable.iter().map(|(id, _)| *id))
            .max()
            .unwrap_or(after);
        let received: Vec<_> = batch.entries.iter().map(|e| e.alert.received_at).collect();
        let bytes: u64 = batch.entries.iter().map(|e| e.alert.approx_size()).sum();
        if n == 0 {
            return Ok(Prepared {
                token,
                last_id,
                n,
                unreadable: Vec::new(),
                panicked: Vec::new(),
                pending: Vec::new(),
                received,
                bytes,
            });
        }
        let (pending, panicked) = self.run_plugins(registry, batch.entries).await?;
        // Saved before the batch is applied: if tocsin stops between the two, the alerts run through
        // the plugins again over state that already saw them, as after any failed batch (plugins run
        // at least once). Saved after, their effect on the state could be lost for alerts applied.
        self.save_kv(registry).await;
        let pending = self.find_silences(pending).await?;
        Ok(Prepared {
            token,
            last_id,
            n,
            unreadable: batch.unreadable,
            panicked,
            pending,
            received,
            bytes,
        })
    }

    /// Writes a prepared batch: rows that cannot be applied to the dead journal, the rest to tickets.
    async fn commit(&self, batch: Prepared) -> Result<usize, StoreError> {
        for (id, reason) in batch.unreadable.iter().chain(&batch.panicked) {
            self.bury(*id, reason).await?;
        }
        let applied = self.apply(batch.pending).await?;
        self.journal.applied(batch.n as u64, batch.bytes);
        // The batch may have written deliveries in the same transaction.
        self.outbox.notify();
        let now = self.clock.now();
        for a in &applied {
            self.metrics.alert_processed(a.outcome);
        }
        for at in batch.received {
            self.metrics.processing_latency.observe(now.since(at));
        }
        Ok(batch.n)
    }

    /// Loads the plugins' kv stores from the store where they may not hold what it has: at the first
    /// step, after the journal lease changed hands (its token, inside [`Cluster::under`]), and for a
    /// store a reload added. Fails, and no plugin runs, when the store cannot be read: a plugin run on
    /// an empty store would save over the state it should have seen.
    async fn load_kv(&self, registry: &Registry) -> Result<(), StoreError> {
        let token = store::current_fence().map(|f| f.token);
        let wanted: Vec<(String, Arc<Mutex<Kv>>)> = {
            let mut loaded = self
                .kv_loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if loaded.token != Some(token) {
                loaded.token = Some(token);
                loaded.kvs.clear();
            }
            registry
                .plugins
                .iter()
                .map(|(name, p)| (name.clone(), p.kv()))
                .filter(|(name, kv)| {
                    !loaded
                        .kvs
                        .get(name)
                        .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(kv)))
                })
                .collect()
        };
        for (name, kv) in wanted {
            // The plugins' clock, not the processor's: expiries are on the clock plugins see.
            let now_ms = PluginClock::System.now_ms();
            let entries = self.store.plugin_kv(&name, millis(now_ms)).await?;
            let n = entries.len();
            kv.lock().unwrap_or_else(PoisonError::into_inner).load(
                entries.into_iter().map(|e| {
                    let expiry = e.expires_at.map(|t| t.as_millis().max(0) as u64);
                    (e.key, e.value, expiry)
                }),
                now_ms,
            );
            tracing::debug!(plugin = %name, entries = n, "Loaded the plugin's kv store.");
            self.kv_loaded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .kvs
                .insert(name, Arc::downgrade(&kv));
        }
        Ok(())
    }

    /// Writes what changed in each plugin's kv store since the last save, one transaction per plugin,
    /// fenced when under the journal lease. A write that fails keeps its changes for the next step
    /// instead of failing this one: the alerts still apply, and the state is saved once the store
    /// takes it (or, when the lease was lost, is replaced by the next holder's at the next load).
    async fn save_kv(&self, registry: &Registry) {
        for (name, plugin) in &registry.plugins {
            let kv = plugin.kv();
            let changes = kv
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take_changes();
            if changes.is_empty() {
                continue;
            }
            let rows = changes.iter().map(kv_change).collect();
            let now = millis(PluginClock::System.now_ms());
            if let Err(e) = self.store.write_plugin_kv(name, rows, now).await {
                tracing::warn!(plugin = %name, error = %e, "Saving the plugin's kv store failed; will retry.");
                kv.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .put_back(&changes);
            }
        }
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

    /// Deletes tickets resolved longer than `tickets.retention` ago, in small batches (each its own
    /// short transaction, so ingest's appends never wait long behind it). Returns how many.
    pub async fn retain(&self) -> Result<usize, StoreError> {
        const BATCH: usize = 100;
        let Some(keep) = self.retention else {
            return Ok(0);
        };
        let now = self.clock.now();
        let cutoff = crate::domain::time::Timestamp::from_millis(
            now.as_millis()
                .saturating_sub(keep.as_millis().min(i64::MAX as u128) as i64),
        );
        let mut total = 0;
        loop {
            let n = self.store.purge_tickets(cutoff, BATCH).await?;
            total += n;
            self.metrics.tickets_purged(n as u64);
            if n < BATCH {
                return Ok(total);
            }
            tokio::task::yield_now().await;
        }
    }

    /// The server's loop: process whenever woken, sweep leases every second, and on shutdown finish the
    /// journal (so in-flight work completes) before returning. Each piece runs only while this instance
    /// holds its lease in the cluster (the journal, the sweeps), with its writes fenced.
    pub async fn run(self, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        const SWEEP_EVERY: Duration = Duration::from_secs(1);
        const RETAIN_EVERY: Duration = Duration::from_secs(60);
        // Another instance's ingest appends without waking this one: look again this often.
        const POLL_SHARED: Duration = Duration::from_millis(50);
        let mut next_retain = Instant::now();
        let mut next_sweep = Instant::now();
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Sweep on time even under constant load.
            if Instant::now() >= next_sweep {
                cluster.under(SWEEPS, self.sweep_logged()).await;
                if cluster.mode == Mode::Shared {
                    match self.store.stats().await {
                        Ok(s) => self.journal.resync(s.journal_backlog, s.journal_bytes),
                        Err(e) => tracing::debug!(error = %e, "Cannot count the journal."),
                    }
                }
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
            if Instant::now() >= next_retain && cluster.holds(SWEEPS) {
                match cluster.under(SWEEPS, self.retain()).await {
                    None | Some(Ok(0)) => {}
                    Some(Ok(n)) => {
                        tracing::info!(deleted = n, "Deleted tickets past their retention.")
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Deleting old tickets failed; will retry.")
                    }
                }
                next_retain = Instant::now() + RETAIN_EVERY;
            }
            let idle_wait = match cluster.mode {
                Mode::Solo => next_sweep,
                Mode::Shared => next_sweep.min(Instant::now() + POLL_SHARED),
            };
            match cluster.under(JOURNAL, self.step()).await {
                None => {
                    // Another instance processes the journal; wait to take it over if it goes away.
                    tokio::select! {
                        _ = cluster.changed.notified() => {}
                        _ = tokio::time::sleep_until(next_sweep.min(Instant::now() + cluster.round_every())) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                // A batch that was not full took every row there was: alone, whatever was appended
                // since has woken this loop (the wake-up is kept until it waits), so it waits instead
                // of reading the journal again only to find it empty. That read was one more on a
                // reader, beside the outbox's, for every alert at a low rate.
                Some(Ok(n)) if n == 0 || (n < BATCH && cluster.mode == Mode::Solo) => {
                    failures = 0;
                    tokio::select! {
                        _ = self.journal.wake.notified() => {}
                        _ = tokio::time::sleep_until(idle_wait) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Some(Ok(_)) => failures = 0,
                Some(Err(e)) => {
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
        match cluster.under(JOURNAL, self.drain()).await {
            None => {}
            Some(Ok(n)) if n > 0 => {
                tracing::info!(applied = n, "Finished the journal before stopping.")
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
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

/// A time on the plugins' clock (ms since the epoch, unsigned) as the store's.
fn millis(ms: u64) -> Timestamp {
    Timestamp::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// A kv change as the store takes it.
fn kv_change(change: &crate::plugin::KvChange) -> store::KvChange {
    use crate::plugin::KvChange as Plugin;
    match change {
        Plugin::Set {
            key,
            value,
            expires_at,
        } => store::KvChange::Put(store::KvEntry {
            key: key.clone(),
            value: value.clone(),
            expires_at: expires_at.map(millis),
        }),
        Plugin::Delete { key } => store::KvChange::Delete(key.clone()),
    }
}
