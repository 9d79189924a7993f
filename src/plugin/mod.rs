//! Hosting WebAssembly plugins: the only module that names wasmtime.
//!
//! - [`Engine`]: one per process. Component model, fuel, epoch interruption (a 1 ms ticker thread,
//!   ticking only while plugin code runs), the
//!   pooling allocator when it can reserve its slots (on-demand otherwise), and an on-disk cache of
//!   compiled plugins keyed by content hash.
//! - [`Plugin`]: one compiled component with its `InstancePre`, limits and a warm instance. Calls reuse
//!   the warm instance (a call costs a few µs, a fresh instance tens); any trap throws it away, and it is
//!   recycled every [`RECYCLE_AFTER`] calls anyway.
//! - [`Registry`]: the plugins and per-source chains of one config version. [`Plugins`] holds the current
//!   registry and swaps it atomically on reload; a batch in flight keeps the registry it started with.
//!
//! Failures never lose an alert: [`Registry::run`] reports them and the alert goes on (fail open).

mod bindings;
mod chain;
pub mod fixtures;
mod host;
mod kv;
pub mod profile;
mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Store, Trap};

use crate::config::{Config, PluginConfig};
use crate::domain::alert::{Alert, Severity, Status};
use crate::domain::breaker::{Breaker, BreakerPolicy};
use crate::domain::plugin::{FailureKind, RouteFields, TicketFields, Verdict};

use bindings::tocsin::plugin::types as wit;
pub use chain::ChainResult;
pub use host::{LogLine, PluginClock};
pub use kv::{Change as KvChange, Kv};
pub use status::{LoadFailure, LoadFailures};

/// A warm instance is replaced after this many calls, so whatever a plugin leaks stays bounded.
pub const RECYCLE_AFTER: u64 = 10_000;

/// Default limits per plugin call.
pub const DEFAULT_FUEL: u64 = 20_000_000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
pub const DEFAULT_MEMORY: usize = 16 << 20;

/// Errors loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid tocsin plugin: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("the plugin engine could not start: {0}")]
    Engine(String),
}

/// Per-call limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub fuel: u64,
    pub timeout: Duration,
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            timeout: DEFAULT_TIMEOUT,
            memory: DEFAULT_MEMORY,
        }
    }
}

impl Limits {
    fn from_config(c: &PluginConfig) -> Limits {
        let d = Limits::default();
        Limits {
            fuel: c.limits.fuel.unwrap_or(d.fuel),
            timeout: c.limits.timeout.as_ref().map_or(d.timeout, |t| t.0 .0),
            memory: c
                .limits
                .memory
                .as_ref()
                .map_or(d.memory, |m| m.0 .0 as usize),
        }
    }
}

/// The wasmtime engine and what goes with it. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    engine: wasmtime::Engine,
    pooling: bool,
    ticker: Arc<Ticker>,
}

/// The epoch ticker's switch: it ticks (every 1 ms) only while some plugin code runs, and sleeps
/// otherwise, so an idle tocsin (or one without plugins) does not wake a thread a thousand times a
/// second.
#[derive(Debug, Default)]
struct Ticker {
    running: std::sync::atomic::AtomicUsize,
    thread: std::sync::OnceLock<std::thread::Thread>,
}

/// Plugin code may run while this lives: the epoch ticks.
struct Ticking(Arc<Ticker>);

impl Ticker {
    fn start(self: &Arc<Self>) -> Ticking {
        self.running.fetch_add(1, Ordering::SeqCst);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
        Ticking(Arc::clone(self))
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pooling", &self.pooling)
            .finish()
    }
}

