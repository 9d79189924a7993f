//! Generic sources with `mapping` rules: any JSON webhook, read with the JSON pointers the source's
//! configuration gives (`config::MappingConfig` documents every key).
//!
//! The body is one alert, or (with `alerts`) an array of them. As in `ingest::parse`, a body that
//! cannot be read fails the whole request, while an array item that cannot be read is reported by
//! position and its neighbours are still accepted. A value found at a pointer is used as text: strings
//! as they are (trimmed), numbers, booleans, arrays and objects as their JSON text; `null` and empty
//! strings count as nothing found.

use serde_json::Value;

use super::json;
use crate::config::MappingConfig;
use crate::domain::alert::{labels_fingerprint, Alert, Labels, Routing, Severity, Status};
use crate::ingest::parse::{raw_of, Context, Parsed};

/// Reads one request's payload with the source's rules.
pub fn parse(mapping: &MappingConfig, body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json::read(body)?;
    let Some(ptr) = mapping.alerts.as_deref() else {
        // The body is the alert: its problems are the request's problems.
        let alert = one(mapping, &value, cx)?;
        return Ok(Parsed {
            alerts: vec![alert],
            rejected: Vec::new(),
        });
    };
    let items = match value.pointer(ptr) {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("`{ptr}` (mapping.alerts) is not an array")),
        None => return Err(format!("nothing at `{ptr}` (mapping.alerts) in the body")),
    };
    let mut out = Parsed::default();
    for (i, item) in items.iter().enumerate() {
        match one(mapping, item, cx) {
            Ok(a) => out.alerts.push(a),
            Err(e) => out.rejected.push(format!("alerts[{i}]: {e}")),
        }
    }
    Ok(out)
}

/// The value at `pointer` as text, or `None` when there is nothing usable there.
fn text_at(item: &Value, pointer: &str) -> Option<String> {
    match item.pointer(pointer)? {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        other => Some(other.to_string()),
    }
}

fn one(m: &MappingConfig, item: &Value, cx: &Context<'_>) -> Result<Alert, String> {
    // Config validation requires `title`; a parser must still not panic on a config that skipped it.
    let title_ptr = m
        .title
        .as_deref()
        .ok_or("the mapping has no `title` pointer")?;
    let title = text_at(item, title_ptr).ok_or_else(|| format!("no title at `{title_ptr}`"))?;

    let mut labels = Labels::new();
    for (name, p) in &m.labels {
        if let Some(v) = text_at(item, p) {
            labels.insert(name.clone(), v);
        }
    }

    let fingerprint = match m.key_pointers() {
        Some(ps) => {
            let parts: Vec<Option<String>> = ps.iter().map(|p| text_at(item, p)).collect();
            if parts.iter().all(Option::is_none) {
                return Err(format!("no key: nothing at {}", ps.join(", ")));
            }
            // A missing part stays an empty slot, so `[a, -, c]` and `[a, c, -]` remain different keys.
            parts
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect::<Vec<_>>()
                .join("/")
        }
        None => {
            // Keying on nothing would put every alert of the source on one ticket.
            if labels.is_empty() {
                return Err(
                    "no key: none of the mapped labels has a value (set mapping.key)".into(),
                );
            }
            labels_fingerprint(&labels)
        }
    };

    let status = match m.status.as_deref() {
        None => Status::Firing,
        Some(p) => {
            let word = text_at(item, p).ok_or_else(|| format!("no status at `{p}`"))?;
            m.status_of(&word).ok_or_else(|| {
                format!("status `{word}` is not listed under firing, resolved or acknowledged")
            })?
        }
    };

    let severity = match m.severity.as_deref().and_then(|p| text_at(item, p)) {
        None => Severity::None,
        Some(v) => m.severity_of(&v),
    };

    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint,
        status,
        title,
        severity,
        labels,
        annotations: Labels::new(),
        description: m.description.as_deref().and_then(|p| text_at(item, p)),
        url: m.url.as_deref().and_then(|p| text_at(item, p)),
        starts_at: None,
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(item, cx),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, keeping_raw, labels, raw_json,
    };

    const MAPPED: &str = include_str!("../../../examples/payloads/generic/mapped.json");

    /// The mapping `examples/payloads/generic/mapped.json` is read with, as a source would write it:
    ///
    /// ```yaml
    /// mapping:
    ///   alerts: /events
    ///   title: /check/name
    ///   key: [/check/id, /region]
    ///   status: /state
    ///   firing: [down, degraded]
    ///   resolved: [up]
    ///   acknowledged: [acked]
    ///   severity: /level
    ///   severities: { sev1: critical, sev2: error }
    ///   labels: { region: /region, team: /owner/team, check: /check/id }
    ///   description: /output
    ///   url: /check/link
    /// ```
    const MAPPING: &str = "
