//! Turning each source kind's payload into normalised [`Alert`]s. Pure: bytes and a context in, alerts out.
//!
//! A payload that cannot be read at all is an error for the whole request. Within a readable payload,
//! each alert stands alone: valid ones are accepted even when a neighbour is invalid (Alertmanager does
//! the same), and the invalid ones are reported back by position.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::alert::Routing;
use crate::domain::alert::{
    labels_and_title_fingerprint, labels_fingerprint, Alert, Labels, Severity, Status,
};
use crate::domain::time::Timestamp;

/// What a parser needs besides the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub source: &'a str,
    pub now: Timestamp,
    /// Lease for Prometheus alerts without `endsAt`.
    pub resolve_timeout: Duration,
    /// Keep each alert's own JSON (for plugins configured with `raw: true`).
    pub keep_raw: bool,
}

/// Largest raw JSON kept per alert; larger ones are not passed on.
pub const MAX_RAW: usize = 256 * 1024;

pub(crate) fn raw_of(item: &Value, cx: &Context<'_>) -> Option<String> {
    if !cx.keep_raw {
        return None;
    }
    Some(item.to_string()).filter(|r| r.len() <= MAX_RAW)
}

/// The readable part of a payload.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub alerts: Vec<Alert>,
    /// `alerts[3]: at least one label pair required`, one per rejected alert.
    pub rejected: Vec<String>,
}

/// The body as JSON; what cannot be read is `malformed JSON: …`.
pub(crate) fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))
}

/// An RFC 3339 field: absent or empty is `None`, and so is Go's zero time; anything else unreadable is
/// an error naming the field.
pub(crate) fn time_field(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, String> {
    match value {
        None | Some("") => Ok(None),
        Some(text) => Timestamp::parse_optional(text).map_err(|e| format!("{name}: {e}")),
    }
}

/// An Alertmanager-style `status`: `firing` or `resolved`, nothing else.
pub(crate) fn firing_or_resolved(status: &str) -> Result<Status, String> {
    match status {
        "firing" => Ok(Status::Firing),
        "resolved" => Ok(Status::Resolved),
        other => Err(format!("status must be firing or resolved, not `{other}`")),
    }
}

fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    if let Some(bad) = labels.keys().find(|k| k.is_empty()) {
        return Err(format!("invalid label name `{bad}`"));
    }
    Ok(())
}

/// Title people see: the summary if the rule has one, else the alert name.
fn title_of(labels: &Labels, annotations: &Labels, fallback: &str) -> String {
    annotations
        .get("summary")
        .or_else(|| annotations.get("title"))
        .or_else(|| labels.get("alertname"))
        .cloned()
        .unwrap_or_else(|| fallback.to_string())
}

fn severity_of(labels: &Labels) -> Severity {
    labels
        .get("severity")
        .or_else(|| labels.get("priority"))
        .map(|s| Severity::parse_lenient(s))
        .unwrap_or(Severity::None)
}

