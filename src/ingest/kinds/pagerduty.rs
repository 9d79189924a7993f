//! The `pagerduty` source kind: PagerDuty's Events API v2 (`POST /v2/enqueue`), so that anything that can
//! send to PagerDuty (Uptime Kuma, Grafana's PagerDuty contact point, Zabbix's media type, scripts) can
//! send to tocsin by changing the URL.
//!
//! One request is one event. It is checked the way PagerDuty checks it, and refused with PagerDuty's
//! answer shape (`message` plus an `errors` list) so senders log something they understand:
//! - `routing_key` a non-empty string (PagerDuty's are 32 characters; any length is accepted here);
//! - `event_action` one of `trigger`, `acknowledge`, `resolve`;
//! - `dedup_key` at most 255 characters, and present for `acknowledge` and `resolve`;
//! - a `trigger` needs `payload.summary`, `payload.source` and `payload.severity` (`critical`, `error`,
//!   `warning` or `info`). A summary over 1024 characters is cut, as PagerDuty does, not refused.
//!
//! The key is `<first 12 hex digits of sha256(routing_key)>/<dedup_key>`: PagerDuty applies follow-ups
//! only to alerts triggered through the same routing key, so the same `dedup_key` under another key is
//! another ticket. The routing key is a credential, so it is never stored: only its hash is in the key,
//! and it is removed from the raw JSON kept for plugins. A trigger without `dedup_key` gets a fresh UUID
//! (v7), returned to the sender like PagerDuty does, so it can acknowledge or resolve later.
//!
//! `trigger` is firing, `acknowledge` acknowledged, `resolve` resolved. What an acknowledgement or
//! resolution of an unknown key does (nothing, as in PagerDuty) is the ticket state machine's business.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::json::{self, offset_time};
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::ingest::parse::{raw_of, Context};

/// An accepted event: the alert, and the `dedup_key` PagerDuty answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub alert: Alert,
    pub dedup_key: String,
}

/// An event PagerDuty would refuse with 400: `message` and the `errors` list of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub errors: Vec<String>,
}

/// PagerDuty's `message` for every refused event.
pub(crate) const INVALID: &str = "Event object is invalid";
pub(crate) const MAX_DEDUP_KEY: usize = 255;
pub(crate) const MAX_SUMMARY: usize = 1024;

