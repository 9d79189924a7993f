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

/// A cache of compiled patterns, failures included (with their reason), so a bad pattern is not
/// recompiled on every check either.
#[derive(Default)]
pub struct Cache(Mutex<HashMap<String, Result<Arc<Regex>, String>>>);

impl Cache {
    /// [`anchored`], compiled once per distinct pattern; `Err` says why a pattern does not compile.
    pub fn get(&self, value: &str) -> Result<Arc<Regex>, String> {
        if let Some(hit) = self.0.lock().ok().and_then(|c| c.get(value).cloned()) {
            return hit;
        }
        // Compiled outside the lock: a slow pattern does not hold up lookups of others.
        let compiled = anchored(value).map(Arc::new).map_err(|e| e.to_string());
        if let Ok(mut c) = self.0.lock() {
            if c.len() >= CACHE_CAP {
                c.clear();
            }
            c.insert(value.to_string(), compiled.clone());
        }
        compiled
    }
}

/// [`anchored`], compiled once per distinct pattern; `None` for a pattern that does not compile.
pub fn cached(value: &str) -> Option<Arc<Regex>> {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default).get(value).ok()
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

    /// The dialect table shared with the plugin SDK (tests/plugin_regex.rs runs the same rows through
    /// a plugin's `Matcher`): a pattern must mean the same in a route, a silence and a plugin.
    #[test]
    fn the_shared_dialect_table_holds_on_the_server() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../plugins/testdata/regex-table.json")).unwrap();
        let cases = table["cases"].as_array().unwrap();
        assert!(cases.len() > 20);
        for case in cases {
            let (pattern, input) = (
                case["pattern"].as_str().unwrap(),
                case["input"].as_str().unwrap(),
            );
            let got = match anchored(pattern) {
                Ok(re) => serde_json::Value::Bool(re.is_match(input)),
                Err(_) => serde_json::Value::from("invalid"),
            };
            assert_eq!(got, case["expect"], "pattern {pattern:?} on {input:?}");
        }
    }
}
