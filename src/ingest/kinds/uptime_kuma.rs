//! The `uptime_kuma` source kind: Uptime Kuma's Webhook notification, body type JSON
//! (`{heartbeat, monitor, msg}`).
//!
//! - **Key**: the monitor's id (`monitor.id`, else `heartbeat.monitorID`). Ids are per Uptime Kuma
//!   instance: give each instance its own source.
//! - **Status** (`heartbeat.status`): `0` down is firing, critical; `2` pending (failing, retries left)
//!   is firing, warning, and becomes critical if the retries run out and Kuma reports down; `1` up is
//!   resolved. `3` maintenance is resolved too: the monitor is in a maintenance window someone planned,
//!   so it is nobody's emergency, and Kuma sends no "up" when a window ends on a healthy monitor (so an
//!   open ticket would otherwise stay open). A problem after the window is a new down notification.
//! - **No heartbeat** (the *Test* button, certificate-expiry reminders: only `msg`): accepted, no
//!   alert, since there is no monitor state to act on.
//! - **Severity** of a resolution is critical, the severity of the down it ends, so a plugin filtering
//!   by severity lets the resolution through wherever it let the problem through.
//! - **Labels**: `monitor` (name), `monitor_type`, `monitor_path` (group path), `hostname`, and the
//!   monitor's tags that have a value (`team: payments`; all tags are in the `tags` annotation).
//!
//! Kuma resends "still down" notifications with the resend's own heartbeat time, so alerts carry no
//! `starts_at` (a resend must not count as a new firing); an up's heartbeat time is its `ends_at`.

use serde_json::{Map, Value};

use super::json::{self, text};
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::domain::time::Timestamp;
use crate::ingest::parse::{raw_of, Context, Parsed};

/// Reads one request's payload.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json::read(body)?;
    let Some(obj) = value.as_object() else {
        return Err("expected a JSON object: Uptime Kuma's webhook body (type JSON)".into());
    };
    match obj.get("heartbeat") {
        Some(Value::Object(hb)) => Ok(Parsed {
            alerts: vec![one(obj, hb, &value, cx)?],
            rejected: Vec::new(),
        }),
        Some(Value::Null) | None if obj.contains_key("msg") => Ok(Parsed::default()),
        Some(Value::Null) | None => {
            Err("neither `heartbeat` nor `msg`: not an Uptime Kuma webhook".into())
        }
        Some(_) => Err("`heartbeat` is not an object".into()),
    }
}

fn one(
    obj: &Map<String, Value>,
    hb: &Map<String, Value>,
    whole: &Value,
    cx: &Context<'_>,
) -> Result<Alert, String> {
    let monitor = obj.get("monitor").and_then(Value::as_object);
    let mon = |name: &str| text(monitor.and_then(|m| m.get(name)));
    let beat = |name: &str| text(hb.get(name));

    let id = mon("id")
        .or_else(|| beat("monitorID"))
        .ok_or("no monitor id (`monitor.id` or `heartbeat.monitorID`)")?;
    let code = match hb.get("status") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or("no `heartbeat.status`")?;
    let (status, severity, state) = match code {
        0 => (Status::Firing, Severity::Critical, "down"),
        1 => (Status::Resolved, Severity::Critical, "up"),
        2 => (Status::Firing, Severity::Warning, "pending"),
        3 => (Status::Resolved, Severity::Critical, "in maintenance"),
        other => {
            return Err(format!(
                "heartbeat.status must be 0 (down), 1 (up), 2 (pending) or 3 (maintenance), not {other}"
            ))
        }
    };

    let name = mon("name");
    let title = format!(
        "{} is {state}",
        name.clone().unwrap_or_else(|| format!("Monitor {id}"))
    );

    let mut labels = Labels::new();
    for (label, field) in [
        ("monitor", "name"),
        ("monitor_type", "type"),
        ("monitor_path", "pathName"),
        ("hostname", "hostname"),
    ] {
        json::insert(&mut labels, label, mon(field));
    }
    let tags = monitor
        .and_then(|m| m.get("tags"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut tag_texts = Vec::new();
    for tag in tags {
        let Some(tag_name) = text(tag.get("name")) else {
            continue;
        };
        match text(tag.get("value")) {
            Some(v) => {
                tag_texts.push(format!("{tag_name}:{v}"));
                // Monitor fields above describe the monitor itself; a tag does not overwrite them.
                labels.entry(tag_name).or_insert(v);
            }
            None => tag_texts.push(tag_name),
        }
    }

    let mut annotations = Labels::new();
    for (key, v) in [
        ("message", beat("msg")),
        ("summary", text(obj.get("msg"))),
        ("time", beat("time")),
        ("local_time", beat("localDateTime")),
        ("timezone", beat("timezone")),
        ("ping_ms", beat("ping")),
        ("duration_s", beat("duration")),
        ("retries", beat("retries")),
        ("monitor_url", mon("url")),
        ("port", mon("port")),
        ("tags", Some(tag_texts.join(", ")).filter(|t| !t.is_empty())),
    ] {
        json::insert(&mut annotations, key, v);
    }

    let ends_at = match status {
        Status::Resolved => beat("time").as_deref().and_then(kuma_time),
        Status::Firing | Status::Acknowledged | Status::Updated => None,
    };

    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint: id,
        status,
        title,
        severity,
        labels,
        annotations,
        description: beat("msg").or_else(|| text(obj.get("msg"))),
        url: None,
        starts_at: None,
        ends_at,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(whole, cx),
    })
}

