//! Thin wrappers over the host functions tocsin offers plugins.

use crate::bindings::tocsin::plugin::host;
use crate::Level;

/// Current time in milliseconds since the Unix epoch (frozen by fixtures' `now_ms`). Use this,
/// not `std::time`: it is what `tocsin plugin test` controls.
pub fn now_ms() -> u64 {
    host::now_ms()
}

/// The value of `key` in the plugin's `config` map, if set.
pub fn config(key: &str) -> Option<String> {
    host::config(key)
}

/// The value of `key` in the plugin's `config` map, or `default` when unset.
pub fn config_or(key: &str, default: &str) -> String {
    config(key).unwrap_or_else(|| default.to_string())
}

/// Whether config `key` is set to `true`, `yes`, `on` or `1` (case-insensitive).
pub fn config_flag(key: &str) -> bool {
    config(key).is_some_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "on" | "1"
        )
    })
}

/// Looks `key` up in lookup table `table` (`plugins.<name>.tables.<table>` in tocsin's config).
/// A missing table and a missing key both give `None`.
pub fn lookup(table: &str, key: &str) -> Option<String> {
    host::lookup(table, key)
}

/// The plugin's log: tocsin's log and `tocsin plugin test` output (32 lines of 1 KiB per event).
pub mod log {
    use super::*;

    /// Logs `msg` at `level`.
    pub fn write(level: Level, msg: impl AsRef<str>) {
        host::log(level, msg.as_ref());
    }
    /// Logs at debug level.
    pub fn debug(msg: impl AsRef<str>) {
        write(Level::Debug, msg);
    }
    /// Logs at info level.
    pub fn info(msg: impl AsRef<str>) {
        write(Level::Info, msg);
    }
    /// Logs at warn level.
    pub fn warn(msg: impl AsRef<str>) {
        write(Level::Warn, msg);
    }
    /// Logs at error level.
    pub fn error(msg: impl AsRef<str>) {
        write(Level::Error, msg);
    }
}

/// The plugin's own key-value store: the only state that outlives one event. Keys are per
/// plugin; values are strings of at most 64 KiB; a full store (10,000 keys or 8 MiB) evicts the least
/// recently used keys. tocsin keeps it in its database, across restarts and instances.
pub mod kv {
    use super::*;

    /// The value of `key`, unless missing or expired.
    pub fn get(key: &str) -> Option<String> {
        host::kv_get(key)
    }

    /// Stores `value` under `key`. With `ttl_ms` the key expires that long after this write;
    /// `None` keeps it until overwritten, deleted or evicted. Fails on size limits.
    pub fn set(key: &str, value: &str, ttl_ms: Option<u64>) -> Result<(), String> {
        host::kv_set(key, value, ttl_ms)
    }

    /// Deletes `key` (no error if missing).
    pub fn delete(key: &str) {
        host::kv_delete(key)
    }
}

/// Sends panic messages to the plugin log before the trap, where authors will see them.
/// Without it std would write to WASI stderr, which tocsin may not even link.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| log::error(format!("panic: {info}"))));
    });
}
