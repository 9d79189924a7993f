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
//! - **Certificate expiry reminders** come with only `msg` (no heartbeat, no monitor):
//!   `[<monitor>][<url>] <type> certificate <CN> will expire in <N> days` (older Kuma: `... will be
//!   expired in <N> days`, or `Certificate will be expired in <N> days` without type and CN). Each is
//!   a firing **warning** keyed `certificate:<monitor>:<url>:<CN>` (one ticket per monitor and
//!   certificate; Kuma checks every certificate of the chain). Kuma sends one reminder per threshold
//!   (21, 14 and 7 days by default) and **nothing when the certificate is renewed**: it only forgets
//!   its reminders when the certificate's fingerprint changes. So a reminder's alert ends
//!   (`ends_at`) when the certificate would expire, and tocsin resolves the ticket then unless a
//!   later reminder moved that time: a renewed certificate gets no more reminders, so its ticket
//!   resolves by the old expiry date at the latest (or when someone resolves it after renewing). A
//!   certificate that really expires makes the monitor's own check fail, and its down opens the
//!   monitor's ticket, critical.
//! - **Other notifications without a heartbeat** (the *Test* button's `... Testing`): accepted, no
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
        Some(Value::Null) | None if obj.contains_key("msg") => Ok(Parsed {
            alerts: certificate(obj, &value, cx).into_iter().collect(),
            rejected: Vec::new(),
        }),
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

/// What a certificate expiry reminder's `msg` says.
#[derive(Debug, PartialEq, Eq)]
struct Reminder<'a> {
    monitor: &'a str,
    url: &'a str,
    /// `server`, `intermediate CA`...; older Kuma did not say.
    kind: Option<&'a str>,
    /// The certificate's common name; older Kuma did not say.
    common_name: Option<&'a str>,
    days: i64,
}

/// Reads `[<monitor>][<url>] <type> certificate <CN> will expire in <N> days` (Kuma 2) and the
/// older `... will be expired in <N> days` and `Certificate will be expired in <N> days`.
fn reminder(msg: &str) -> Option<Reminder<'_>> {
    let rest = msg.trim().strip_prefix('[')?;
    // The URL has no `][`; a monitor name might, so split at the last one before the URL's `] `.
    let (head, sentence) = rest.split_once("] ")?;
    let (monitor, url) = head.rsplit_once("][")?;
    let (subject, days) = sentence
        .rsplit_once(" will expire in ")
        .or_else(|| sentence.rsplit_once(" will be expired in "))?;
    let days: i64 = days.strip_suffix(" days")?.trim().parse().ok()?;
    let (kind, common_name) = if subject.eq_ignore_ascii_case("certificate") {
        (None, None)
    } else {
        let (kind, cn) = subject.split_once(" certificate ")?;
        (Some(kind.trim()), Some(cn.trim()))
    };
    Some(Reminder {
        monitor: monitor.trim(),
        url: url.trim(),
        kind: kind.filter(|k| !k.is_empty()),
        common_name: common_name.filter(|c| !c.is_empty()),
        days,
    })
}

