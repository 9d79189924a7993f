//! PagerDuty's Events API v1 (`POST /generic/2010-04-15/create_event.json`): what Alertmanager's
//! `pagerduty_configs` with `service_key` and older integrations send.
//!
//! Checked as PagerDuty's v1 page documents it: `service_key` a non-empty string; `event_type` one of
//! `trigger`, `acknowledge`, `resolve`; `incident_key` at most 255 characters, needed for
//! `acknowledge` and `resolve`; a trigger needs `description` (cut at 1024 characters, not refused).
//! Refusals carry v1's wording (`event_type is invalid (must be one of: trigger acknowledge resolve)`).
//!
//! The key is the v2 one (`<12 hex digits of sha256(service_key)>/<incident_key>`): an integration key
//! is the same secret under both names, so a v1 resolve closes what a v2 trigger with the same key
//! opened, as in PagerDuty. v1 has no severity: triggers are `error`. `details` become annotations,
//! `client_url` (else the first `link` context) the link. v1 has no `source` field either, so change
//! events never land on v1 tickets. The service key is never kept.

use serde_json::Value;

use super::json::{self};
use super::pagerduty::{key_prefix, text, truncate, Enqueued, Invalid, MAX_DEDUP_KEY, MAX_SUMMARY};
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::ingest::parse::{raw_of, Context};