impl Engine {
    /// Builds the engine. `cache_dir` keeps compiled plugins between runs (by content hash).
    pub fn new(cache_dir: Option<&Path>) -> Result<Engine, LoadError> {
        // A cache that cannot be used only costs compile time: warn and go on without it.
        let cache = cache_dir.and_then(|dir| {
            let mut cc = wasmtime::CacheConfig::new();
            cc.with_directory(dir);
            wasmtime::Cache::new(cc)
                .inspect_err(|e| {
                    tracing::warn!(dir = %dir.display(), error = %e, "Plugin cache unusable; compiling without it.")
                })
                .ok()
        });
        let build = |pooling: bool| -> wasmtime::Result<wasmtime::Engine> {
            let mut cfg = wasmtime::Config::new();
            cfg.consume_fuel(true).epoch_interruption(true);
            cfg.cache(cache.clone());
            if pooling {
                let mut pool = wasmtime::PoolingAllocationConfig::default();
                pool.total_component_instances(64)
                    .total_memories(64)
                    .total_tables(64)
                    .max_memory_size(crate::config::MAX_PLUGIN_MEMORY as usize);
                cfg.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
            }
            wasmtime::Engine::new(&cfg)
        };
        // The pool reserves address space up front; where that is refused, allocate on demand.
        let (engine, pooling) = match build(true) {
            Ok(e) => (e, true),
            Err(pool_err) => {
                tracing::warn!(error = %pool_err, "The plugin instance pool could not be reserved; allocating on demand.");
                (
                    build(false).map_err(|e| LoadError::Engine(e.to_string()))?,
                    false,
                )
            }
        };
        // Epoch ticker: deadlines are counted in 1 ms ticks while plugin code runs (see `Ticker`); it
        // parks otherwise (an unpark before the park is kept, so no start is missed). It stops when
        // the engine is dropped.
        let weak = engine.weak();
        let ticker = Arc::new(Ticker::default());
        let switch = Arc::clone(&ticker);
        let thread = std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || loop {
                if switch.running.load(Ordering::SeqCst) == 0 {
                    std::thread::park_timeout(Duration::from_secs(1));
                    if weak.upgrade().is_none() {
                        return;
                    }
                    continue;
                }
                std::thread::sleep(Duration::from_millis(1));
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            })
            .map_err(|e| LoadError::Engine(e.to_string()))?;
        let _ = ticker.thread.set(thread.thread().clone());
        Ok(Engine {
            engine,
            pooling,
            ticker,
        })
    }

    /// Compiles and checks a plugin file, then sets it up with `settings`. Slow for big components:
    /// call it off the async runtime.
    pub fn load(
        &self,
        name: &str,
        path: &Path,
        settings: Settings,
        kv: Arc<Mutex<Kv>>,
    ) -> Result<Plugin, LoadError> {
        Ok(self.compile(path)?.plugin(name, settings, kv))
    }

    /// Compiles a component and checks its interface against tocsin's (via the on-disk cache).
    pub fn compile(&self, path: &Path) -> Result<Compiled, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        // One line, without wasmtime's dumps of header bytes: it goes into logs and API answers.
        let invalid = |e: wasmtime::Error| LoadError::Invalid {
            path: path.to_path_buf(),
            message: status::one_line(&format!("{e:#}")),
        };
        if let Some(problem) = status::header_problem(&bytes) {
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                message: problem,
            });
        }
        let mtime = status::mtime(path);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let component = Component::new(&self.engine, &bytes).map_err(invalid)?;
        let mut linker: Linker<host::HostState> = Linker::new(&self.engine);
        bindings::Plugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(invalid)?;
        // WASI only for plugins that import it (Rust's std and Python do), with a deny-all context.
        let ty = component.component_type();
        let wants_wasi = ty
            .imports(&self.engine)
            .any(|(n, _)| n.starts_with("wasi:"));
        if wants_wasi {
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(invalid)?;
        } else {
            // Not with WASI linked: defining its exact versioned names as traps would shadow the
            // semver-compatible WASI functions (a plugin built for wasi 0.2.9 runs on our 0.2.12).
            linker
                .define_unknown_imports_as_traps(&component)
                .map_err(invalid)?;
        }
        // Checks the plugin's interface against ours now, not on the first alert.
        let pre = linker.instantiate_pre(&component).map_err(invalid)?;
        let pre = bindings::PluginPre::new(pre).map_err(invalid)?;
        Ok(Compiled {
            engine: self.clone(),
            pre,
            sha256,
            path: path.to_path_buf(),
            mtime,
        })
    }
}

/// A compiled, interface-checked component, ready to be set up as any number of [`Plugin`]s.
#[derive(Clone)]
pub struct Compiled {
    engine: Engine,
    pre: bindings::PluginPre<host::HostState>,
    pub sha256: String,
    pub path: PathBuf,
    /// The file's modification time when it was read.
    pub mtime: Option<std::time::SystemTime>,
}

