//! PagerDuty's Change Events API (`POST /v2/change/enqueue`): something changed (a deploy, a config
//! push) without being a problem. Not an alert: it opens no ticket and notifies no one; it is stored
//! and shown on the timelines of the tickets of the same system (`domain::change`).
//!
//! Checked as PagerDuty documents it: `routing_key` a non-empty string, `payload` an object with a
//! non-blank `payload.summary` (cut at 1024 characters, as for triggers). `payload.source`,
//! `payload.timestamp`, `payload.custom_details` and `links` are optional, and a malformed optional
//! field is left out rather than refused (an unreadable time is replaced by the time of receipt, a link
//! without `href` dropped): a cosmetic field is not worth losing the change for. Unknown fields are
//! ignored. The routing key is a credential and is never kept.

use std::time::Duration;

use serde_json::Value;

use super::json::{self, offset_time};
use super::pagerduty::{truncate, Invalid, MAX_SUMMARY};
use crate::domain::change::{ChangeDraft, Link};
use crate::domain::time::Timestamp;

/// The most links kept per change; PagerDuty documents no limit, a page shows a few.
const MAX_LINKS: usize = 20;

/// Reads one change event received at `now` through tocsin source `source`, to be shown to tickets
/// opening up to `window` after it.
pub fn parse(
    body: &[u8],
    source: &str,
    now: Timestamp,
    window: Duration,
) -> Result<ChangeDraft, Invalid> {
    let value: Value = json::read(body).map_err(|e| Invalid::new(vec![e]))?;
    let Some(event) = value.as_object() else {
        return Err(Invalid::new(vec!["the event must be a JSON object".into()]));
    };
    let mut errors = Vec::new();
    match event.get("routing_key") {
        Some(Value::String(k)) if !k.trim().is_empty() => {}
        Some(Value::String(_) | Value::Null) | None => {
            errors.push("'routing_key' is missing or blank".to_string())
        }
        Some(_) => errors.push("'routing_key' must be a string".to_string()),
    }
    let payload = match event.get("payload") {
        Some(Value::Object(p)) => Some(p),
        None | Some(Value::Null) => {
            errors.push("'payload' is missing".to_string());
            None
        }
        Some(_) => {
            errors.push("'payload' must be an object".to_string());
            None
        }
    };
    let summary = payload.and_then(|p| match p.get("summary") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_) | Value::Null) | None => {
            errors.push("'payload.summary' is missing or blank".to_string());
            None
        }
        Some(_) => {
            errors.push("'payload.summary' must be a string".to_string());
            None
        }
    });
    let (Some(payload), Some(summary), true) = (payload, summary, errors.is_empty()) else {
        if errors.is_empty() {
            errors.push("the event is invalid".to_string());
        }
        return Err(Invalid::new(errors));
    };

    let payload_source = payload
        .get("source")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let at = payload
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(offset_time)
        .unwrap_or(now);
    let details = payload
        .get("custom_details")
        .cloned()
        .unwrap_or(Value::Null);
    let links = event
        .get("links")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| {
                    let href = l.get("href")?.as_str()?.trim();
                    (!href.is_empty()).then(|| Link {
                        href: href.to_string(),
                        text: l
                            .get("text")
                            .and_then(Value::as_str)
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_string),
                    })
                })
                .take(MAX_LINKS)
                .collect()
        })
        .unwrap_or_default();
    Ok(ChangeDraft {
        source: source.to_string(),
        payload_source,
        summary: truncate(summary, MAX_SUMMARY),
        at,
        received_at: now,
        attach_until: now.plus(window),
        details,
        links,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::kinds::testing::edited;

    const DOCS: &str = include_str!("../../../examples/payloads/pagerduty/change.json");
    const GO_CLIENT: &str =
        include_str!("../../../examples/payloads/pagerduty/change_go_pagerduty.json");
    const HOUR: Duration = Duration::from_secs(3600);

    fn now() -> Timestamp {
        Timestamp::parse_optional("2026-03-02T10:00:00Z")
            .unwrap()
            .unwrap()
    }

    fn ok(body: &str) -> ChangeDraft {
        parse(body.as_bytes(), "pd", now(), HOUR).unwrap()
    }

    fn errors(body: &str) -> Vec<String> {
        let e = parse(body.as_bytes(), "pd", now(), HOUR).unwrap_err();
        assert_eq!(e.message, "Event object is invalid");
        e.errors
    }

    #[test]
    fn pagerduty_docs_example() {
        let c = ok(DOCS);
        assert_eq!(c.source, "pd");
        assert_eq!(
            c.summary,
            "Build Success: Increase snapshot create timeout to 30 seconds"
        );
        assert_eq!(
            c.payload_source.as_deref(),
            Some("acme-build-pipeline-tool-default-i-9999")
        );
        assert_eq!(
            c.at,
            Timestamp::parse_optional("2020-07-17T08:42:58.315Z")
                .unwrap()
                .unwrap()
        );
        assert_eq!(c.received_at, now());
        assert_eq!(c.attach_until, now().plus(HOUR));
        assert_eq!(c.details["build_number"], "2");
        assert_eq!(
            c.links,
            [Link {
                href: "https://acme.pagerduty.dev/build/2".into(),
                text: Some("View more details in Acme!".into()),
            }]
        );
        let stored = serde_json::to_string(&c).unwrap();
        assert!(
            !stored.contains("samplekeyhere"),
            "the routing key is not kept"
        );
    }

    #[test]
    fn go_client_capture_with_an_extra_field() {
        let c = ok(GO_CLIENT);
        assert_eq!(c.payload_source.as_deref(), Some("Test runner"));
        assert_eq!(
            c.at,
            Timestamp::parse_optional("2020-10-09T22:53:40Z")
                .unwrap()
                .unwrap()
        );
        assert_eq!(c.links.len(), 2);
        assert_eq!(c.details["DetailKey2"], "DetailValue2");
    }

    #[test]
    fn optional_fields_are_optional_and_forgiving() {
        let bare = ok(r#"{"routing_key":"k","payload":{"summary":"deployed"}}"#);
        assert_eq!(bare.payload_source, None);
        assert_eq!(bare.at, now(), "no timestamp: the time of receipt");
        assert_eq!(bare.details, Value::Null);
        assert!(bare.links.is_empty());
        let odd = edited(DOCS, |v| {
            v["payload"]["timestamp"] = json!("yesterday");
            v["payload"]["source"] = json!("  ");
            v["links"] = json!([{"text": "no href"}, {"href": " https://x.example/ "}, 7]);
        });
        let c = ok(&odd);
        assert_eq!(c.at, now());
        assert_eq!(c.payload_source, None);
        assert_eq!(
            c.links,
            [Link {
                href: "https://x.example/".into(),
                text: None
            }]
        );
        let long = edited(DOCS, |v| v["payload"]["summary"] = json!("é".repeat(2000)));
        assert_eq!(ok(&long).summary.chars().count(), 1024);
    }

    #[test]
    fn refusals_list_every_problem() {
        assert_eq!(
            errors(r#"{"payload":{}}"#),
            [
                "'routing_key' is missing or blank",
                "'payload.summary' is missing or blank"
            ]
        );
        assert_eq!(errors(r#"{"routing_key":"k"}"#), ["'payload' is missing"]);
        assert_eq!(
            errors(r#"{"routing_key":"k","payload":"x"}"#),
            ["'payload' must be an object"]
        );
        assert_eq!(
            errors(r#"{"routing_key":5,"payload":{"summary":3}}"#),
            [
                "'routing_key' must be a string",
                "'payload.summary' must be a string"
            ]
        );
        for body in ["", "[]", "null", "{"] {
            assert!(!errors(body).is_empty(), "{body:?}");
        }
    }

    crate::ingest::kinds::testing::arbitrary_bytes_never_panic!(|body| parse(
        body,
        "pd",
        now(),
        HOUR
    ));
}