/// Reads one v1 event; the `Enqueued::dedup_key` is v1's `incident_key`.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Enqueued, Invalid> {
    let mut value: Value = json::read(body).map_err(|e| Invalid::new(vec![e]))?;
    let Some(event) = value.as_object_mut() else {
        return Err(Invalid::new(vec!["the event must be a JSON object".into()]));
    };
    // The credential first, so nothing below can keep it; `routing_key` too, for senders that fill both.
    let service_key = event.remove("service_key");
    event.remove("routing_key");

    let mut errors = Vec::new();
    let service_key = match service_key {
        Some(Value::String(k)) if !k.trim().is_empty() => Some(k),
        Some(Value::String(_) | Value::Null) | None => {
            errors.push("service_key is missing or blank".to_string());
            None
        }
        Some(_) => {
            errors.push("service_key must be a string".to_string());
            None
        }
    };
    let status = match event.get("event_type").and_then(Value::as_str) {
        Some("trigger") => Some(Status::Firing),
        Some("acknowledge") => Some(Status::Acknowledged),
        Some("resolve") => Some(Status::Resolved),
        _ => {
            errors.push(
                "event_type is invalid (must be one of: trigger acknowledge resolve)".to_string(),
            );
            None
        }
    };
    let incident_key = match event.get("incident_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) if k.trim().is_empty() => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        Some(_) => {
            errors.push("incident_key must be a string".to_string());
            None
        }
    };
    if incident_key
        .as_ref()
        .is_some_and(|k| k.chars().count() > MAX_DEDUP_KEY)
    {
        errors.push(format!(
            "incident_key is too long (at most {MAX_DEDUP_KEY} characters)"
        ));
    }
    let follow_up = matches!(status, Some(Status::Acknowledged | Status::Resolved));
    if follow_up && incident_key.is_none() {
        errors.push(
            "incident_key is missing or blank (acknowledge and resolve events need the key of the incident)"
                .to_string(),
        );
    }
    let description = match event.get("description") {
        Some(Value::String(d)) if !d.trim().is_empty() => Some(d.clone()),
        Some(Value::String(_) | Value::Null) | None => None,
        Some(_) => {
            errors.push("description must be a string".to_string());
            None
        }
    };
    if status == Some(Status::Firing) && description.is_none() && errors.is_empty() {
        errors.push("description is missing or blank (trigger events need one)".to_string());
    }
    let (Some(service_key), Some(status), true) = (service_key, status, errors.is_empty()) else {
        if errors.is_empty() {
            errors.push("the event is invalid".to_string());
        }
        return Err(Invalid::new(errors));
    };

    let incident_key = incident_key.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let fingerprint = format!("{}/{incident_key}", key_prefix(&service_key));
    let raw = raw_of(&value, cx);
    let mut alert = Alert {
        source: cx.source.to_string(),
        fingerprint,
        status,
        title: incident_key.clone(),
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
    };
    // v1, like v2, ignores what follow-ups say beside their key: the ticket keeps the trigger's.
    if status == Status::Firing {
        alert.title = truncate(description.unwrap_or_default(), MAX_SUMMARY);
        alert.severity = Severity::Error;
        alert
            .labels
            .insert("severity".into(), Severity::Error.as_str().into());
        if let Some(client) = value.get("client").and_then(text) {
            alert.labels.insert("client".into(), client);
        }
        match value.get("details") {
            Some(Value::Object(details)) => {
                for (k, v) in details {
                    if let Some(v) = text(v) {
                        alert.annotations.insert(k.clone(), v);
                    }
                }
            }
            Some(other) => {
                if let Some(v) = text(other) {
                    alert.annotations.insert("details".into(), v);
                }
            }
            None => {}
        }
        alert.url = value
            .get("client_url")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .or_else(|| {
                value.get("contexts")?.as_array()?.iter().find_map(|c| {
                    if c.get("type")?.as_str()? != "link" {
                        return None;
                    }
                    Some(c.get("href")?.as_str()?.trim()).filter(|u| !u.is_empty())
                })
            })
            .map(str::to_string);
    }
    Ok(Enqueued {
        alert,
        dedup_key: incident_key,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ingest::kinds::pagerduty;
    use crate::ingest::kinds::testing::{self, edited, keeping_raw, raw_json};

    const TRIGGER: &str = include_str!("../../../examples/payloads/pagerduty/v1_trigger.json");
    const ACKNOWLEDGE: &str =
        include_str!("../../../examples/payloads/pagerduty/v1_acknowledge.json");
    const RESOLVE: &str = include_str!("../../../examples/payloads/pagerduty/v1_resolve.json");
    const SERVICE_KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

    fn cx() -> Context<'static> {
        testing::cx("pd", "2026-03-02T10:00:00Z")
    }

    fn ok(body: &str) -> Enqueued {
        parse(body.as_bytes(), &cx()).unwrap()
    }

    fn errors(body: &str) -> Vec<String> {
        let e = parse(body.as_bytes(), &cx()).unwrap_err();
        assert_eq!(e.message, "Event object is invalid");
        e.errors
    }

    #[test]
    fn docs_trigger_without_incident_key_gets_one() {
        let e = ok(TRIGGER);
        assert!(
            uuid::Uuid::parse_str(&e.dedup_key).is_ok(),
            "{}",
            e.dedup_key
        );
        let a = &e.alert;
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.severity, Severity::Error);
        assert_eq!(
            a.title,
            "FAILURE for production/HTTP on machine srv01.acme.com"
        );
        assert_eq!(a.labels["client"], "Sample Monitoring Service");
        assert_eq!(a.annotations["ping time"], "1500ms");
        assert_eq!(a.annotations["load avg"], "0.75");
        assert_eq!(a.url.as_deref(), Some("https://monitoring.service.com"));
        assert!(a.fingerprint.ends_with(&format!("/{}", e.dedup_key)));
        let no_client_url = edited(TRIGGER, |v| {
            v.as_object_mut().unwrap().remove("client_url");
        });
        assert_eq!(
            ok(&no_client_url).alert.url.as_deref(),
            Some("http://acme.pagerduty.com"),
            "the first link context"
        );
    }

    #[test]
    fn docs_follow_ups_hit_the_key_a_v2_trigger_would() {
        let ack = ok(ACKNOWLEDGE);
        assert_eq!(ack.dedup_key, "srv01/HTTP");
        assert_eq!(ack.alert.status, Status::Acknowledged);
        let res = ok(RESOLVE);
        assert_eq!(res.alert.status, Status::Resolved);
        assert_eq!(res.alert.fingerprint, ack.alert.fingerprint);
        let v2 = json!({"routing_key": SERVICE_KEY, "event_action": "trigger", "dedup_key": "srv01/HTTP",
            "payload": {"summary": "s", "source": "srv01", "severity": "info"}});
        let v2 = pagerduty::parse(v2.to_string().as_bytes(), &cx()).unwrap();
        assert_eq!(v2.alert.fingerprint, res.alert.fingerprint);
    }

    #[test]
    fn the_service_key_is_never_kept() {
        for body in [TRIGGER, ACKNOWLEDGE, RESOLVE] {
            let e = parse(body.as_bytes(), &keeping_raw(cx())).unwrap();
            let stored = serde_json::to_string(&e.alert).unwrap();
            assert!(!stored.contains(SERVICE_KEY), "{stored}");
            assert!(
                raw_json(&e.alert).get("event_type").is_some(),
                "the rest is kept"
            );
        }
    }

    #[test]
    fn refusals_in_v1_words() {
        assert_eq!(
            errors(&edited(RESOLVE, |v| v["event_type"] = json!("explode"))),
            ["event_type is invalid (must be one of: trigger acknowledge resolve)"]
        );
        let e = errors(&edited(RESOLVE, |v| {
            v.as_object_mut().unwrap().remove("incident_key");
        }));
        assert!(
            e[0].starts_with("incident_key is missing or blank"),
            "{e:?}"
        );
        let e = errors(&edited(TRIGGER, |v| {
            v.as_object_mut().unwrap().remove("description");
        }));
        assert!(e[0].starts_with("description is missing or blank"), "{e:?}");
        let e = errors(&edited(TRIGGER, |v| {
            v.as_object_mut().unwrap().remove("service_key");
        }));
        assert_eq!(e, ["service_key is missing or blank"]);
        let e = errors(&edited(ACKNOWLEDGE, |v| {
            v["incident_key"] = json!("k".repeat(256))
        }));
        assert!(e[0].starts_with("incident_key is too long"), "{e:?}");
        let long = edited(TRIGGER, |v| v["description"] = json!("x".repeat(2000)));
        assert_eq!(
            ok(&long).alert.title.chars().count(),
            1024,
            "cut, not refused"
        );
        for body in ["", "{", "[]", "7"] {
            assert!(!errors(body).is_empty());
        }
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));
}