impl Invalid {
    pub(crate) fn new(errors: Vec<String>) -> Self {
        Invalid {
            message: INVALID.to_string(),
            errors,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

/// A valid event, before it becomes an alert.
enum Checked {
    Trigger(Trigger),
    /// `acknowledge` or `resolve`, as the status they set.
    FollowUp(Status),
}

/// What a valid `trigger` says about the problem.
struct Trigger {
    summary: String,
    source: String,
    severity: Severity,
    severity_word: String,
}

/// Reads one event.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Enqueued, Invalid> {
    let mut value: Value = json::read(body).map_err(|e| Invalid::new(vec![e]))?;
    let Some(event) = value.as_object_mut() else {
        return Err(Invalid::new(vec!["the event must be a JSON object".into()]));
    };
    // Take the credentials out first, so nothing below can keep them by accident. `service_key` is the
    // v1 API's name for the same secret; senders that fill in both would otherwise have it stored.
    let routing_key = event.remove("routing_key");
    event.remove("service_key");

    let mut errors = Vec::new();
    let routing_key = match routing_key {
        Some(Value::String(k)) if !k.trim().is_empty() => Some(k),
        Some(Value::String(_) | Value::Null) | None => {
            errors.push("'routing_key' is missing or blank".to_string());
            None
        }
        Some(_) => {
            errors.push("'routing_key' must be a string".to_string());
            None
        }
    };
    let action = match event.get("event_action") {
        Some(Value::String(a)) => match a.as_str() {
            "trigger" => Some(Action::Trigger),
            "acknowledge" => Some(Action::Acknowledge),
            "resolve" => Some(Action::Resolve),
            "" => {
                errors.push("'event_action' is missing or blank".to_string());
                None
            }
            _ => {
                errors.push(
                    "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
                        .to_string(),
                );
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push("'event_action' is missing or blank".to_string());
            None
        }
        Some(_) => {
            errors.push("'event_action' must be a string".to_string());
            None
        }
    };
    let dedup_key = match event.get("dedup_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.trim().is_empty() => None,
        Some(Value::String(k)) => Some(k.clone()),
        // Some senders template a numeric id straight into the field; PagerDuty keys are strings, and
        // the number's text is the key they will send again.
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Some(_) => {
            errors.push("'dedup_key' must be a string".to_string());
            None
        }
    };
    if let Some(k) = &dedup_key {
        if k.chars().count() > MAX_DEDUP_KEY {
            errors.push(format!(
                "'dedup_key' is too long (at most {MAX_DEDUP_KEY} characters)"
            ));
        }
    }
    if matches!(action, Some(Action::Acknowledge | Action::Resolve)) && dedup_key.is_none() {
        errors.push(
            "'dedup_key' is missing or blank (acknowledge and resolve events need the key of the alert)"
                .to_string(),
        );
    }
    let checked = match action {
        Some(Action::Trigger) => {
            check_trigger(event.get("payload"), &mut errors).map(Checked::Trigger)
        }
        Some(Action::Acknowledge) => Some(Checked::FollowUp(Status::Acknowledged)),
        Some(Action::Resolve) => Some(Checked::FollowUp(Status::Resolved)),
        None => None,
    };
    let (Some(routing_key), Some(checked), true) = (routing_key, checked, errors.is_empty()) else {
        if errors.is_empty() {
            // Every path to here records why; this only keeps the answer from ever being an empty list.
            errors.push("the event is invalid".to_string());
        }
        return Err(Invalid::new(errors));
    };

    let dedup_key = dedup_key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let fingerprint = format!("{}/{dedup_key}", key_prefix(&routing_key));
    let raw = raw_of(&value, cx);
    let alert = match checked {
        Checked::Trigger(t) => triggered(&value, t, fingerprint, raw, cx),
        // PagerDuty ignores the payload of follow-ups; so does tocsin. The ticket keeps what the trigger
        // said, and this alert only needs its key and status.
        Checked::FollowUp(status) => Alert {
            source: cx.source.to_string(),
            fingerprint,
            status,
            title: dedup_key.clone(),
            severity: Severity::None,
            labels: Labels::new(),
            annotations: Labels::new(),
            description: None,
            url: None,
            starts_at: None,
            ends_at: None,
            received_at: cx.now,
            routing: Routing::default(),
            raw,
        },
    };
    Ok(Enqueued { alert, dedup_key })
}

/// Checks a trigger's `payload`, recording every problem (PagerDuty lists them all).
fn check_trigger(payload: Option<&Value>, errors: &mut Vec<String>) -> Option<Trigger> {
    let payload = match payload {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => {
            errors.push("'payload' is missing".to_string());
            return None;
        }
        Some(_) => {
            errors.push("'payload' must be an object".to_string());
            return None;
        }
    };
    let mut required = |name: &str| match payload.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_) | Value::Null) | None => {
            errors.push(format!("'payload.{name}' is missing or blank"));
            None
        }
        Some(_) => {
            errors.push(format!("'payload.{name}' must be a string"));
            None
        }
    };
    let summary = required("summary");
    let source = required("source");
    let severity_word = required("severity");
    let severity =
        severity_word
            .as_deref()
            .and_then(|w| match w.trim().to_ascii_lowercase().as_str() {
                "critical" => Some(Severity::Critical),
                "error" => Some(Severity::Error),
                "warning" => Some(Severity::Warning),
                "info" => Some(Severity::Info),
                _ => {
                    errors.push(
                    "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                        .to_string(),
                );
                    None
                }
            });
    Some(Trigger {
        summary: truncate(summary?, MAX_SUMMARY),
        source: source?,
        severity: severity?,
        severity_word: severity.map(Severity::as_str)?.to_string(),
    })
}

