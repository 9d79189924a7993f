//! `sources.<name>.mapping` for generic sources: where title, key, status and severity are in a sender's
//! JSON, for webhooks nobody wrote a parser for.
//!
//! Every location is an RFC 6901 JSON pointer (`/alert/labels/host`, `/items/0/name`; `~1` stands for
//! `/` and `~0` for `~` inside a name). Pointers are relative to one alert: the body itself, or each
//! item of the array `alerts` points at. The parser is `ingest::kinds::mapping`.
//!
//! ```yaml
//! sources:
//!   uptime:
//!     kind: generic
//!     mapping:
//!       alerts: /events            # optional: the body holds an array of alerts here
//!       title: /check/name         # required
//!       key: [/check/id, /region]  # optional: default is a hash of the labels
//!       status: /state             # optional: default every alert is firing
//!       firing: [down, degraded]
//!       resolved: [up]
//!       acknowledged: [acked]
//!       severity: /level           # optional
//!       severities: { sev1: critical, sev2: error }
//!       labels: { region: /region, team: /owner/team }
//!       description: /check/output
//!       url: /check/link
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::domain::alert::{Severity, Status};

/// Rules that read title, key, status and severity out of any JSON webhook.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Pointer to an array in the body whose items are the alerts. Without it the whole body is one
    /// alert. `""` (the empty pointer) means the body itself is the array. An item that cannot be read
    /// is rejected on its own; its neighbours are still accepted.
    #[serde(default)]
    pub alerts: Option<String>,
    /// Required. Pointer to the title people see. An alert whose title is missing or empty is rejected.
    #[serde(default)]
    pub title: Option<String>,
    /// Pointers (one, or a list) whose values, joined with `/`, are the alert's key: the identity that
    /// makes a resolution find its firing. Default: a hash of the alert's `labels`, which then must not
    /// be empty. A missing part counts as empty; an alert where every part is missing is rejected.
    #[serde(default)]
    pub key: Option<Pointers>,
    /// Pointer to the sender's status word. Without it every alert is firing (a sender that only reports
    /// problems; tickets are then resolved by people).
    #[serde(default)]
    pub status: Option<String>,
    /// Status values meaning firing. When empty, any value not listed under `resolved` or `acknowledged`
    /// is firing; when given, a value in none of the three lists rejects the alert. Values compare
    /// ignoring case and surrounding spaces; numbers and booleans compare as their JSON text (`0`, `true`).
    #[serde(default)]
    pub firing: Vec<Scalar>,
    /// Status values meaning resolved.
    #[serde(default)]
    pub resolved: Vec<Scalar>,
    /// Status values meaning someone acknowledged the alert at the sender (acks an open ticket).
    #[serde(default)]
    pub acknowledged: Vec<Scalar>,
    /// Pointer to the sender's severity. Without it alerts have no severity.
    #[serde(default)]
    pub severity: Option<String>,
    /// The sender's severity values (exact match, then ignoring case) to `critical`, `error`, `warning`,
    /// `info` or `none`. Values not listed go through tocsin's own normaliser (`P1`, `crit`, `warn`...).
    #[serde(default)]
    pub severities: BTreeMap<Scalar, String>,
    /// Label name to pointer. Labels route alerts (plugins read them) and make the default key. A label
    /// whose pointer finds nothing (or `null`, or an empty string) is left out.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Pointer to a longer text shown under the title.
    #[serde(default)]
    pub description: Option<String>,
    /// Pointer to a link back to the sender (a dashboard, the check's page).
    #[serde(default)]
    pub url: Option<String>,
}

/// One pointer or a list of them: `key: /id` and `key: [/id, /region]` both read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointers(pub Vec<String>);

impl<'de> Deserialize<'de> for Pointers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(p) => Pointers(vec![p]),
            OneOrMany::Many(ps) => Pointers(ps),
        })
    }
}

/// A status or severity value as written in the config. YAML reads `resolved: [0]` as a number, and the
/// sender's JSON may well hold the number 0, so numbers and booleans are accepted and kept as text, the
/// way the parser renders non-string JSON values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scalar(pub String);

