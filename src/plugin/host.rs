//! What a plugin instance's store holds, and the host functions the plugin may call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::tocsin::plugin::host::{Host, Level};
use super::kv::Kv;
use crate::domain::pattern;

/// Lines of plugin log kept per call, and their length.
const MAX_LOG_LINES: usize = 32;
const MAX_LOG_LINE: usize = 1024;

/// What every instance of one plugin shares: its settings and its key-value store.
#[derive(Debug)]
pub struct Shared {
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub tables: BTreeMap<String, BTreeMap<String, String>>,
    /// Survives reloads of the same plugin name (the registry hands it on).
    pub kv: Arc<Mutex<Kv>>,
    /// Whether calls are profiled ([`super::Settings::profile`]).
    pub profile: bool,
}

/// Where a plugin's clock comes from: the real time, or a frozen one for fixtures.
#[derive(Debug, Clone, Copy)]
pub enum PluginClock {
    System,
    Frozen(u64),
}

impl PluginClock {
    pub fn now_ms(self) -> u64 {
        match self {
            PluginClock::Frozen(ms) => ms,
            PluginClock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        }
    }
}

/// One log line from a plugin.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

/// Memory limits, with a record of the high-water mark and of a refused growth.
#[derive(Debug)]
pub struct Limiter {
    pub max_memory: usize,
    pub peak_memory: usize,
    pub hit_limit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit_limit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit: tried to grow to {desired} bytes, the limit is {}",
                self.max_memory
            )));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data in a plugin instance's `Store`.
pub struct HostState {
    pub shared: Arc<Shared>,
    pub limiter: Limiter,
    /// Wall-clock deadline of the current call; the epoch callback interrupts past it.
    pub deadline: Instant,
    pub clock: PluginClock,
    pub logs: Vec<LogLine>,
    /// Counts where a profiled call's fuel goes (`None` unless profiling).
    pub sampler: Option<super::profile::Sampler>,
    /// A deny-all WASI context (no environment, files, sockets), for plugins that import WASI.
    wasi: WasiCtx,
    table: ResourceTable,
}

impl HostState {
    pub fn new(shared: Arc<Shared>, max_memory: usize, clock: PluginClock) -> HostState {
        HostState {
            sampler: shared.profile.then(super::profile::Sampler::default),
            shared,
            limiter: Limiter {
                max_memory,
                peak_memory: 0,
                hit_limit: false,
            },
            deadline: Instant::now(),
            clock,
            logs: Vec::new(),
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        // Written to tocsin's log after the call, at its level, with the alert's source and
        // fingerprint (`chain::log_lines`).
        self.logs.push(LogLine { level, message });
    }

    fn now_ms(&mut self) -> u64 {
        self.clock.now_ms()
    }

    fn config(&mut self, key: String) -> Option<String> {
        self.shared.config.get(&key).cloned()
    }

    fn lookup(&mut self, table: String, key: String) -> Option<String> {
        self.shared.tables.get(&table)?.get(&key).cloned()
    }

    fn kv_get(&mut self, key: String) -> Option<String> {
        let now = self.clock.now_ms();
        self.shared.kv.lock().ok()?.get(&key, now)
    }

    fn kv_set(&mut self, key: String, value: String, ttl_ms: Option<u64>) -> Result<(), String> {
        let now = self.clock.now_ms();
        self.shared
            .kv
            .lock()
            .map_err(|_| "the key-value store is unavailable".to_string())?
            .set(key, value, ttl_ms, now)
    }

    fn kv_delete(&mut self, key: String) {
        if let Ok(mut kv) = self.shared.kv.lock() {
            kv.delete(&key);
        }
    }

    fn regex_match(&mut self, pattern: String, text: String) -> Result<bool, String> {
        // The server's own dialect, anchoring and size limits (routes, silences), so a matcher means
        // the same in a plugin. Plugins get a cache of their own: patterns built from alert labels
        // must not evict the silences' compiled patterns.
        static PLUGIN_PATTERNS: std::sync::OnceLock<pattern::Cache> = std::sync::OnceLock::new();
        let re = PLUGIN_PATTERNS
            .get_or_init(pattern::Cache::default)
            .get(&pattern)?;
        Ok(re.is_match(&text))
    }
}

impl super::bindings::tocsin::plugin::types::Host for HostState {}