alerts: /events
title: /check/name
key: [/check/id, /region]
status: /state
firing: [down, degraded]
resolved: [up]
acknowledged: [acked]
severity: /level
severities: { sev1: critical, sev2: error }
labels: { region: /region, team: /owner/team, check: /check/id }
description: /output
url: /check/link
";

    fn mapping(yaml: &str) -> MappingConfig {
        let m: MappingConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(m.problems(), Vec::<(String, String)>::new());
        m
    }

    fn cx() -> Context<'static> {
        testing::cx("statuspage", "2026-03-02T10:05:01Z")
    }

    #[test]
    fn mapped_fixture() {
        let p = parse(&mapping(MAPPING), MAPPED.as_bytes(), &cx()).unwrap();
        assert_eq!(p.alerts.len(), 3, "{:?}", p.rejected);

        let down = &p.alerts[0];
        assert_alert(down, "4411/eu-west-1", Status::Firing, Severity::Error);
        assert_eq!(down.title, "Checkout API latency");
        assert_eq!(
            down.labels,
            labels(&[
                ("check", "4411"),
                ("region", "eu-west-1"),
                ("team", "payments")
            ])
        );
        assert_eq!(
            down.description.as_deref(),
            Some("p95 latency 2.4 s, above 1 s for 5 minutes")
        );
        assert_eq!(
            down.url.as_deref(),
            Some("https://status.example.com/checks/4411")
        );
        assert_eq!(down.source, "statuspage");
        assert_eq!(down.received_at, cx().now);

        // Not in `severities`: tocsin's own normaliser reads `P3`. `Acked` matches `acked`.
        let acked = &p.alerts[1];
        assert_alert(
            acked,
            "87/eu-west-1",
            Status::Acknowledged,
            Severity::Warning,
        );

        // The resolution finds its firing: same key.
        let up = &p.alerts[2];
        assert_resolves(down, up);
        assert_eq!(up.severity, Severity::None);

        assert_eq!(
            p.rejected,
            [
                "alerts[3]: no title at `/check/name`",
                "alerts[4]: status `SIDEWAYS` is not listed under firing, resolved or acknowledged",
            ]
        );
    }

    #[test]
    fn body_as_one_alert_with_defaults() {
        let m = mapping("title: /name\nlabels: {host: /host, port: /port}\n");
        let p = parse(
            &m,
            br#"{"name":"  Disk full ","host":"db1","port":5432}"#,
            &cx(),
        )
        .unwrap();
        let a = &p.alerts[0];
        assert_eq!(a.title, "Disk full");
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.severity, Severity::None);
        assert_eq!(a.labels.get("port").map(String::as_str), Some("5432"));
        assert_eq!(a.fingerprint, labels_fingerprint(&a.labels));
        // A body that is not one alert fails the request as a whole.
        assert_eq!(
            parse(&m, br#"{"host":"db1"}"#, &cx()).unwrap_err(),
            "no title at `/name`"
        );
        assert!(parse(&m, br#"{"name":"x"}"#, &cx())
            .unwrap_err()
            .contains("labels"));
    }

    #[test]
    fn non_string_values_are_their_json_text() {
        let m = mapping(
            "title: /t\nkey: [/id, /missing, /tags]\nstatus: /up\nresolved: [true]\nseverity: /lvl\n\
             severities: {1: critical}\n",
        );
        let body = br#"{"t":"x","id":7,"tags":["a","b"],"up":true,"lvl":1}"#;
        let a = &parse(&m, body, &cx()).unwrap().alerts[0];
        assert_eq!(a.fingerprint, r#"7//["a","b"]"#);
        assert_eq!(a.status, Status::Resolved);
        assert_eq!(a.severity, Severity::Critical);
        let body = br#"{"t":"x","up":false}"#;
        assert_eq!(
            parse(&m, body, &cx()).unwrap_err(),
            "no key: nothing at /id, /missing, /tags"
        );
    }

    #[test]
    fn the_body_itself_may_be_the_array() {
        let m = mapping("alerts: ''\ntitle: /t\nkey: /k\n");
        let p = parse(
            &m,
            br#"[{"t":"a","k":"1"},{"t":"b"},{"t":"c","k":"3"}]"#,
            &cx(),
        )
        .unwrap();
        assert_eq!(p.alerts.len(), 2);
        assert_eq!(p.rejected, ["alerts[1]: no key: nothing at /k"]);
    }

    #[test]
    fn bad_bodies_are_errors() {
        let m = mapping(MAPPING);
        assert!(parse(&m, b"{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert_eq!(
            parse(&m, br#"{"events":{}}"#, &cx()).unwrap_err(),
            "`/events` (mapping.alerts) is not an array"
        );
        assert_eq!(
            parse(&m, b"[]", &cx()).unwrap_err(),
            "nothing at `/events` (mapping.alerts) in the body"
        );
        assert_eq!(
            parse(&m, br#"{"events":[]}"#, &cx()).unwrap(),
            Parsed::default()
        );
        // A status missing from an alert is not guessed.
        let p = parse(&m, br#"{"events":[{"check":{"id":1,"name":"n"}}]}"#, &cx()).unwrap();
        assert_eq!(p.rejected, ["alerts[0]: no status at `/state`"]);
        // Without a title pointer (a config that skipped validation): an error, not a panic.
        let bare = MappingConfig::default();
        assert!(parse(&bare, b"{}", &cx()).is_err());
    }

    #[test]
    fn raw_is_the_item_not_the_envelope() {
        let m = mapping(MAPPING);
        let p = parse(&m, MAPPED.as_bytes(), &keeping_raw(cx())).unwrap();
        let raw = raw_json(&p.alerts[0]);
        assert_eq!(raw.pointer("/check/id"), Some(&Value::from(4411)));
        assert!(raw.get("events").is_none());
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(&mapping(MAPPING), body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["events", "check", "id", "name", "region", "state", "level", "owner", "team", "output", "link"],
            &["down", "UP", "acked", "sev1", "P2", ""],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            let c = keeping_raw(cx());
            for m in [mapping(MAPPING), mapping("title: /name\nlabels: {r: /region}\n")] {
                if let Ok(p) = parse(&m, &body, &c) {
                    for a in &p.alerts {
                        prop_assert!(!a.fingerprint.is_empty());
                        prop_assert!(!a.title.is_empty());
                    }
                }
            }
        }
    }
}
