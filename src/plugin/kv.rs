//! The per-plugin key-value store: small, bounded, with TTLs, for flap and rate state.
//!
//! It lives in memory and survives reloads of the same plugin, not restarts of tocsin. Expiry is checked
//! against the host clock the plugin sees, so fixtures with a frozen clock behave predictably.

use std::collections::HashMap;

/// Most keys one plugin may hold.
pub const MAX_KEYS: usize = 10_000;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Kv {
    entries: HashMap<String, (String, Option<u64>)>,
}

impl Kv {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Kv {
        Kv {
            entries: pairs.into_iter().map(|(k, v)| (k, (v, None))).collect(),
        }
    }

    pub fn get(&self, key: &str, now_ms: u64) -> Option<String> {
        match self.entries.get(key) {
            Some((v, expiry)) if expiry.is_none_or(|e| e > now_ms) => Some(v.clone()),
            _ => None,
        }
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
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_KEYS {
            self.entries
                .retain(|_, (_, e)| e.is_none_or(|e| e > now_ms));
            if self.entries.len() >= MAX_KEYS {
                return Err(format!("the store is full ({MAX_KEYS} keys)"));
            }
        }
        let expiry = ttl_ms.map(|t| now_ms.saturating_add(t));
        self.entries.insert(key, (value, expiry));
        Ok(())
    }

    pub fn delete(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Live entries, for fixtures' `expect_kv`.
    pub fn snapshot(&self, now_ms: u64) -> HashMap<String, String> {
        self.entries
            .iter()
            .filter(|(_, (_, e))| e.is_none_or(|e| e > now_ms))
            .map(|(k, (v, _))| (k.clone(), v.clone()))
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
        kv.delete("a");
        for i in 0..MAX_KEYS {
            kv.set(format!("k{i}"), String::new(), Some(10), 0).unwrap();
        }
        assert!(kv.set("full".into(), String::new(), None, 5).is_err());
        // Expired keys make room.
        kv.set("room".into(), String::new(), None, 20).unwrap();
    }
}
