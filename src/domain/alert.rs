//! The normalised alert: what every source's payload becomes before anything else looks at it.
//!
//! Parsers in `ingest/` produce [`Alert`]s; the journal stores them; plugins and the ticket state machine
//! read them. Nothing here does IO.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

/// Labels and annotations are sorted maps so that hashing and rendering are deterministic.
pub type Labels = BTreeMap<String, String>;

/// Whether the sender says the problem is happening now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Firing,
    Resolved,
    /// The sender says someone acknowledged it (PagerDuty's `acknowledge`): the ticket is acked by the
    /// source, if it is open.
    Acknowledged,
    /// The sender reports a change to a problem it told about before, without saying whether the
    /// problem is on or off (Zabbix's update operations): `severity` is the problem's new severity
    /// (`none`: unchanged) and `description` is a comment, if someone wrote one. It changes the
    /// current ticket of its key, whatever its state (a new severity, a note), and never opens,
    /// reopens or resolves one.
    Updated,
}

/// Severity, normalised from the many spellings senders use (`page`, `crit`, `P1`, `warn`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// No severity given or one we do not recognise.
    None,
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// Maps a sender's word to a severity. Unknown words become [`Severity::None`] rather than an error:
    /// an alert with an odd severity label must still reach people.
    pub fn parse_lenient(word: &str) -> Severity {
        match word.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "page" | "fatal" | "emergency" | "emerg" | "alert"
            | "disaster" | "p1" | "sev1" | "high" => Severity::Critical,
            "error" | "err" | "major" | "p2" | "sev2" => Severity::Error,
            "warning" | "warn" | "minor" | "average" | "p3" | "sev3" | "medium" => {
                Severity::Warning
            }
            "info" | "informational" | "information" | "notice" | "low" | "ok" | "p4" | "p5"
            | "sev4" | "sev5" => Severity::Info,
            _ => Severity::None,
        }
    }

    /// The lowercase name used in JSON, SQL and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Inverse of [`Severity::as_str`].
    pub fn from_name(name: &str) -> Option<Severity> {
        [
            Severity::None,
            Severity::Info,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert as tocsin understands it, whatever sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Name of the configured source it came through (`sources.<name>`).
    pub source: String,
    /// Identity within the source. The ticket key is `(source, fingerprint)`.
    pub fingerprint: String,
    pub status: Status,
    pub title: String,
    pub severity: Severity,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Link back to whatever produced the alert (Prometheus' `generatorURL`, a dashboard...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When this firing started, if the sender says. Same labels with a new `starts_at` is a new firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
    /// For leased alerts (Prometheus style): the alert resolves by itself at this time unless renewed.
    /// `None` means the alert fires until the sender says it resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// When tocsin accepted it. Timeline entries caused by the alert carry this time.
    pub received_at: Timestamp,
    /// What plugins added: rooms, mentions, tags, body, grouping. Empty until the plugin chain runs.
    #[serde(default, skip_serializing_if = "Routing::is_empty")]
    pub routing: Routing,
    /// The sender's own JSON for this alert, kept only when a plugin on the source asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

/// Where a ticket should go and what it carries beyond the alert, as plugins decided. Config routes
/// (their own issue) add to this.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routing {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Markdown body for the ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Set when a plugin grouped the alert; the ticket key is then `group:<key>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// Fingerprint the sender gave, kept when a group key replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_fingerprint: Option<String>,
}

impl Routing {
    pub fn is_empty(&self) -> bool {
        self == &Routing::default()
    }
}

impl Alert {
    /// Roughly how many bytes the alert takes (its strings), for bounding the journal by size: cheap,
    /// and the same measure where alerts are added and where they are taken.
    pub fn approx_size(&self) -> u64 {
        let labels = |l: &Labels| l.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>();
        let opt = |o: &Option<String>| o.as_ref().map_or(0, String::len);
        (64 + self.source.len()
            + self.fingerprint.len()
            + self.title.len()
            + labels(&self.labels)
            + labels(&self.annotations)
            + opt(&self.description)
            + opt(&self.url)
            + opt(&self.raw)) as u64
    }
}

/// Alertmanager's fingerprint: FNV-1a 64 over the sorted label set, each name and value followed by
/// `0xff`, printed as 16 hex digits. Using the same function means tocsin's keys match the fingerprints
/// Alertmanager shows for the same alerts.
pub fn labels_fingerprint(labels: &Labels) -> String {
    let mut h = Fnv1a::new();
    for (name, value) in labels {
        h.write(name.as_bytes());
        h.write(&[0xff]);
        h.write(value.as_bytes());
        h.write(&[0xff]);
    }
    format!("{:016x}", h.finish())
}

/// The generic source's default key: the sorted labels plus the title, so two alerts with the same
/// labels but different titles are different problems.
pub fn labels_and_title_fingerprint(labels: &Labels, title: &str) -> String {
    let mut h = Fnv1a::new();
    for (name, value) in labels {
        h.write(name.as_bytes());
        h.write(&[0xff]);
        h.write(value.as_bytes());
        h.write(&[0xff]);
    }
    h.write(&[0xfe]);
    h.write(title.as_bytes());
    format!("{:016x}", h.finish())
}

struct Fnv1a(u64);

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    fn new() -> Self {
        Fnv1a(Self::OFFSET)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_matches_alertmanager() {
        // Fingerprints copied from a real Alertmanager 0.25 webhook (shared/reference/alertmanager.md).
        let a = labels(&[
            ("alertname", "Bulk"),
            ("cluster", "lab2"),
            ("n", "1"),
            ("severity", "warning"),
        ]);
        assert_eq!(labels_fingerprint(&a), "9e0993c793b95973");
        let b = labels(&[
            ("alertname", "Bulk"),
            ("cluster", "lab2"),
            ("n", "2"),
            ("severity", "warning"),
        ]);
        assert_eq!(labels_fingerprint(&b), "9bf16bc37f6758a6");
    }

    #[test]
    fn title_changes_the_generic_key() {
        let l = labels(&[("host", "a")]);
        assert_ne!(
            labels_and_title_fingerprint(&l, "disk full"),
            labels_and_title_fingerprint(&l, "cpu hot")
        );
    }

    #[test]
    fn severities_are_normalised() {
        assert_eq!(Severity::parse_lenient("PAGE"), Severity::Critical);
        assert_eq!(Severity::parse_lenient("warn"), Severity::Warning);
        assert_eq!(Severity::parse_lenient("whatever"), Severity::None);
        for s in ["none", "info", "warning", "error", "critical"] {
            assert_eq!(Severity::from_name(s).unwrap().as_str(), s);
        }
    }
}
