//! User-supplied regexes (silence matchers, routes' `match_re`): anchored at both ends as Alertmanager
//! reads them, built with size limits so one pattern cannot cost unbounded memory or compile time, and
//! compiled once per distinct pattern (silences are read from the store for every ticket change; their
//! patterns must not be compiled each time). Matching with the `regex` crate is linear in the input, so
//! a compiled pattern's cost per check is bounded too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use regex::{Regex, RegexBuilder};

/// Largest compiled program for one pattern (the crate's default is 10 MiB).
pub const SIZE_LIMIT: usize = 1 << 20;
/// Distinct patterns kept compiled; past this the cache starts over (patterns are few in practice).
const CACHE_CAP: usize = 4096;

/// `^(?:value)$` with the size limits.
pub fn anchored(value: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{value})$"))
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
}

type Cache = Mutex<HashMap<String, Option<Arc<Regex>>>>;

/// [`anchored`], compiled once per distinct pattern; `None` for a pattern that does not compile.
pub fn cached(value: &str) -> Option<Arc<Regex>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(value).cloned()) {
        return hit;
    }
    // Compiled outside the lock: a slow pattern does not hold up lookups of others.
    let compiled = anchored(value).ok().map(Arc::new);
    if let Ok(mut c) = cache.lock() {
        if c.len() >= CACHE_CAP {
            c.clear();
        }
        c.insert(value.to_string(), compiled.clone());
    }
    compiled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchored_and_limited() {
        let re = anchored("db.*").unwrap();
        assert!(re.is_match("db1"));
        assert!(!re.is_match("xdb1"));
        // A pattern whose program is far over the limit is refused, not built.
        assert!(anchored(&"(a{1000}){1000}".repeat(4)).is_err());
    }

    #[test]
    fn cached_compiles_once_and_remembers_failures() {
        let a = cached("web-[0-9]+").unwrap();
        let b = cached("web-[0-9]+").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cached("(").is_none());
        assert!(cached("(").is_none());
    }
}