impl Compiled {
    pub fn plugin(&self, name: &str, settings: Settings, kv: Arc<Mutex<Kv>>) -> Plugin {
        Plugin {
            shared: Arc::new(host::Shared {
                name: name.to_string(),
                config: settings.config,
                tables: settings.tables,
                kv,
                profile: settings.profile,
            }),
            engine: self.engine.clone(),
            pre: self.pre.clone(),
            limits: settings.limits,
            sha256: self.sha256.clone(),
            path: self.path.clone(),
            mtime: self.mtime,
            warm: Mutex::new(None),
            policy: BreakerPolicy {
                disable_after: settings.disable_after,
                ..BreakerPolicy::default()
            },
            alert_room: None,
            raw: settings.raw,
            breaker: Mutex::new(Breaker::default()),
            log_budget: Mutex::new(chain::LogBudget::default()),
        }
    }
}

/// A plugin's settings from the config (or a fixture).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub config: BTreeMap<String, String>,
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    pub limits: Limits,
    pub disable_after: u32,
    /// Whether the plugin gets the sender's raw JSON.
    pub raw: bool,
    /// Profile each call: where its fuel goes (`plugin test --profile`, see [`profile`]).
    pub profile: bool,
}

impl Settings {
    pub fn from_config(c: &PluginConfig) -> Settings {
        Settings {
            config: c
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect(),
            tables: c
                .tables
                .iter()
                .map(|(t, m)| {
                    (
                        t.clone(),
                        m.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
                    )
                })
                .collect(),
            limits: Limits::from_config(c),
            disable_after: c.disable_after,
            raw: c.raw,
            profile: false,
        }
    }
}

struct Warm {
    store: Store<host::HostState>,
    instance: bindings::Plugin,
    calls: u64,
}

/// One loaded plugin.
pub struct Plugin {
    shared: Arc<host::Shared>,
    engine: Engine,
    pre: bindings::PluginPre<host::HostState>,
    pub limits: Limits,
    pub sha256: String,
    pub path: PathBuf,
    /// The file's modification time when it was loaded (to tell that the file changed since).
    pub mtime: Option<std::time::SystemTime>,
    /// One warm instance; calls for this plugin are serialised on it.
    warm: Mutex<Option<Warm>>,
    /// When it skips an alert key, and when it is switched off.
    pub policy: BreakerPolicy,
    /// The room its switch-off system ticket goes to (`plugins.<name>.alert_room`).
    pub alert_room: Option<String>,
    /// Whether the plugin gets the sender's raw JSON.
    raw: bool,
    /// Which keys it skips and whether it is switched off: in memory, per instance (see
    /// `domain::breaker`). Kept while the plugin's file and settings do not change across reloads.
    breaker: Mutex<Breaker>,
    /// How many of its log lines this second went to tocsin's log (`chain::LogBudget`).
    log_budget: Mutex<chain::LogBudget>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.shared.name)
            .field("sha256", &self.sha256)
            .field("limits", &self.limits)
            .finish()
    }
}