/// An alert as Prometheus and amtool post it to `/api/v2/alerts` (and `/api/v1/alerts`).
#[derive(Deserialize)]
struct PostableAlert {
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// Prometheus / Alertmanager API v2 semantics: the label set is the identity, zero timestamps are
/// absent, a missing `endsAt` is a lease of `resolve_timeout`, and an alert whose `endsAt` has passed is
/// resolved.
pub fn prometheus(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let items: Vec<Value> = json(body).map_err(|e| {
        if e.contains("invalid type") {
            "expected a JSON array of alerts".to_string()
        } else {
            e
        }
    })?;
    let mut out = Parsed::default();
    for (i, item) in items.into_iter().enumerate() {
        match prometheus_one(item, cx) {
            Ok(a) => out.alerts.push(a),
            Err(e) => out.rejected.push(format!("alerts[{i}]: {e}")),
        }
    }
    Ok(out)
}

fn prometheus_one(item: Value, cx: &Context<'_>) -> Result<Alert, String> {
    let raw = raw_of(&item, cx);
    let p: PostableAlert = serde_json::from_value(item).map_err(|e| e.to_string())?;
    check_labels(&p.labels)?;
    let starts_at = time_field("startsAt", p.starts_at.as_deref())?;
    let explicit_end = time_field("endsAt", p.ends_at.as_deref())?;
    if let (Some(s), Some(e)) = (starts_at, explicit_end) {
        if e < s {
            return Err("endsAt is before startsAt".into());
        }
    }
    let ends_at = explicit_end.unwrap_or_else(|| cx.now.plus(cx.resolve_timeout));
    let status = if ends_at <= cx.now {
        Status::Resolved
    } else {
        Status::Firing
    };
    let fingerprint = labels_fingerprint(&p.labels);
    Ok(Alert {
        source: cx.source.to_string(),
        title: title_of(&p.labels, &p.annotations, &fingerprint),
        severity: severity_of(&p.labels),
        description: p.annotations.get("description").cloned(),
        fingerprint,
        status,
        labels: p.labels,
        annotations: p.annotations,
        url: p.generator_url.filter(|u| !u.is_empty()),
        starts_at,
        ends_at: Some(ends_at),
        received_at: cx.now,
        routing: Routing::default(),
        raw,
    })
}

/// Alertmanager's webhook payload, version 4.
#[derive(Deserialize)]
struct Webhook {
    version: String,
    #[serde(default)]
    alerts: Vec<Value>,
}

#[derive(Deserialize)]
struct WebhookAlert {
    status: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// Each alert in the group is its own ticket key (its fingerprint); `groupKey` is only the envelope.
/// Firing alerts carry no lease: Alertmanager tells us when they resolve.
pub fn alertmanager(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let hook: Webhook = json(body)?;
    if hook.version != "4" {
        return Err(format!(
            "unsupported webhook version `{}`; tocsin reads version 4",
            hook.version
        ));
    }
    let mut out = Parsed::default();
    for (i, item) in hook.alerts.into_iter().enumerate() {
        match alertmanager_one(item, cx) {
            Ok(a) => out.alerts.push(a),
            Err(e) => out.rejected.push(format!("alerts[{i}]: {e}")),
        }
    }
    Ok(out)
}

fn alertmanager_one(item: Value, cx: &Context<'_>) -> Result<Alert, String> {
    let raw = raw_of(&item, cx);
    let w: WebhookAlert = serde_json::from_value(item).map_err(|e| e.to_string())?;
    check_labels(&w.labels)?;
    let status = firing_or_resolved(&w.status)?;
    let starts_at = time_field("startsAt", w.starts_at.as_deref())?;
    let ends_at = match status {
        Status::Firing | Status::Acknowledged | Status::Updated => None,
        Status::Resolved => time_field("endsAt", w.ends_at.as_deref())?,
    };
    let fingerprint = w
        .fingerprint
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| labels_fingerprint(&w.labels));
    Ok(Alert {
        source: cx.source.to_string(),
        title: title_of(&w.labels, &w.annotations, &fingerprint),
        severity: severity_of(&w.labels),
        description: w.annotations.get("description").cloned(),
        fingerprint,
        status,
        labels: w.labels,
        annotations: w.annotations,
        url: w.generator_url.filter(|u| !u.is_empty()),
        starts_at,
        ends_at,
        received_at: cx.now,
        routing: Routing::default(),
        raw,
    })
}

/// tocsin's own format, for scripts and anything without a parser of its own.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericAlert {
    title: String,
    status: GenericStatus,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum GenericStatus {
    Firing,
    Resolved,
}

/// One object or an array of them.
pub fn generic(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json(body)?;
    let items = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => return Err("expected an alert object or an array of them".into()),
    };
    let mut out = Parsed::default();
    for (i, item) in items.into_iter().enumerate() {
        match generic_one(item, cx) {
            Ok(a) => out.alerts.push(a),
            Err(e) => out.rejected.push(format!("alerts[{i}]: {e}")),
        }
    }
    Ok(out)
}