/// Kuma writes heartbeat times in UTC as `2026-03-02 10:00:00.412`; RFC 3339 is accepted too.
fn kuma_time(text: &str) -> Option<Timestamp> {
    let t = text.trim().replacen(' ', "T", 1);
    let has_zone = t.ends_with('Z') || t.get(19..).is_some_and(|rest| rest.contains(['+', '-']));
    let t = if has_zone { t } else { format!("{t}Z") };
    Timestamp::parse_optional(&t).ok().flatten()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, edited, keeping_raw, labels,
    };

    const DOWN: &str = include_str!("../../../examples/payloads/uptime_kuma/down.json");
    const UP: &str = include_str!("../../../examples/payloads/uptime_kuma/up.json");

    fn cx() -> Context<'static> {
        testing::cx("kuma", "2026-03-02T10:00:01Z")
    }

    fn one_alert(body: &str) -> Alert {
        testing::one_alert(parse(body.as_bytes(), &cx()))
    }

    fn with_status(body: &str, status: Value) -> String {
        edited(body, |v| v["heartbeat"]["status"] = status)
    }

    #[test]
    fn down_fixture() {
        let a = one_alert(DOWN);
        assert_alert(&a, "12", Status::Firing, Severity::Critical);
        assert_eq!(a.title, "Checkout API is down");
        let labels = labels(&[
            ("monitor", "Checkout API"),
            ("monitor_path", "Production / Checkout API"),
            ("monitor_type", "http"),
            ("team", "payments"),
        ]);
        assert_eq!(a.labels, labels);
        assert_eq!(
            a.description.as_deref(),
            Some("timeout of 48000ms exceeded")
        );
        assert_eq!(
            a.annotations["monitor_url"],
            "https://api.example.com/health"
        );
        assert_eq!(a.annotations["tags"], "team:payments, prod");
        assert_eq!(
            a.annotations["summary"],
            "[Checkout API] [🔴 Down] timeout of 48000ms exceeded"
        );
        assert!(!a.annotations.contains_key("ping_ms"));
        assert_eq!(a.starts_at, None);
        assert_eq!(a.ends_at, None);
    }

    #[test]
    fn up_fixture_resolves_the_same_key() {
        let fired = one_alert(DOWN);
        let a = one_alert(UP);
        assert_resolves(&fired, &a);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.title, "Checkout API is up");
        assert_eq!(a.labels, fired.labels);
        assert_eq!(a.annotations["ping_ms"], "112");
        assert_eq!(
            a.ends_at,
            Timestamp::parse_optional("2026-03-02T10:07:00.118Z").unwrap()
        );
    }

    #[test]
    fn pending_and_maintenance() {
        let pending = one_alert(&with_status(DOWN, 2.into()));
        assert_eq!(pending.status, Status::Firing);
        assert_eq!(pending.severity, Severity::Warning);
        assert_eq!(pending.title, "Checkout API is pending");
        let maintenance = one_alert(&with_status(DOWN, "3".into()));
        assert_eq!(maintenance.status, Status::Resolved);
        assert_eq!(maintenance.fingerprint, "12");
        assert_eq!(maintenance.title, "Checkout API is in maintenance");
        assert!(parse(with_status(DOWN, 4.into()).as_bytes(), &cx())
            .unwrap_err()
            .contains("not 4"));
    }

    #[test]
    fn test_button_and_message_only_notifications_yield_nothing() {
        let test = br#"{"heartbeat":null,"monitor":null,"msg":"My Webhook Testing"}"#;
        assert_eq!(parse(test, &cx()).unwrap(), Parsed::default());
        let cert = br#"{"msg":"[Checkout API][https://api.example.com] server certificate api.example.com will be expired in 14 days"}"#;
        assert_eq!(parse(cert, &cx()).unwrap(), Parsed::default());
    }

    #[test]
    fn heartbeat_alone_is_enough() {
        let a =
            one_alert(r#"{"heartbeat":{"monitorID":"7","status":0,"msg":"refused"},"msg":"x"}"#);
        assert_eq!(a.fingerprint, "7");
        assert_eq!(a.title, "Monitor 7 is down");
        assert_eq!(a.labels, Labels::new());
    }

    #[test]
    fn times() {
        let t = |s| kuma_time(s).map(Timestamp::to_rfc3339);
        assert_eq!(
            t("2026-03-02 10:00:00.412").as_deref(),
            Some("2026-03-02T10:00:00.412Z")
        );
        assert_eq!(
            t("2026-03-02 10:00:00").as_deref(),
            Some("2026-03-02T10:00:00.000Z")
        );
        assert_eq!(
            t("2026-03-02T11:00:00+01:00").as_deref(),
            Some("2026-03-02T10:00:00.000Z")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t(""), None);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(b"{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert!(parse(b"[]", &cx()).is_err());
        assert!(parse(b"{}", &cx()).is_err());
        assert!(parse(br#"{"heartbeat":"down"}"#, &cx()).is_err());
        assert!(parse(br#"{"heartbeat":{"status":0}}"#, &cx())
            .unwrap_err()
            .contains("monitor id"));
        assert!(parse(br#"{"heartbeat":{"monitorID":1}}"#, &cx())
            .unwrap_err()
            .contains("status"));
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["heartbeat", "monitor", "msg", "monitorID", "status", "time", "id", "name", "tags", "value",
              "type", "url", "hostname"],
            &["0", "1", "2026-03-02 10:00:00.412", "2026-03-02 10:00:00+", "x"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(p) = parse(&body, &keeping_raw(cx())) {
                for a in &p.alerts {
                    prop_assert!(!a.fingerprint.is_empty());
                    prop_assert!(a.status != Status::Acknowledged);
                }
            }
        }

        #[test]
        fn any_time_text_is_safe(s in "\\PC{0,30}") {
            let _ = kuma_time(&s);
        }
    }
}
