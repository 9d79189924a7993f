//! The per-plugin key-value store: small, bounded, with TTLs, for flap and rate state.
//!
//! It is held in memory while tocsin runs, survives reloads of the same plugin, and is kept in the
//! database so it survives restarts too, and follows the journal from one instance to another: it
//! records what changed since it was last saved ([`Kv::take_changes`]), and the processor writes
//! those changes to the store after the plugins ran and loads the contents back ([`Kv::load`]) when
//! it starts processing. This module knows nothing of the store (plugin/ never touches it); the
//! processor converts between the two. Expiry is checked against the host clock the plugin sees, so
//! fixtures with a frozen clock behave predictably.
//!
//! Bounded by keys and by bytes, and full is never an error: a new key evicts expired entries first,
//! then the least recently used ones. A plugin whose state depends on alert content (one key per
//! fingerprint) must not start failing, and be switched off, because a flood of alerts filled its store.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// When it was set (a tick of `clock`, unique): with `expiry`, its position in `expiring`.
    set_at: u64,
}

/// A change to one key since the store was last saved, as the database should take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key holds this value, until `expires_at` (ms since the epoch, on the plugin's clock).
    Set {
        key: String,
        value: String,
        expires_at: Option<u64>,
    },
    /// The key is gone: deleted, evicted to make room, or found expired.
    Delete { key: String },
}