fn generic_one(item: Value, cx: &Context<'_>) -> Result<Alert, String> {
    let raw = raw_of(&item, cx);
    let g: GenericAlert = serde_json::from_value(item).map_err(|e| e.to_string())?;
    let title = g.title.trim().to_string();
    if title.is_empty() {
        return Err("title is empty".into());
    }
    let fingerprint = match g.fingerprint.map(|f| f.trim().to_string()) {
        Some(f) if !f.is_empty() => f,
        _ => labels_and_title_fingerprint(&g.labels, &title),
    };
    let severity = g
        .severity
        .as_deref()
        .map(Severity::parse_lenient)
        .unwrap_or_else(|| severity_of(&g.labels));
    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint,
        status: match g.status {
            GenericStatus::Firing => Status::Firing,
            GenericStatus::Resolved => Status::Resolved,
        },
        title,
        severity,
        labels: g.labels,
        annotations: g.annotations,
        description: g.description,
        url: g.url,
        starts_at: None,
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-22T02:39:00Z";

    fn cx() -> Context<'static> {
        Context {
            source: "prom",
            now: Timestamp::parse_optional(NOW).unwrap().unwrap(),
            resolve_timeout: Duration::from_secs(300),
            keep_raw: false,
        }
    }

    #[test]
    fn prometheus_firing_capture() {
        let body = br#"[{"annotations":{"runbook_url":"https://runbooks.example/always","summary":"Always firing test alert, value=1"},
  "endsAt":"2026-11-22T02:39:20.653Z","startsAt":"2026-11-22T02:38:54.653Z",
  "generatorURL":"http://prom.example:9090/graph?g0.expr=vector%281%29\u0026g0.tab=1",
  "labels":{"alertname":"AlwaysFiring","cluster":"lab1","severity":"page","team":"infra"}}]"#;
        let p = prometheus(body, &cx()).unwrap();
        assert!(p.rejected.is_empty());
        let a = &p.alerts[0];
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.title, "Always firing test alert, value=1");
        assert_eq!(a.ends_at.unwrap().to_rfc3339(), "2026-11-22T02:39:20.653Z");
        assert_eq!(
            a.url.as_deref(),
            Some("http://prom.example:9090/graph?g0.expr=vector%281%29&g0.tab=1")
        );
    }

    #[test]
    fn prometheus_end_in_the_past_is_resolved() {
        let body = br#"[{"labels":{"alertname":"X"},"startsAt":"2026-11-22T02:30:00Z","endsAt":"2026-11-22T02:38:00Z"}]"#;
        assert_eq!(
            prometheus(body, &cx()).unwrap().alerts[0].status,
            Status::Resolved
        );
    }

    #[test]
    fn amtool_zero_timestamps_are_absent() {
        let body = br#"[{"labels":{"alertname":"DiskFull"},"startsAt":"0001-01-01T00:00:00.000Z","endsAt":"0001-01-01T00:00:00.000Z"}]"#;
        let a = &prometheus(body, &cx()).unwrap().alerts[0];
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.starts_at, None);
        assert_eq!(a.ends_at, Some(cx().now.plus(Duration::from_secs(300))));
    }

    #[test]
    fn empty_labels_are_rejected_but_neighbours_kept() {
        let body = br#"[{"labels":{}},{"labels":{"alertname":"ok"}}]"#;
        let p = prometheus(body, &cx()).unwrap();
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.rejected, ["alerts[0]: at least one label pair required"]);
        assert!(prometheus(b"{\"labels\":{}}", &cx()).is_err());
        assert!(prometheus(b"[{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
    }

    #[test]
    fn alertmanager_capture() {
        let body = br#"{"receiver":"tocsin-default","status":"firing","alerts":[
 {"status":"firing","labels":{"alertname":"Bulk","cluster":"lab2","n":"1","severity":"warning"},"annotations":{"summary":"bulk 1"},
  "startsAt":"2026-11-22T02:40:23.806057587Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"9e0993c793b95973"},
 {"status":"resolved","labels":{"alertname":"Bulk","cluster":"lab2","n":"2","severity":"warning"},"annotations":{"summary":"bulk 2"},
  "startsAt":"2026-11-22T02:40:23.806057587Z","endsAt":"2026-11-22T02:41:00Z","generatorURL":"","fingerprint":"9bf16bc37f6758a6"}],
 "groupLabels":{"alertname":"Bulk","cluster":"lab2"},"commonLabels":{"alertname":"Bulk","cluster":"lab2","severity":"warning"},
 "commonAnnotations":{},"externalURL":"http://am.example:9093","version":"4",
 "groupKey":"{}:{alertname=\"Bulk\", cluster=\"lab2\"}","truncatedAlerts":1}"#;
        let p = alertmanager(body, &cx()).unwrap();
        assert_eq!(p.alerts.len(), 2);
        assert_eq!(p.alerts[0].fingerprint, "9e0993c793b95973");
        assert_eq!(p.alerts[0].ends_at, None);
        assert_eq!(p.alerts[1].status, Status::Resolved);
        assert_eq!(p.alerts[1].severity, Severity::Warning);
        assert!(alertmanager(br#"{"version":"3","alerts":[]}"#, &cx()).is_err());
    }

    #[test]
    fn generic_object_or_array() {
        let one = br#"{"title":"Backup failed","status":"firing","severity":"error","labels":{"host":"db1"}}"#;
        let p = generic(one, &cx()).unwrap();
        assert_eq!(p.alerts[0].severity, Severity::Error);
        let l: Labels = [("host".to_string(), "db1".to_string())].into();
        assert_eq!(
            p.alerts[0].fingerprint,
            labels_and_title_fingerprint(&l, "Backup failed")
        );
        let many = br#"[{"title":"a","status":"resolved","fingerprint":"k1"},{"title":"b","status":"sideways"},{"title":"c","status":"firing","colour":"red"}]"#;
        let p = generic(many, &cx()).unwrap();
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.alerts[0].fingerprint, "k1");
        assert_eq!(p.rejected.len(), 2);
        assert!(p.rejected[1].contains("colour"), "{:?}", p.rejected);
        assert!(generic(b"42", &cx()).is_err());
    }
}