/// What one call produced, with its costs.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub result: Result<Verdict, (FailureKind, String)>,
    pub fuel_used: u64,
    pub peak_memory: usize,
    pub elapsed: Duration,
    pub logs: Vec<LogLine>,
    /// Where the fuel went, for a profiled plugin ([`Settings::profile`]).
    pub profile: Option<profile::Profile>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn is_disabled(&self) -> bool {
        self.breaker().is_disabled()
    }

    /// How much of its log this second the plugin used (a poisoned lock still holds a usable one).
    pub fn log_budget(&self) -> std::sync::MutexGuard<'_, chain::LogBudget> {
        self.log_budget
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The breaker's state (a poisoned lock still holds a usable one: it is only counts).
    pub fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the breaker's rules from the config (`breaker:`, `disable_after`, `alert_room`).
    /// Whether the file on disk is not the one running (`None`: cannot tell, e.g. it is gone). Its
    /// modification time first; only when that differs is the file read and hashed, so a copy of
    /// the same bytes is not reported as changed.
    pub fn changed_on_disk(&self) -> Option<bool> {
        if !status::changed_on_disk(&self.path, self.mtime)? {
            return Some(false);
        }
        let bytes = std::fs::read(&self.path).ok()?;
        Some(hex::encode(Sha256::digest(&bytes)) != self.sha256)
    }

    pub fn configure(&mut self, c: &PluginConfig) {
        self.policy = breaker_policy(c);
        self.alert_room = c.alert_room.clone();
    }

    /// The plugin's key-value store (fixtures read it back).
    pub fn kv(&self) -> Arc<Mutex<Kv>> {
        Arc::clone(&self.shared.kv)
    }

    fn instantiate(&self, clock: PluginClock) -> wasmtime::Result<Warm> {
        let state = host::HostState::new(Arc::clone(&self.shared), self.limits.memory, clock);
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(profile::on_epoch);
        // Instantiation runs the plugin's start code: give it the same budget as a call.
        store.set_fuel(self.limits.fuel)?;
        store.data_mut().deadline = Instant::now() + self.limits.timeout;
        store.set_epoch_deadline(1);
        let instance = self.pre.instantiate(&mut store)?;
        Ok(Warm {
            store,
            instance,
            calls: 0,
        })
    }

    /// Runs the plugin on one event within its limits. Blocking: call it off the async runtime.
    pub fn call(
        &self,
        event: &Alert,
        source_kind: &str,
        id: &str,
        clock: PluginClock,
    ) -> CallReport {
        let started = Instant::now();
        // Instantiating runs plugin code too.
        let _ticking = self.engine.ticker.start();
        let mut guard = match self.warm.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.as_ref().is_none_or(|w| w.calls >= RECYCLE_AFTER) {
            *guard = None;
            match self.instantiate(clock) {
                Ok(w) => *guard = Some(w),
                Err(e) => {
                    return CallReport {
                        result: Err((FailureKind::Instantiate, format!("{e:#}"))),
                        fuel_used: 0,
                        peak_memory: 0,
                        elapsed: started.elapsed(),
                        logs: Vec::new(),
                        profile: None,
                    }
                }
            }
        }
        let Some(warm) = guard.as_mut() else {
            unreachable!("instantiated above")
        };
        warm.calls += 1;
        {
            let data = warm.store.data_mut();
            data.deadline = Instant::now() + self.limits.timeout;
            data.clock = clock;
            data.logs.clear();
        }
        let fuel_set = warm.store.set_fuel(self.limits.fuel).is_ok();
        profile::arm(&mut warm.store);
        let ev = to_wit(event, source_kind, id, self.raw);
        let outcome = warm.instance.call_handle(&mut warm.store, &ev);
        let fuel_left = warm.store.get_fuel().unwrap_or(0);
        let fuel_used = if fuel_set {
            self.limits.fuel.saturating_sub(fuel_left)
        } else {
            0
        };
        let profile = profile::finish(&mut warm.store);
        let data = warm.store.data_mut();
        let logs = std::mem::take(&mut data.logs);
        let peak_memory = data.limiter.peak_memory;
        let hit_limit = std::mem::take(&mut data.limiter.hit_limit);
        let result = match outcome {
            Ok(Ok(decision)) => Ok(from_wit(decision)),
            Ok(Err(message)) => Err((FailureKind::Error, message)),
            Err(trap) => {
                // After a trap the instance's state is unknown: never reuse it.
                *guard = None;
                Err(classify(&trap, hit_limit, self.limits))
            }
        };
        CallReport {
            result,
            fuel_used,
            peak_memory,
            elapsed: started.elapsed(),
            logs,
            profile,
        }
    }
}

/// The breaker's rules in a plugin's config.
fn breaker_policy(c: &PluginConfig) -> BreakerPolicy {
    let d = BreakerPolicy::default();
    BreakerPolicy {
        key_after: c.breaker.after.unwrap_or(d.key_after),
        cooldown: c.breaker.cooldown.as_ref().map_or(d.cooldown, |e| e.0 .0),
        disable_after: c.disable_after,
    }
}

fn classify(
    trap: &wasmtime::Error,
    hit_memory_limit: bool,
    limits: Limits,
) -> (FailureKind, String) {
    if hit_memory_limit {
        return (
            FailureKind::MemoryLimit,
            format!("tried to use more than {} bytes of memory", limits.memory),
        );
    }
    match trap.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => (
            FailureKind::OutOfFuel,
            format!("used all of its {} fuel", limits.fuel),
        ),
        Some(Trap::Interrupt) => (
            FailureKind::Deadline,
            format!("ran past its {} ms deadline", limits.timeout.as_millis()),
        ),
        _ => (FailureKind::Trap, trap_message(trap)),
    }
}

