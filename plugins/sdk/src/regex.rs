//! Regexes for label matchers, matched by tocsin itself through the host's `regex-match`.
//!
//! Why the host and not an engine in the plugin: a pattern must mean the same in a plugin as in
//! tocsin's routes and silences. The host uses the very code those use (the Rust `regex` crate's
//! RE2-like syntax, anchored at both ends, size-limited), so there is one dialect, and plugins stay
//! small. Supported: everything that crate supports, e.g. `.` (not newlines, unless `(?s)`),
//! classes, `\d \w \s` and `\p{..}` (Unicode-aware), `{n,m}`, flags such as `(?i)`, `\b`.
//! Refused with an error: look-around, back-references, and patterns too big once compiled.
//! `plugins/testdata/regex-table.json` lists cases that both sides are tested on.

use crate::bindings::tocsin::plugin::host;

/// A pattern that must match the whole text (as Alertmanager's `=~` and `!~` do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regex {
    pattern: String,
}

impl Regex {
    /// Checks `pattern` with the host; `Err` says why it does not compile.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        host::regex_match(pattern, "")?;
        Ok(Regex {
            pattern: pattern.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern matches the whole of `text`. The host caches compiled patterns, so
    /// calling this per event is cheap.
    pub fn is_match(&self, text: &str) -> bool {
        // `new` checked the pattern, so an error cannot happen here; no match is the safe reading.
        host::regex_match(&self.pattern, text).unwrap_or(false)
    }
}
