//! Read helpers on the generated `Event`, `Severity` and `Status` types.

use crate::{Event, Severity, Status};

/// Finds `key` in a key/value list (labels, annotations). The host sends them sorted, but a
/// linear scan is as fast for a few dozen pairs and does not rely on it.
fn find<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

impl Event {
    /// The value of label `key`, if the alert has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        find(&self.labels, key)
    }

    /// The value of label `key`, or `""` when missing (how Alertmanager matchers see it).
    pub fn label_or_empty(&self, key: &str) -> &str {
        self.label(key).unwrap_or("")
    }

    /// The value of annotation `key`, if the alert has it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        find(&self.annotations, key)
    }

    /// Whether the sender says the problem is happening now.
    pub fn is_firing(&self) -> bool {
        self.status == Status::Firing
    }

    /// Whether the sender says the problem is over.
    pub fn is_resolved(&self) -> bool {
        self.status == Status::Resolved
    }

    /// A key unique to this alert within tocsin: `source/fingerprint`. Handy for kv state.
    pub fn key(&self) -> String {
        format!("{}/{}", self.source, self.fingerprint)
    }
}

impl Severity {
    /// The WIT name: `none`, `info`, `warning`, `error` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Parses a WIT name (as [`Severity::as_str`] gives, case-insensitive), e.g. from config.
    /// tocsin's own normalisation of sender wording (`page`, `P1`...) happens before plugins run.
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::None,
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .into_iter()
        .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl Status {
    /// The WIT name: `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// A firing event with no labels, for unit tests: set the fields you need with struct update
/// syntax (`Event { labels: ..., ..Event::default() }`).
impl Default for Event {
    fn default() -> Self {
        Event {
            id: String::new(),
            fingerprint: String::new(),
            source: "test".into(),
            source_kind: "generic".into(),
            status: Status::Firing,
            severity: Severity::None,
            title: String::new(),
            description: None,
            labels: Vec::new(),
            annotations: Vec::new(),
            starts_at_ms: None,
            ends_at_ms: None,
            received_at_ms: 0,
            generator_url: None,
            raw_json: None,
        }
    }
}

impl Event {
    /// Builder for tests: returns the event with label `key` set to `value`.
    pub fn with_label(mut self, key: &str, value: &str) -> Self {
        self.labels.retain(|(k, _)| k != key);
        self.labels.push((key.into(), value.into()));
        self.labels.sort();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_severity() {
        let ev = Event::default()
            .with_label("team", "infra")
            .with_label("team", "db");
        assert_eq!(ev.label("team"), Some("db"));
        assert_eq!(ev.label("nope"), None);
        assert_eq!(ev.label_or_empty("nope"), "");
        assert_eq!(ev.key(), "test/");
        assert!(Severity::Critical > Severity::Warning);
        assert_eq!(Severity::parse(" Critical"), Some(Severity::Critical));
        assert_eq!(Severity::parse("page"), None);
    }
}