fn to_wit(a: &Alert, source_kind: &str, id: &str, raw: bool) -> wit::Event {
    let pairs =
        |m: &crate::domain::alert::Labels| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    wit::Event {
        id: id.to_string(),
        fingerprint: a.fingerprint.clone(),
        source: a.source.clone(),
        source_kind: source_kind.to_string(),
        status: match a.status {
            // Plugin interface 0.1 knows firing and resolved: an acknowledgement is a firing that
            // someone at the sender took on, an update (a new severity, a comment) one that changed.
            Status::Firing | Status::Acknowledged | Status::Updated => wit::Status::Firing,
            Status::Resolved => wit::Status::Resolved,
        },
        severity: severity_to_wit(a.severity),
        title: a.title.clone(),
        description: a.description.clone(),
        labels: pairs(&a.labels),
        annotations: pairs(&a.annotations),
        starts_at_ms: a.starts_at.map(|t| t.as_millis().max(0) as u64),
        ends_at_ms: a.ends_at.map(|t| t.as_millis().max(0) as u64),
        received_at_ms: a.received_at.as_millis().max(0) as u64,
        generator_url: a.url.clone(),
        raw_json: if raw { a.raw.clone() } else { None },
    }
}

fn severity_to_wit(s: Severity) -> wit::Severity {
    match s {
        Severity::None => wit::Severity::None,
        Severity::Info => wit::Severity::Info,
        Severity::Warning => wit::Severity::Warning,
        Severity::Error => wit::Severity::Error,
        Severity::Critical => wit::Severity::Critical,
    }
}

fn severity_from_wit(s: wit::Severity) -> Severity {
    match s {
        wit::Severity::None => Severity::None,
        wit::Severity::Info => Severity::Info,
        wit::Severity::Warning => Severity::Warning,
        wit::Severity::Error => Severity::Error,
        wit::Severity::Critical => Severity::Critical,
    }
}

fn from_wit(d: wit::Decision) -> Verdict {
    match d {
        wit::Decision::Pass => Verdict::Pass,
        wit::Decision::Drop(reason) => Verdict::Drop(reason),
        wit::Decision::Route(r) => Verdict::Route(RouteFields {
            ticket: TicketFields {
                title: r.ticket.title,
                severity: r.ticket.severity.map(severity_from_wit),
                body: r.ticket.body,
                tags: r.ticket.tags,
                group_key: r.ticket.group_key,
            },
            add_labels: r.add_labels.into_iter().collect(),
            rooms: r.rooms,
            mentions: r.mentions,
        }),
    }
}

/// The plugins and chains of one config version.
#[derive(Debug, Default)]
pub struct Registry {
    pub plugins: BTreeMap<String, Arc<Plugin>>,
    /// Source name → plugin names, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Source name → kind, for the `source-kind` field plugins see.
    pub kinds: BTreeMap<String, String>,
}

impl Registry {
    /// Whether a plugin in the source's chain wants the sender's raw JSON (so ingest keeps it).
    pub fn wants_raw(&self, source: &str) -> bool {
        self.chains.get(source).is_some_and(|chain| {
            chain
                .iter()
                .any(|p| self.plugins.get(p).is_some_and(|p| p.raw))
        })
    }
}

/// Outcome of loading a config's plugins.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadReport {
    /// Plugins compiled from a new or changed file.
    pub loaded: Vec<String>,
    /// Plugins whose file did not change (kept as they were, warm).
    pub unchanged: Vec<String>,
    /// Plugins that failed to load, with why; the previous version (if any) keeps running.
    #[serde(serialize_with = "failed_as_objects")]
    pub failed: Vec<(String, String)>,
    /// Plugins that were switched off and are on again.
    pub re_enabled: Vec<String>,
}