impl Change {
    pub fn key(&self) -> &str {
        match self {
            Change::Set { key, .. } | Change::Delete { key } => key,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Kv {
    entries: HashMap<String, Slot>,
    /// Keys by last use, oldest first.
    order: BTreeMap<u64, String>,
    /// Keys with an expiry, by `(expiry, set_at)`: soonest first. Why: a full store looks for
    /// expired keys on every new key, and scanning them all made a plugin that keeps one key per
    /// alert spend most of its time there in a storm (perf: a sixth of the process's time).
    expiring: BTreeMap<(u64, u64), String>,
    clock: u64,
    bytes: usize,
    /// Keys changed since the last save. Only keys, not the changes: a key written many times between
    /// two saves is saved once, as it is then, and a change put back after a failed save is read
    /// again as it is at the next one.
    dirty: BTreeSet<String>,
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
            if let Some(expiry) = slot.expiry {
                self.expiring.remove(&(expiry, slot.set_at));
            }
            self.bytes -= key.len() + slot.value.len();
            self.dirty.insert(key.to_string());
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
        check(&key, &value)?;
        let expiry = ttl_ms.map(|t| now_ms.saturating_add(t));
        self.insert(key, value, expiry, now_ms);
        Ok(())
    }

    /// Stores a checked entry, making room first: expired entries go, then the least recently used.
    fn insert(&mut self, key: String, value: String, expiry: Option<u64>, now_ms: u64) {
        self.remove(&key);
        let size = key.len() + value.len();
        if self.entries.len() >= MAX_KEYS || self.bytes + size > MAX_BYTES {
            while let Some(entry) = self.expiring.first_entry() {
                if entry.key().0 > now_ms {
                    break;
                }
                let expired = entry.remove();
                self.remove(&expired);
            }
        }
        while self.entries.len() >= MAX_KEYS || self.bytes + size > MAX_BYTES {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        self.order.insert(self.clock, key.clone());
        if let Some(expiry) = expiry {
            self.expiring.insert((expiry, self.clock), key.clone());
        }
        self.bytes += size;
        self.dirty.insert(key.clone());
        self.entries.insert(
            key,
            Slot {
                value,
                expiry,
                used: self.clock,
                set_at: self.clock,
            },
        );
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

    /// What changed since the last call (or the last [`Kv::load`]), one change per key, as the keys
    /// are now; the store is clean afterwards. A caller that fails to save them hands them back with
    /// [`Kv::put_back`].
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|key| match self.entries.get(&key) {
                Some(slot) => Change::Set {
                    value: slot.value.clone(),
                    expires_at: slot.expiry,
                    key,
                },
                None => Change::Delete { key },
            })
            .collect()
    }

    /// Marks the keys of changes that could not be saved as changed again, so the next
    /// [`Kv::take_changes`] returns them (as they are by then).
    pub fn put_back(&mut self, changes: &[Change]) {
        self.dirty
            .extend(changes.iter().map(|c| c.key().to_string()));
    }

    /// Whether anything changed since the last save.
    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Replaces the contents with saved entries `(key, value, expires_at)`, within the same limits as
    /// [`Kv::set`]: entries already expired at `now_ms` are left out, entries over the key or value
    /// limit are refused, and past the key or byte limit the later ones evict earlier ones. Clean
    /// afterwards, except for the keys refused or evicted, which are recorded as deleted so the
    /// database follows.
    pub fn load(
        &mut self,
        entries: impl IntoIterator<Item = (String, String, Option<u64>)>,
        now_ms: u64,
    ) {
        *self = Kv::default();
        let mut seen = Vec::new();
        for (key, value, expiry) in entries {
            if expiry.is_some_and(|e| e <= now_ms) {
                continue;
            }
            seen.push(key.clone());
            if check(&key, &value).is_ok() {
                self.insert(key, value, expiry, now_ms);
            }
        }
        self.dirty = seen
            .into_iter()
            .filter(|k| !self.entries.contains_key(k))
            .collect();
    }
}

/// The per-entry limits: a value or key over them is the plugin's own mistake, refused.
fn check(key: &str, value: &str) -> Result<(), String> {
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
    Ok(())
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
    fn a_full_store_removes_exactly_the_keys_expired_by_then() {
        let mut kv = Kv::default();
        // Key i expires at 1000 + i; some are set again later with another expiry or none, some
        // are read (which moves them in the least-recently-used order, not in expiry).
        for i in 0..MAX_KEYS as u64 {
            kv.set(format!("k{i}"), String::new(), Some(1000 + i), 0)
                .unwrap();
        }
        kv.set("k5".into(), "again".into(), Some(9_000_000), 0)
            .unwrap();
        kv.set("k6".into(), "forever".into(), None, 0).unwrap();
        assert!(kv.get("k7", 0).is_some());
        kv.take_changes();

        // At 1100, k0..=k100 have expired but k5 and k6 (set again) have not: 99 keys.
        kv.set("new".into(), "v".into(), None, 1100).unwrap();
        let deleted: BTreeSet<String> = kv
            .take_changes()
            .into_iter()
            .filter_map(|c| match c {
                Change::Delete { key } => Some(key),
                Change::Set { .. } => None,
            })
            .collect();
        let expected: BTreeSet<String> = (0..=100)
            .filter(|i| ![5, 6].contains(i))
            .map(|i| format!("k{i}"))
            .collect();
        assert_eq!(deleted, expected);
        assert_eq!(kv.get("k5", 1100).as_deref(), Some("again"));
        assert_eq!(kv.get("k6", 1100).as_deref(), Some("forever"));
        assert!(kv.get("k101", 1100).is_some());
        assert_eq!(kv.snapshot(1100).len(), MAX_KEYS - 99 + 1);
        assert_eq!(
            kv.expiring.len(),
            MAX_KEYS - 99 - 1,
            "k6 and new have no expiry"
        );
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

    #[test]
    fn changes_are_recorded_once_per_key_as_the_key_is_now() {
        let mut kv = Kv::default();
        kv.set("a".into(), "1".into(), Some(1000), 500).unwrap();
        kv.set("b".into(), "2".into(), None, 500).unwrap();
        kv.set("c".into(), "3".into(), None, 500).unwrap();
        kv.set("c".into(), "4".into(), None, 600).unwrap();
        kv.delete("b");
        kv.delete("never-there");
        assert!(kv.is_dirty());
        assert_eq!(
            kv.take_changes(),
            vec![
                Change::Set {
                    key: "a".into(),
                    value: "1".into(),
                    expires_at: Some(1500)
                },
                Change::Delete { key: "b".into() },
                Change::Set {
                    key: "c".into(),
                    value: "4".into(),
                    expires_at: None
                },
            ]
        );
        assert!(!kv.is_dirty());
        assert_eq!(kv.take_changes(), vec![]);
        // Reading an expired key forgets it: a delete too.
        assert_eq!(kv.get("a", 1500), None);
        assert_eq!(kv.take_changes(), vec![Change::Delete { key: "a".into() }]);
    }

    #[test]
    fn changes_put_back_after_a_failed_save_come_again_as_they_are_then() {
        let mut kv = Kv::default();
        kv.set("a".into(), "1".into(), None, 0).unwrap();
        kv.set("b".into(), "1".into(), None, 0).unwrap();
        let failed = kv.take_changes();
        kv.put_back(&failed);
        kv.set("a".into(), "2".into(), None, 0).unwrap();
        kv.delete("b");
        assert_eq!(
            kv.take_changes(),
            vec![
                Change::Set {
                    key: "a".into(),
                    value: "2".into(),
                    expires_at: None
                },
                Change::Delete { key: "b".into() },
            ]
        );
    }

    #[test]
    fn eviction_shows_up_as_a_delete() {
        let mut kv = Kv::default();
        for i in 0..MAX_KEYS {
            kv.set(format!("k{i}"), String::new(), None, 0).unwrap();
        }
        assert_eq!(kv.take_changes().len(), MAX_KEYS);
        kv.set("new".into(), "v".into(), None, 0).unwrap();
        assert_eq!(
            kv.take_changes(),
            vec![
                Change::Delete { key: "k0".into() },
                Change::Set {
                    key: "new".into(),
                    value: "v".into(),
                    expires_at: None
                },
            ]
        );
    }

    #[test]
    fn expired_entries_making_room_show_up_as_deletes() {
        let mut kv = Kv::default();
        for i in 0..MAX_KEYS {
            kv.set(format!("k{i}"), String::new(), Some(10), 0).unwrap();
        }
        kv.take_changes();
        kv.set("new".into(), "v".into(), None, 20).unwrap();
        let changes = kv.take_changes();
        assert_eq!(changes.len(), MAX_KEYS + 1);
        assert!(changes.contains(&Change::Delete { key: "k7".into() }));
    }

    #[test]
    fn load_replaces_the_contents_and_leaves_the_store_clean() {
        let mut kv = Kv::default();
        kv.set("gone".into(), "x".into(), None, 0).unwrap();
        kv.load(
            [
                ("a".to_string(), "1".to_string(), Some(2000)),
                ("b".to_string(), "2".to_string(), None),
                ("expired".to_string(), "3".to_string(), Some(1000)),
            ],
            1000,
        );
        assert!(!kv.is_dirty());
        assert_eq!(kv.take_changes(), vec![]);
        assert_eq!(kv.get("gone", 1000), None);
        assert_eq!(kv.get("a", 1999).as_deref(), Some("1"));
        assert_eq!(kv.get("a", 2000), None, "the saved expiry holds");
        assert_eq!(kv.get("b", 1000).as_deref(), Some("2"));
        assert_eq!(kv.get("expired", 0), None);
        assert_eq!(kv.bytes, 2);
    }

    #[test]
    fn load_keeps_to_the_limits_and_deletes_what_it_refused() {
        let mut kv = Kv::default();
        let mut saved: Vec<_> = (0..MAX_KEYS + 2)
            .map(|i| (format!("k{i:05}"), String::new(), None))
            .collect();
        saved.push(("huge".into(), "x".repeat(MAX_VALUE + 1), None));
        kv.load(saved, 0);
        assert_eq!(kv.snapshot(0).len(), MAX_KEYS);
        assert_eq!(
            kv.take_changes(),
            vec![
                Change::Delete { key: "huge".into() },
                Change::Delete {
                    key: "k00000".into()
                },
                Change::Delete {
                    key: "k00001".into()
                },
            ]
        );
        assert!(kv.get(&format!("k{:05}", MAX_KEYS + 1), 0).is_some());
    }
}