fn triggered(
    event: &Value,
    t: Trigger,
    fingerprint: String,
    raw: Option<String>,
    cx: &Context<'_>,
) -> Alert {
    let payload = event.get("payload");
    let field = |name: &str| payload.and_then(|p| p.get(name)).and_then(text);

    let mut labels = Labels::new();
    labels.insert("source".into(), t.source);
    for name in ["component", "group", "class"] {
        if let Some(v) = field(name) {
            labels.insert(name.to_string(), v);
        }
    }
    labels.insert("severity".into(), t.severity_word);

    let mut annotations = Labels::new();
    match payload.and_then(|p| p.get("custom_details")) {
        // One level, each value as text: annotations are flat strings, and nested objects still read
        // well as compact JSON.
        Some(Value::Object(details)) => {
            for (k, v) in details {
                if let Some(v) = text(v) {
                    annotations.insert(k.clone(), v);
                }
            }
        }
        Some(other) => {
            if let Some(v) = text(other) {
                annotations.insert("custom_details".into(), v);
            }
        }
        None => {}
    }

    let url = event
        .get("client_url")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .or_else(|| {
            event
                .get("links")?
                .as_array()?
                .iter()
                .find_map(|l| Some(l.get("href")?.as_str()?.trim()).filter(|u| !u.is_empty()))
        })
        .map(str::to_string);
    // ISO 8601 as PagerDuty documents it, including its own example's `+0000` offset. A time that
    // cannot be read is left out, not refused: PagerDuty uses the time of receipt when there is none,
    // and refusing an event over a cosmetic field would lose the alert.
    let starts_at = payload
        .and_then(|p| p.get("timestamp"))
        .and_then(Value::as_str)
        .and_then(offset_time);

    Alert {
        source: cx.source.to_string(),
        fingerprint,
        status: Status::Firing,
        title: t.summary,
        severity: t.severity,
        labels,
        annotations,
        description: None,
        url,
        starts_at,
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw,
    }
}

/// Namespaces dedup keys by routing key without storing the routing key.
pub(crate) fn key_prefix(routing_key: &str) -> String {
    hex::encode(Sha256::digest(routing_key.as_bytes()))[..12].to_string()
}

/// A value as annotation text: strings as they are, other scalars and structures as JSON; `null` and
/// blank strings are nothing.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()).filter(|s| !s.trim().is_empty()),
        other => Some(other.to_string()),
    }
}