/// `[{"plugin": ..., "reason": ...}]`: named fields for API clients.
fn failed_as_objects<S: serde::Serializer>(
    failed: &[(String, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(failed.len()))?;
    for (plugin, reason) in failed {
        seq.serialize_element(&serde_json::json!({"plugin": plugin, "reason": reason}))?;
    }
    seq.end()
}

/// The current registry, swapped atomically on reload.
#[derive(Debug)]
pub struct Plugins {
    engine: Engine,
    current: RwLock<Arc<Registry>>,
    /// Serialises reloads.
    reloading: tokio::sync::Mutex<()>,
    /// Each plugin's last failed load, while its latest load failed (in memory, per instance).
    pub load_failures: LoadFailures,
}

impl Plugins {
    /// Starts the engine; no plugins loaded yet.
    pub fn new(cache_dir: Option<&Path>) -> Result<Plugins, LoadError> {
        Ok(Plugins {
            engine: Engine::new(cache_dir)?,
            current: RwLock::new(Arc::new(Registry::default())),
            reloading: tokio::sync::Mutex::new(()),
            load_failures: LoadFailures::default(),
        })
    }

    /// The registry to use for the next batch.
    pub fn current(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Loads the config's plugins off the async runtime and swaps them in. A plugin that fails to load
    /// keeps its previous version, if there is one; unchanged files keep their warm instance.
    pub async fn reload(self: &Arc<Self>, config: &Config) -> ReloadReport {
        let _one_at_a_time = self.reloading.lock().await;
        let this = Arc::clone(self);
        let config = config.clone();
        let work = tokio::task::spawn_blocking(move || this.build(&config)).await;
        let (registry, report) = match work {
            Ok(r) => r,
            Err(e) => {
                let mut report = ReloadReport::default();
                report
                    .failed
                    .push(("*".into(), format!("reload task failed: {e}")));
                return report;
            }
        };
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(registry),
            Err(p) => *p.into_inner() = Arc::new(registry),
        }
        report
    }

    /// Loads synchronously (for the CLI and startup).
    pub fn reload_blocking(&self, config: &Config) -> ReloadReport {
        let (registry, report) = self.build(config);
        match self.current.write() {
            Ok(mut g) => *g = Arc::new(registry),
            Err(p) => *p.into_inner() = Arc::new(registry),
        }
        report
    }

    fn build(&self, config: &Config) -> (Registry, ReloadReport) {
        let old = self.current();
        let mut report = ReloadReport::default();
        let mut plugins = BTreeMap::new();
        for (name, pc) in &config.plugins {
            let path = PathBuf::from(&pc.path.0);
            let settings = Settings::from_config(pc);
            let previous = old.plugins.get(name);
            let kv = previous.map_or_else(
                || Arc::new(Mutex::new(Kv::default())),
                |p| Arc::clone(&p.shared.kv),
            );
            let same_file = previous.is_some_and(|p| {
                std::fs::read(&path).is_ok_and(|b| hex::encode(Sha256::digest(&b)) == p.sha256)
                    && p.limits == settings.limits
                    && p.shared.config == settings.config
                    && p.shared.tables == settings.tables
                    && p.raw == settings.raw
                    && p.path == path
                    && p.policy == breaker_policy(pc)
                    && p.alert_room == pc.alert_room
            });
            if same_file && !previous.is_some_and(|p| p.is_disabled()) {
                if let Some(p) = previous {
                    plugins.insert(name.clone(), Arc::clone(p));
                    report.unchanged.push(name.clone());
                    self.load_failures.loaded(name);
                    continue;
                }
            }
            match self.engine.load(name, &path, settings, kv) {
                Ok(mut p) => {
                    p.configure(pc);
                    if previous.is_some_and(|p| p.is_disabled()) {
                        report.re_enabled.push(name.clone());
                    }
                    plugins.insert(name.clone(), Arc::new(p));
                    report.loaded.push(name.clone());
                    self.load_failures.loaded(name);
                }
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "Plugin failed to load; keeping the previous version if any.");
                    self.load_failures.failed(name, &e.to_string());
                    report.failed.push((name.clone(), e.to_string()));
                    if let Some(p) = previous {
                        plugins.insert(name.clone(), Arc::clone(p));
                    }
                }
            }
        }
        self.load_failures
            .retain(|name| config.plugins.contains_key(name));
        let chains = config
            .sources
            .iter()
            .filter(|(_, s)| !s.plugins.is_empty())
            .map(|(n, s)| (n.clone(), s.plugins.clone()))
            .collect();
        let kinds = config
            .sources
            .iter()
            .map(|(n, s)| (n.clone(), s.kind.as_str().to_string()))
            .collect();
        (
            Registry {
                plugins,
                chains,
                kinds,
            },
            report,
        )
    }

    /// Whether the engine got its instance pool.
    pub fn pooling(&self) -> bool {
        self.engine.pooling
    }
}

/// The most useful line of a trap: its root cause, without the wasm backtrace.
fn trap_message(trap: &wasmtime::Error) -> String {
    let root = trap.root_cause().to_string();
    let first = root.lines().next().unwrap_or("trap").trim();
    if first.is_empty() {
        "trap".to_string()
    } else {
        first.to_string()
    }
}