impl Scalar {
    /// The comparison form: trimmed, lowercase.
    pub fn folded(&self) -> String {
        self.0.trim().to_lowercase()
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                // serde_json's rendering, so `1.5` in the config matches `1.5` in the payload.
                Ok(Scalar(serde_json::Value::from(v).to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks RFC 6901 syntax: empty, or `/` followed by reference tokens where `~` is only `~0` or `~1`.
fn pointer_problem(p: &str) -> Option<String> {
    if !p.is_empty() && !p.starts_with('/') {
        return Some(format!(
            "`{p}` is not a JSON pointer: it must start with `/` (e.g. `/{}`)",
            p.trim_start_matches(['.', '$'])
        ));
    }
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Some(format!(
                "`{p}` is not a JSON pointer: `~` must be written `~0` (and `/` inside a name `~1`)"
            ));
        }
    }
    None
}

impl MappingConfig {
    /// The key pointers, if `key` lists any.
    pub fn key_pointers(&self) -> Option<&[String]> {
        self.key
            .as_ref()
            .map(|k| k.0.as_slice())
            .filter(|k| !k.is_empty())
    }

    /// What the sender's status word means: `None` when `firing` is given and the word is in no list.
    /// Resolved is checked first, then acknowledged, so a word listed twice (which `problems` reports)
    /// still has one meaning.
    pub fn status_of(&self, word: &str) -> Option<Status> {
        let folded = word.trim().to_lowercase();
        let listed = |list: &[Scalar]| list.iter().any(|s| s.folded() == folded);
        if listed(&self.resolved) {
            Some(Status::Resolved)
        } else if listed(&self.acknowledged) {
            Some(Status::Acknowledged)
        } else if self.firing.is_empty() || listed(&self.firing) {
            Some(Status::Firing)
        } else {
            None
        }
    }

    /// The sender's severity value through `severities` (exact, then ignoring case), else tocsin's own
    /// normaliser.
    pub fn severity_of(&self, value: &str) -> Severity {
        let folded = value.trim().to_lowercase();
        self.severities
            .get(&Scalar(value.to_string()))
            .or_else(|| {
                self.severities
                    .iter()
                    .find(|(k, _)| k.folded() == folded)
                    .map(|(_, s)| s)
            })
            .map(|ours| Severity::from_name(ours.trim()).unwrap_or(Severity::None))
            .unwrap_or_else(|| Severity::parse_lenient(value))
    }

    /// Problems as (key under `mapping.`, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let pointer = |key: String, p: &str, out: &mut Vec<(String, String)>| {
            // The empty pointer means "the whole alert": only sensible for `alerts` (the body is the
            // array); anywhere else it is almost surely a forgotten value.
            if p.is_empty() && key != "alerts" {
                out.push((key, "empty; write a JSON pointer such as `/name`".into()));
            } else if let Some(m) = pointer_problem(p) {
                out.push((key, m));
            }
        };
        if let Some(p) = &self.alerts {
            pointer("alerts".into(), p, &mut out);
        }
        match &self.title {
            None => out.push((
                "title".into(),
                "required: a JSON pointer to the alert's title".into(),
            )),
            Some(p) => pointer("title".into(), p, &mut out),
        }
        match &self.key {
            Some(Pointers(ps)) if ps.is_empty() => out.push((
                "key".into(),
                "lists no pointers; give at least one, or remove `key` to key on the labels".into(),
            )),
            Some(Pointers(ps)) => {
                for (i, p) in ps.iter().enumerate() {
                    pointer(format!("key[{i}]"), p, &mut out);
                }
            }
            None if self.labels.is_empty() => out.push((
                "key".into(),
                "without `key` the key is a hash of the labels, and no `labels` are mapped: every \
                 alert would share one ticket; set `key` or `labels`"
                    .into(),
            )),
            None => {}
        }
        for (name, p) in [
            ("status", &self.status),
            ("severity", &self.severity),
            ("description", &self.description),
            ("url", &self.url),
        ] {
            if let Some(p) = p {
                pointer(name.into(), p, &mut out);
            }
        }
        for (name, p) in &self.labels {
            if name.trim().is_empty() {
                out.push(("labels".into(), "a label name is empty".into()));
            }
            pointer(format!("labels.{name}"), p, &mut out);
        }

        let lists = [
            ("firing", &self.firing),
            ("resolved", &self.resolved),
            ("acknowledged", &self.acknowledged),
        ];
        if self.status.is_none() {
            for (name, list) in lists {
                if !list.is_empty() {
                    out.push((
                        name.into(),
                        "has no effect without `status` (the pointer to the sender's status)"
                            .into(),
                    ));
                }
            }
        } else if self.resolved.is_empty() && self.acknowledged.is_empty() {
            // Otherwise every value is firing, which is what leaving `status` out already says.
            out.push((
                "resolved".into(),
                "`status` is set but no value means resolved; list the sender's resolved values"
                    .into(),
            ));
        }
        // A value in two lists would make the outcome depend on the order tocsin checks them in.
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (name, list) in lists {
            for (i, v) in list.iter().enumerate() {
                if let Some(first) = seen.get(&v.folded()) {
                    if *first != name {
                        out.push((
                            format!("{name}[{i}]"),
                            format!(
                                "`{v}` is also listed under `{first}`; a value means one thing"
                            ),
                        ));
                    }
                } else {
                    seen.insert(v.folded(), name);
                }
            }
        }

        if self.severity.is_none() && !self.severities.is_empty() {
            out.push((
                "severities".into(),
                "has no effect without `severity` (the pointer to the sender's severity)".into(),
            ));
        }
        for (theirs, ours) in &self.severities {
            if Severity::from_name(ours.trim()).is_none() {
                out.push((
                    format!("severities.{theirs}"),
                    format!("`{ours}` is not one of critical, error, warning, info, none"),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> MappingConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn keys(c: &MappingConfig) -> Vec<String> {
        c.problems().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_full_mapping_has_no_problems() {
        let c = config(
            "alerts: /events\ntitle: /check/name\nkey: [/check/id, /region]\nstatus: /state\n\
             firing: [down]\nresolved: [up, 0]\nacknowledged: [acked]\nseverity: /level\n\
             severities: {sev1: critical, 2: warning}\nlabels: {region: /region, team: /owner~1team}\n\
             description: /output\nurl: /link\n",
        );
        assert_eq!(c.problems(), Vec::<(String, String)>::new());
        assert_eq!(
            c.key,
            Some(Pointers(vec!["/check/id".into(), "/region".into()]))
        );
        assert_eq!(c.resolved[1], Scalar("0".into()));
        assert!(c.severities.contains_key(&Scalar("2".into())));
    }

    #[test]
    fn key_may_be_a_single_pointer() {
        let c = config("title: /t\nkey: /id\n");
        assert_eq!(c.key, Some(Pointers(vec!["/id".into()])));
        assert!(c.problems().is_empty());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(
            serde_yaml::from_str::<MappingConfig>("title: /t\nkey: /id\ncolour: red\n").is_err()
        );
    }

    #[test]
    fn each_problem_names_its_key() {
        let c = config(
            "alerts: events\ntitle: name\nkey: [/id, 'x']\nstatus: /s\nfiring: [down, UP]\n\
             resolved: [up]\nseverities: {P1: urgent}\nlabels: {host: /a~2b, '': /x}\nurl: ''\n",
        );
        let k = keys(&c);
        for expected in [
            "alerts",
            "title",
            "key[1]",
            "resolved[0]",
            "severities",
            "severities.P1",
            "labels.host",
            "labels",
            "url",
        ] {
            assert!(
                k.contains(&expected.to_string()),
                "{expected} missing in {k:?}"
            );
        }
        let msg = &c
            .problems()
            .into_iter()
            .find(|(k, _)| k == "resolved[0]")
            .unwrap()
            .1;
        assert!(msg.contains("firing"), "{msg}");
    }

    #[test]
    fn title_is_required() {
        let c = config("key: /id\n");
        assert_eq!(keys(&c), ["title"]);
    }

    #[test]
    fn status_lists_need_a_status_and_a_status_needs_a_resolution() {
        assert_eq!(
            keys(&config("title: /t\nkey: /id\nresolved: [ok]\n")),
            ["resolved"]
        );
        assert_eq!(
            keys(&config("title: /t\nkey: /id\nstatus: /s\nfiring: [bad]\n")),
            ["resolved"]
        );
        assert!(keys(&config(
            "title: /t\nkey: /id\nstatus: /s\nacknowledged: [ack]\n"
        ))
        .is_empty());
    }

    #[test]
    fn without_key_or_labels_every_alert_would_share_a_key() {
        assert_eq!(keys(&config("title: /t\n")), ["key"]);
        assert_eq!(keys(&config("title: /t\nkey: []\n")), ["key"]);
        assert!(keys(&config("title: /t\nlabels: {host: /host}\n")).is_empty());
    }

    #[test]
    fn the_empty_pointer_is_only_for_alerts() {
        assert!(keys(&config("alerts: ''\ntitle: /t\nkey: /id\n")).is_empty());
        assert_eq!(keys(&config("title: ''\nkey: /id\n")), ["title"]);
    }
}
