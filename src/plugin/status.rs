//! Why a plugin file did not load, said in one readable line, and what `/api/plugins` shows about the
//! files: the last reload failure per plugin, and whether the file on disk changed since it was loaded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

/// Longest reason kept (wasmtime's messages can quote long chains).
const MAX_REASON: usize = 400;

/// What is wrong with a file's first bytes, before wasmtime looks at it: its own message for these
/// cases is a multi-line dump of the header bytes.
pub fn header_problem(bytes: &[u8]) -> Option<String> {
    const MAGIC: &[u8] = b"\0asm";
    if !bytes.starts_with(MAGIC) {
        let text = bytes
            .iter()
            .take(64)
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
        return Some(if bytes.is_empty() {
            "the file is empty".to_string()
        } else if text {
            "not a WebAssembly file: it looks like text (is it the source, not the built .wasm?)"
                .to_string()
        } else {
            "not a WebAssembly file: it does not start with the wasm magic bytes".to_string()
        });
    }
    // Bytes 4..8: version and layer. A core module is 01 00 00 00; a component's layer is 1.
    match bytes.get(4..8) {
        Some([1, 0, 0, 0]) => Some(
            "a core WebAssembly module, not a component: build for wasm32-wasip2, or wrap it with \
             `wasm-tools component new`"
                .to_string(),
        ),
        None => Some("the file is truncated".to_string()),
        _ => None,
    }
}

/// A load error as one line: newlines and runs of spaces folded, at most [`MAX_REASON`] characters.
pub fn one_line(message: &str) -> String {
    let folded = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= MAX_REASON {
        return folded;
    }
    let cut: String = folded.chars().take(MAX_REASON).collect();
    format!("{cut}…")
}

/// A file's modification time, if it can be read.
pub fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Whether the file at `path` changed since it was loaded with modification time `loaded`:
/// `None` when either time is unknown (the file is gone, or the platform keeps no mtime).
pub fn changed_on_disk(path: &Path, loaded: Option<SystemTime>) -> Option<bool> {
    Some(mtime(path)? != loaded?)
}

/// A plugin's last failed load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadFailure {
    /// When (RFC 3339).
    pub at: String,
    pub reason: String,
}

/// The last failed load of each plugin whose latest load failed (cleared when one succeeds).
#[derive(Debug, Default)]
pub struct LoadFailures(Mutex<BTreeMap<String, LoadFailure>>);

impl LoadFailures {
    pub fn failed(&self, plugin: &str, reason: &str) {
        let at =
            crate::domain::time::Timestamp::from_millis(super::PluginClock::System.now_ms() as i64)
                .to_rfc3339();
        self.lock().insert(
            plugin.to_string(),
            LoadFailure {
                at,
                reason: reason.to_string(),
            },
        );
    }

    pub fn loaded(&self, plugin: &str) {
        self.lock().remove(plugin);
    }

    /// Forgets plugins no longer in the config.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.lock().retain(|name, _| keep(name));
    }

    pub fn get(&self, plugin: &str) -> Option<LoadFailure> {
        self.lock().get(plugin).cloned()
    }

    pub fn all(&self) -> BTreeMap<String, LoadFailure> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LoadFailure>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_headers_are_named_without_dumping_bytes() {
        assert!(header_problem(b"").unwrap().contains("empty"));
        assert!(header_problem(b"hello world")
            .unwrap()
            .contains("looks like text"));
        assert!(header_problem(b"\x7fELF\x02\x01")
            .unwrap()
            .contains("magic bytes"));
        assert!(header_problem(b"\0asm\x01\0\0\0rest")
            .unwrap()
            .contains("core WebAssembly module"));
        assert!(header_problem(b"\0as").is_some());
        assert!(
            header_problem(b"\0asm\x0d\0\x01\0rest").is_none(),
            "a component"
        );
        assert_eq!(one_line("a\n  b\n[\n 0x1,\n]"), "a b [ 0x1, ]");
        assert!(one_line(&"x ".repeat(1000)).chars().count() <= MAX_REASON + 1);
    }
}