/// A certificate expiry reminder as a warning (see the module's notes); other message-only
/// notifications are nothing.
fn certificate(obj: &Map<String, Value>, whole: &Value, cx: &Context<'_>) -> Option<Alert> {
    let msg = text(obj.get("msg"))?;
    let r = reminder(&msg)?;
    let monitor = Some(r.monitor)
        .filter(|m| !m.is_empty())
        .unwrap_or("monitor");
    let cn = r.common_name.unwrap_or_default();
    // Kuma reminds within weeks of the expiry; the cap only keeps nonsense from overflowing.
    let days = r.days.clamp(0, 36_500);
    let title = match r.common_name {
        Some(cn) => format!("Certificate {cn} of {monitor} expires in {days} days"),
        None => format!("Certificate of {monitor} expires in {days} days"),
    };
    // Whole days from now: Kuma counts them from its check, moments before sending.
    let expires = cx
        .now
        .plus(std::time::Duration::from_secs(days.unsigned_abs() * 86_400));

    let mut labels = Labels::new();
    json::insert(&mut labels, "monitor", Some(monitor.to_string()));
    json::insert(
        &mut labels,
        "certificate",
        r.common_name.map(str::to_string),
    );
    json::insert(&mut labels, "certificate_type", r.kind.map(str::to_string));
    let mut annotations = Labels::new();
    json::insert(&mut annotations, "summary", Some(msg.clone()));
    json::insert(&mut annotations, "days_remaining", Some(days.to_string()));
    json::insert(&mut annotations, "expires_at", Some(expires.to_rfc3339()));
    json::insert(
        &mut annotations,
        "monitor_url",
        Some(r.url.to_string()).filter(|u| !u.is_empty()),
    );

    Some(Alert {
        source: cx.source.to_string(),
        fingerprint: format!("certificate:{monitor}:{}:{cn}", r.url),
        status: Status::Firing,
        title,
        severity: Severity::Warning,
        labels,
        annotations,
        description: Some(msg),
        url: None,
        // Every reminder is the same problem: a later one (fewer days) is a resend that updates the
        // days and the end.
        starts_at: None,
        ends_at: Some(expires),
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
    const CERTIFICATE: &str =
        include_str!("../../../examples/payloads/uptime_kuma/certificate_expiry.json");

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
    fn test_button_and_other_message_only_notifications_yield_nothing() {
        let test = br#"{"heartbeat":null,"monitor":null,"msg":"My Webhook Testing"}"#;
        assert_eq!(parse(test, &cx()).unwrap(), Parsed::default());
        let other =
            br#"{"msg":"[Checkout API][https://api.example.com] something else in 3 days"}"#;
        assert_eq!(parse(other, &cx()).unwrap(), Parsed::default());
    }

    #[test]
    fn certificate_expiry_fixture_is_a_warning_until_the_expiry() {
        let a = one_alert(CERTIFICATE);
        assert_alert(
            &a,
            "certificate:Checkout API:https://api.example.com/health:api.example.com",
            Status::Firing,
            Severity::Warning,
        );
        assert_eq!(
            a.title,
            "Certificate api.example.com of Checkout API expires in 14 days"
        );
        let labels = labels(&[
            ("certificate", "api.example.com"),
            ("certificate_type", "server"),
            ("monitor", "Checkout API"),
        ]);
        assert_eq!(a.labels, labels);
        assert_eq!(a.annotations["days_remaining"], "14");
        assert_eq!(
            a.annotations["monitor_url"],
            "https://api.example.com/health"
        );
        assert_eq!(a.starts_at, None);
        // The ticket lasts until the certificate would expire, unless a later reminder moves it.
        let expiry = Timestamp::parse_optional("2026-03-16T10:00:01Z").unwrap();
        assert_eq!(a.ends_at, expiry);
        assert_eq!(a.annotations["expires_at"], expiry.unwrap().to_rfc3339());

        // The next reminder is the same ticket, with fewer days.
        let later = one_alert(&CERTIFICATE.replace("14 days", "7 days"));
        assert_eq!(later.fingerprint, a.fingerprint);
        assert_eq!(
            later.title,
            "Certificate api.example.com of Checkout API expires in 7 days"
        );
        // Another certificate of the chain is its own ticket.
        let intermediate = one_alert(&CERTIFICATE.replace(
            "server certificate api.example.com",
            "intermediate CA certificate R11",
        ));
        assert_ne!(intermediate.fingerprint, a.fingerprint);
        assert_eq!(intermediate.labels["certificate_type"], "intermediate CA");
    }

    #[test]
    fn certificate_reminders_of_older_kumas() {
        let r = |m| reminder(m).unwrap();
        let v1 =
            r("[Checkout API][https://api.example.com] Certificate will be expired in 21 days");
        assert_eq!(
            v1,
            Reminder {
                monitor: "Checkout API",
                url: "https://api.example.com",
                kind: None,
                common_name: None,
                days: 21
            }
        );
        let v15 = r("[a][b][https://x/] server certificate x.org will be expired in 3 days");
        assert_eq!((v15.monitor, v15.url), ("a][b", "https://x/"));
        assert_eq!(v15.common_name, Some("x.org"));
        let old = br#"{"heartbeat":null,"monitor":null,"msg":"[Checkout API][https://api.example.com] Certificate will be expired in 21 days"}"#;
        let a = testing::one_alert(parse(old, &cx()));
        assert_eq!(a.title, "Certificate of Checkout API expires in 21 days");
        assert_eq!(
            a.fingerprint,
            "certificate:Checkout API:https://api.example.com:"
        );
        for not in [
            "[a][b] server certificate x will expire in many days",
            "[a] server certificate x will expire in 3 days",
            "a][b] server certificate x will expire in 3 days",
            "[a][b] server cert x will expire in 3 days",
        ] {
            assert_eq!(reminder(not), None, "{not}");
        }
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
