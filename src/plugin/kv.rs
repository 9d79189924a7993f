//! The per-plugin key-value store: small, bounded, with TTLs, for flap and rate state.
//!
//! It lives in memory and survives reloads of the same plugin, not restarts of tocsin. Expiry is checked
//! against the host clock the plugin sees, so fixtures with a frozen clock behave predictably.
//!
//! Bounded by keys and by bytes, and full is never an error: a new key evicts expired entries first,
//! then the least recently used ones. A plugin whose state depends on alert content (one key per
//! fingerprint) must not start failing, and be switched off, because a flood of alerts filled its store.

use std::collections::{BTreeMap, HashMap};

/// Most keys one plugin may hold; more evict the least recently used.
pub const MAX_KEYS: usize = 10_000;
/// Most bytes (keys and values) one plugin may hold; more evict the least recently used.
pub const MAX_BYTES: usize = 8 << 20;
/// Largest value, in bytes (larger is refused: it is the plugin's own mistake).
pub const MAX_VALUE: usize = 64 * 1024;
/// Largest key, in bytes.
pub const MAX_KEY: usize = 1024;

#[derive(Debug, Clone)]
struct Slot {
    value: String,
    expiry: Option<u64>,
    /// Last use, for least-recently-used eviction: the key's position in `order`.
    used: u64,
}

#[derive(Debug, Default, Clone)]
pub struct Kv {
    entries: HashMap<String, Slot>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, String>,
    clock: u64,
    bytes: usize,
}

impl Kv {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Kv {
        let mut kv = Kv::default();
        for (k, v) in pairs {
            let _ = kv.set(k, v, None, 0);
        }
        kv
    }

    fn touch(&mut self, key: &str) {
        self.clock += 1;
        let tick = self.clock;
        if let Some(slot) = self.entries.get_mut(key) {
            self.order.remove(&slot.used);
            slot.used = tick;
            self.order.insert(tick, key.to_string());
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(slot) = self.entries.remove(key) {
            self.order.remove(&slot.used);
            self.bytes -= key.len() + slot.value.len();
        }
    }

    pub fn get(&mut self, key: &str, now_ms: u64) -> Option<String> {
        let slot = self.entries.get(key)?;
        if slot.expiry.is_some_and(|e| e <= now_ms) {
            self.remove(key);
            return None;
        }
        let value = slot.value.clone();
        self.touch(key);
        Some(value)
    }

    pub fn set(
        &mut self,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), String> {
        if value.len() > MAX_VALUE {
            return Err(format!(
                "value of {} bytes is over the {MAX_VALUE}-byte limit",
                value.len()
            ));
        }
        if key.len() > MAX_KEY {
            return Err(format!(
                "key of {} bytes is over the {MAX_KEY}-byte limit",
                key.len()
            ));
        }
        self.remove(&key);
        let size = key.len() + value.len();
        if self.entries.len() >= MAX_KEYS || self.bytes + size > MAX_BYTES {
            self.entries
                .retain(|_, s| s.expiry.is_none_or(|e| e > now_ms));
            self.order = self
                .entries
                .iter()
                .map(|(k, s)| (s.used, k.clone()))
                .collect();
            self.bytes = self
                .entries
                .iter()
                .map(|(k, s)| k.len() + s.value.len())
                .sum();
        }
        while self.entries.len() >= MAX_KEYS || self.bytes + size > MAX_BYTES {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.entries.remove(&oldest) {
                self.bytes -= oldest.len() + slot.value.len();
            }
        }
        self.clock += 1;
        self.order.insert(self.clock, key.clone());
        self.bytes += size;
        self.entries.insert(
            key,
            Slot {
                value,
                expiry: ttl_ms.map(|t| now_ms.saturating_add(t)),
                used: self.clock,
            },
        );
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        self.remove(key);
    }

    /// Live entries, for fixtures' `expect_kv`.
    pub fn snapshot(&self, now_ms: u64) -> HashMap<String, String> {
        self.entries
            .iter()
            .filter(|(_, s)| s.expiry.is_none_or(|e| e > now_ms))
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_and_limits() {
        let mut kv = Kv::default();
        kv.set("a".into(), "1".into(), Some(1000), 0).unwrap();
        kv.set("b".into(), "2".into(), None, 0).unwrap();
        assert_eq!(kv.get("a", 999).as_deref(), Some("1"));
        assert_eq!(kv.get("a", 1000), None);
        assert_eq!(kv.get("b", u64::MAX).as_deref(), Some("2"));
        assert!(kv
            .set("c".into(), "x".repeat(MAX_VALUE + 1), None, 0)
            .is_err());
        kv.delete("b");
        assert_eq!(kv.get("b", 0), None);
    }

    #[test]
    fn a_full_store_evicts_the_least_recently_used_instead_of_failing() {
        let mut kv = Kv::default();
        for i in 0..MAX_KEYS {
            kv.set(format!("k{i}"), String::new(), None, 0).unwrap();
        }
        // k0 was used lately; k1 is now the least recently used.
        assert!(kv.get("k0", 0).is_some());
        kv.set("new".into(), "v".into(), None, 0).unwrap();
        assert_eq!(kv.snapshot(0).len(), MAX_KEYS);
        assert!(kv.get("k0", 0).is_some());
        assert!(kv.get("k1", 0).is_none());
        assert_eq!(kv.get("new", 0).as_deref(), Some("v"));
    }

    #[test]
    fn expired_entries_go_before_live_ones() {
        let mut kv = Kv::default();
        kv.set("old-but-live".into(), String::new(), None, 0)
            .unwrap();
        for i in 0..MAX_KEYS - 1 {
            kv.set(format!("k{i}"), String::new(), Some(10), 0).unwrap();
        }
        kv.set("room".into(), String::new(), None, 20).unwrap();
        assert!(kv.get("old-but-live", 20).is_some());
        assert!(kv.get("room", 20).is_some());
    }

    #[test]
    fn bytes_are_bounded_too() {
        let mut kv = Kv::default();
        let value = "x".repeat(MAX_VALUE);
        for i in 0..(MAX_BYTES / MAX_VALUE) * 2 {
            kv.set(format!("k{i}"), value.clone(), None, 0).unwrap();
        }
        let held: usize = kv.snapshot(0).iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(held <= MAX_BYTES, "{held}");
        assert_eq!(kv.bytes, held);
    }
}