pub(crate) fn truncate(mut s: String, max_chars: usize) -> String {
    if let Some((at, _)) = s.char_indices().nth(max_chars) {
        s.truncate(at);
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Map;

    use super::*;
    use crate::domain::time::Timestamp;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, edited, keeping_raw, raw_json,
    };

    const TRIGGER: &str = include_str!("../../../examples/payloads/pagerduty/trigger.json");
    const ACKNOWLEDGE: &str = include_str!("../../../examples/payloads/pagerduty/acknowledge.json");
    const RESOLVE: &str = include_str!("../../../examples/payloads/pagerduty/resolve.json");
    const ROUTING_KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

    fn cx() -> Context<'static> {
        testing::cx("pd", "2026-03-02T10:00:00Z")
    }

    fn ok(body: &str) -> Enqueued {
        parse(body.as_bytes(), &cx()).unwrap()
    }

    fn errors(body: &str) -> Vec<String> {
        let e = parse(body.as_bytes(), &cx()).unwrap_err();
        assert_eq!(e.message, "Event object is invalid");
        assert!(!e.errors.is_empty());
        e.errors
    }

    fn with(body: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
        edited(body, |v| edit(v.as_object_mut().unwrap()))
    }

    #[test]
    fn trigger_fixture() {
        let e = ok(TRIGGER);
        assert_eq!(e.dedup_key, "kuma/monitor/17");
        let a = &e.alert;
        let key = format!("{}/kuma/monitor/17", key_prefix(ROUTING_KEY));
        assert_alert(a, &key, Status::Firing, Severity::Critical);
        assert_eq!(a.fingerprint.split('/').next().unwrap().len(), 12);
        assert_eq!(a.source, "pd");
        assert_eq!(
            a.title,
            "[payments-api] is down: connect ETIMEDOUT 10.4.2.19:443"
        );
        assert_eq!(a.labels["source"], "payments-api.internal.example.com");
        assert_eq!(a.labels["component"], "https");
        assert_eq!(a.labels["group"], "production");
        assert_eq!(a.labels["class"], "uptime");
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.annotations["response_ms"], "30000");
        assert_eq!(a.annotations["monitor"], "payments-api");
        assert_eq!(a.annotations["checks"], r#"{"dns":"ok","tls":"timeout"}"#);
        assert!(
            !a.annotations.contains_key("cert_days_left"),
            "null is nothing"
        );
        assert_eq!(
            a.url.as_deref(),
            Some("https://status.example.com/dashboard/17")
        );
        assert_eq!(
            a.starts_at,
            Timestamp::parse_optional("2026-03-02T09:55:12.400Z").unwrap()
        );
        assert_eq!(a.ends_at, None);
    }

    #[test]
    fn acknowledge_and_resolve_fixtures_hit_the_trigger_key() {
        let fired = ok(TRIGGER).alert;
        let ack = ok(ACKNOWLEDGE);
        assert_eq!(ack.alert.fingerprint, fired.fingerprint);
        assert_eq!(ack.alert.status, Status::Acknowledged);
        assert_eq!(ack.dedup_key, "kuma/monitor/17");
        let res = ok(RESOLVE);
        assert_resolves(&fired, &res.alert);
        assert_eq!(res.alert.starts_at, None);
    }

    #[test]
    fn another_routing_key_is_another_ticket() {
        let other = with(RESOLVE, |e| {
            e.insert(
                "routing_key".into(),
                "R0TH3RK3Y0000000000000000000000".into(),
            );
        });
        assert_ne!(ok(&other).alert.fingerprint, ok(RESOLVE).alert.fingerprint);
    }

    #[test]
    fn routing_key_is_never_kept() {
        let c = keeping_raw(cx());
        let with_v1 = with(TRIGGER, |e| {
            e.insert("service_key".into(), ROUTING_KEY.into());
        });
        for body in [TRIGGER, ACKNOWLEDGE, RESOLVE, &with_v1] {
            let e = parse(body.as_bytes(), &c).unwrap();
            let stored = serde_json::to_string(&e.alert).unwrap();
            assert!(!stored.contains(ROUTING_KEY), "{stored}");
            let raw = raw_json(&e.alert);
            assert!(raw.get("routing_key").is_none());
            assert!(raw.get("event_action").is_some(), "the rest is kept");
        }
    }

    #[test]
    fn trigger_without_dedup_key_gets_a_uuid() {
        let body = with(TRIGGER, |e| {
            e.remove("dedup_key");
        });
        let a = ok(&body);
        let b = ok(&body);
        let id = uuid::Uuid::parse_str(&a.dedup_key).unwrap();
        assert_eq!(id.get_version_num(), 7);
        assert_ne!(a.dedup_key, b.dedup_key, "each such trigger is a new alert");
        assert!(a.alert.fingerprint.ends_with(&format!("/{}", a.dedup_key)));
        let blank = with(TRIGGER, |e| {
            e.insert("dedup_key".into(), "  ".into());
        });
        assert!(uuid::Uuid::parse_str(&ok(&blank).dedup_key).is_ok());
    }

    #[test]
    fn long_summary_is_cut_not_refused() {
        let long = "é".repeat(1500);
        let body = with(TRIGGER, |e| {
            e.get_mut("payload").unwrap()["summary"] = long.clone().into();
        });
        assert_eq!(ok(&body).alert.title.chars().count(), 1024);
    }

    #[test]
    fn refusals_say_what_pagerduty_says() {
        let e = errors(&with(TRIGGER, |e| {
            e.remove("routing_key");
        }));
        assert_eq!(e, ["'routing_key' is missing or blank"]);
        let e = errors(&with(TRIGGER, |e| {
            e.insert("routing_key".into(), 12.into());
        }));
        assert_eq!(e, ["'routing_key' must be a string"]);
        let e = errors(&with(TRIGGER, |e| {
            e.insert("event_action".into(), "escalate".into());
        }));
        assert!(e[0].starts_with("'event_action' is invalid"), "{e:?}");
        let e = errors(&with(TRIGGER, |e| {
            e.remove("event_action");
        }));
        assert_eq!(e, ["'event_action' is missing or blank"]);
        let e = errors(&with(TRIGGER, |e| {
            e.insert("dedup_key".into(), "k".repeat(256).into());
        }));
        assert!(e[0].starts_with("'dedup_key' is too long"), "{e:?}");
        // 255 is fine.
        ok(&with(TRIGGER, |e| {
            e.insert("dedup_key".into(), "k".repeat(255).into());
        }));
        let e = errors(&with(RESOLVE, |e| {
            e.remove("dedup_key");
        }));
        assert!(e[0].starts_with("'dedup_key' is missing or blank"), "{e:?}");
        let e = errors(&with(ACKNOWLEDGE, |e| {
            e.insert("dedup_key".into(), Value::Null);
        }));
        assert!(e[0].starts_with("'dedup_key' is missing or blank"), "{e:?}");

        // Every problem of a trigger at once.
        let e = errors(&with(TRIGGER, |e| {
            let p = e.get_mut("payload").unwrap().as_object_mut().unwrap();
            p.remove("summary");
            p.insert("source".into(), " ".into());
            p.insert("severity".into(), "disaster".into());
        }));
        assert_eq!(
            e,
            [
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)",
            ]
        );
        let e = errors(&with(TRIGGER, |e| {
            e.remove("payload");
        }));
        assert_eq!(e, ["'payload' is missing"]);
        let e = errors(&with(TRIGGER, |e| {
            e.insert("payload".into(), "down".into());
        }));
        assert_eq!(e, ["'payload' must be an object"]);
        let e = errors(&with(TRIGGER, |e| {
            e.get_mut("payload").unwrap()["summary"] = 5.into();
        }));
        assert_eq!(e, ["'payload.summary' must be a string"]);
        let e = errors(r#"{"event_action":"resolve"}"#);
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn unreadable_bodies_are_refused() {
        for body in ["", "{", "not json", "[]", "null", "\"trigger\"", "3"] {
            errors(body);
        }
        assert!(errors("{")[0].starts_with("malformed JSON"));
    }

    #[test]
    fn lenient_where_pagerduty_senders_differ() {
        // Severity in capitals, a numeric dedup key, no client_url but links, PagerDuty's own `+0000`.
        let body = with(TRIGGER, |e| {
            e.insert("dedup_key".into(), 4711.into());
            e.remove("client_url");
            let p = e.get_mut("payload").unwrap();
            p["severity"] = "WARNING".into();
            p["timestamp"] = "2015-07-17T08:42:58.315+0000".into();
            p["custom_details"] = "free text".into();
        });
        let e = ok(&body);
        assert_eq!(e.dedup_key, "4711");
        assert_eq!(e.alert.severity, Severity::Warning);
        assert_eq!(e.alert.labels["severity"], "warning");
        assert_eq!(
            e.alert.url.as_deref(),
            Some("https://wiki.example.com/runbooks/payments-api")
        );
        assert_eq!(
            e.alert.starts_at,
            Timestamp::parse_optional("2015-07-17T08:42:58.315Z").unwrap()
        );
        assert_eq!(e.alert.annotations["custom_details"], "free text");
        let odd_time = with(TRIGGER, |e| {
            e.get_mut("payload").unwrap()["timestamp"] = "last tuesday".into();
        });
        assert_eq!(ok(&odd_time).alert.starts_at, None);
    }

    #[test]
    fn helpers() {
        assert_eq!(truncate("abc".into(), 5), "abc");
        assert_eq!(truncate("abcdef".into(), 3), "abc");
        assert_eq!(
            offset_time("2026-03-02T09:00:00-0130"),
            Timestamp::parse_optional("2026-03-02T10:30:00Z").unwrap()
        );
        assert_eq!(offset_time("-0000"), None);
        assert_eq!(offset_time("0001-01-01T00:00:00Z"), None);
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["routing_key", "event_action", "dedup_key", "payload", "summary", "source", "severity",
              "timestamp", "custom_details", "links", "href", "client_url"],
            &["trigger", "acknowledge", "resolve", "critical", "info", "2015-07-17T08:42:58.315+0000"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            match parse(&body, &keeping_raw(cx())) {
                Ok(e) => {
                    let suffix = format!("/{}", e.dedup_key);
                    prop_assert!(e.alert.fingerprint.ends_with(&suffix));
                    prop_assert!(e.dedup_key.chars().count() <= 255);
                    prop_assert!(raw_json(&e.alert).get("routing_key").is_none());
                }
                Err(e) => {
                    prop_assert_eq!(e.message.as_str(), "Event object is invalid");
                    prop_assert!(!e.errors.is_empty());
                }
            }
        }

        #[test]
        fn any_valid_trigger_is_accepted(
            key in "[A-Za-z0-9]{1,40}",
            summary in ".{1,40}",
            sev in prop_oneof![Just("critical"), Just("error"), Just("warning"), Just("info")],
        ) {
            prop_assume!(!summary.trim().is_empty());
            let body = serde_json::json!({
                "routing_key": key, "event_action": "trigger",
                "payload": {"summary": summary, "source": "h", "severity": sev}
            });
            let e = parse(body.to_string().as_bytes(), &cx()).unwrap();
            prop_assert_eq!(e.alert.status, Status::Firing);
            prop_assert_eq!(e.alert.severity.as_str(), sev);
        }
    }
}
