//! The `sentry` source kind: webhooks of a Sentry integration-platform app (an internal integration).
//!
//! Sentry names the kind of each delivery in the `Sentry-Hook-Resource` header, and the body's shape
//! depends on it. What each resource becomes:
//!
//! | resource | key | status |
//! |---|---|---|
//! | `event_alert` (an issue alert rule fired) | `issue:<data.event.issue_id>` | firing |
//! | `error` (one error event) | `issue:<data.error.issue_id>`, else `error:<hashes>` | firing |
//! | `issue` | `issue:<data.issue.id>` | `created`, `unresolved` firing; `resolved`, `archived`, `ignored` resolved; `assigned` and others ignored |
//! | `metric_alert` | `metric_alert:<data.metric_alert.id>` | `critical`, `warning` firing with that severity; `resolved` resolved; titled with the rule's name |
//! | `installation`, `comment`, anything else | none: answered 200 with no alerts | |
//!
//! Issue alerts and error events are keyed by the *issue* they belong to, never by the event: Sentry has
//! already grouped events into issues, and only `issue` resources ever say that an issue is resolved, so
//! they must land on the ticket the alert opened. A metric alert's id is its incident: a later incident of
//! the same rule is a new ticket.
//!
//! Issue-keyed alerts carry no `starts_at`. Sentry's own issue state is the authority, and event times
//! come from the SDK's clock: a regression event stamped a little early would otherwise read as a late
//! copy of the firing that was resolved, and be ignored. Without `starts_at`, a firing while the ticket
//! is active is a resend and a firing after resolution reopens, which is what Sentry means.

use serde_json::Value;

use super::json::{self, insert, scalar, str_at};
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::domain::time::Timestamp;
use crate::ingest::parse::{raw_of, Context, Parsed};

/// Reads one request's payload; `resource` is the `Sentry-Hook-Resource` header.
pub fn parse(resource: &str, body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let resource = resource.trim().to_ascii_lowercase();
    let read: fn(&Value, &Context<'_>) -> Result<Option<Alert>, String> = match resource.as_str() {
        // Not something Sentry's integration platform sends: answering 200 would silently drop whatever
        // this is (a legacy per-project webhook, a misconfigured proxy), so say what is missing.
        "" => {
            return Err(
                "missing Sentry-Hook-Resource header: tocsin reads the webhooks of a Sentry \
                 integration (Settings > Developer Settings > Internal Integration)"
                    .into(),
            )
        }
        "event_alert" => event_alert,
        "error" => error,
        "issue" => issue,
        "metric_alert" => metric_alert,
        // `installation`, `comment`, `seer`... are real deliveries with nothing to alert on. Sentry counts
        // failed deliveries, so they are accepted without reading the body.
        _ => return Ok(Parsed::default()),
    };
    let value: Value = json::read(body)?;
    if !value.is_object() {
        return Err(format!(
            "expected a JSON object for Sentry `{resource}` webhooks"
        ));
    }
    Ok(Parsed {
        alerts: read(&value, cx)?.into_iter().collect(),
        rejected: Vec::new(),
    })
}

/// An issue alert rule fired for an event. Always firing: Sentry never sends a matching "resolved"
/// `event_alert`; the `issue` resource does that.
fn event_alert(v: &Value, cx: &Context<'_>) -> Result<Option<Alert>, String> {
    let ev = object_at(v, &["data", "event"]).ok_or("`data.event` is missing or not an object")?;
    let issue_id = id_at(ev, &["issue_id"]).ok_or("`data.event.issue_id` is missing")?;
    let mut alert = from_event(ev, format!("issue:{issue_id}"), &issue_id, v, cx);
    if let Some(rule) = str_at(v, &["data", "triggered_rule"]) {
        alert.labels.insert("rule".into(), rule.to_string());
    }
    Ok(Some(alert))
}

/// One error event (the `error` subscription, every error Sentry stores). Firing, like `event_alert`.
fn error(v: &Value, cx: &Context<'_>) -> Result<Option<Alert>, String> {
    let ev = object_at(v, &["data", "error"]).ok_or("`data.error` is missing or not an object")?;
    if let Some(issue_id) = id_at(ev, &["issue_id"]) {
        return Ok(Some(from_event(
            ev,
            format!("issue:{issue_id}"),
            &issue_id,
            v,
            cx,
        )));
    }
    // No issue yet: Sentry's grouping hashes are what it will group the event by, so events that end
    // up in one issue share this key.
    let hashes: Vec<&str> = ev
        .get("hashes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if hashes.is_empty() {
        return Err("`data.error` has neither `issue_id` nor `hashes`".into());
    }
    let key = format!("error:{}", hashes.join(","));
    Ok(Some(from_event(ev, key, hashes[0], v, cx)))
}

/// The common part of `event_alert` and `error`: both carry a full Sentry event.
fn from_event(ev: &Value, key: String, id: &str, whole: &Value, cx: &Context<'_>) -> Alert {
    let level = str_at(ev, &["level"]);
    let mut labels = Labels::new();
    // The event names its project by numeric id only; the slug (what `issue` resources carry, and what
    // people route on) is in the event's API URL: `.../api/0/projects/<org>/<slug>/events/<id>/`.
    if let Some(slug) = str_at(ev, &["url"]).and_then(project_slug_from_url) {
        labels.insert("project".into(), slug.to_string());
    }
    insert(
        &mut labels,
        "project_id",
        ev.get("project").and_then(scalar),
    );
    insert(
        &mut labels,
        "environment",
        str_at(ev, &["environment"])
            .or_else(|| tag(ev, "environment"))
            .map(str::to_string),
    );
    insert(
        &mut labels,
        "platform",
        str_at(ev, &["platform"]).map(str::to_string),
    );
    insert(&mut labels, "level", level.map(str::to_string));
    insert(
        &mut labels,
        "culprit",
        str_at(ev, &["culprit"]).map(str::to_string),
    );

    let mut annotations = Labels::new();
    insert(
        &mut annotations,
        "event_id",
        str_at(ev, &["event_id"]).map(str::to_string),
    );
    insert(
        &mut annotations,
        "release",
        ev.get("release").and_then(scalar),
    );
    insert(
        &mut annotations,
        "event_time",
        str_at(ev, &["datetime"]).map(str::to_string),
    );

    let title = str_at(ev, &["title"])
        .or_else(|| str_at(ev, &["message"]))
        .or_else(|| str_at(ev, &["metadata", "value"]))
        .map(str::to_string)
        .unwrap_or_else(|| format!("Sentry issue {id}"));
    Alert {
        source: cx.source.to_string(),
        fingerprint: key,
        status: Status::Firing,
        title,
        severity: level.map(severity_of).unwrap_or(Severity::None),
        labels,
        annotations,
        description: None,
        url: str_at(ev, &["web_url"]).map(str::to_string),
        starts_at: None,
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(whole, cx),
    }
}

/// An issue was created or changed state.
fn issue(v: &Value, cx: &Context<'_>) -> Result<Option<Alert>, String> {
    let action = str_at(v, &["action"]).ok_or("`action` is missing")?;
    let status = match action {
        "created" | "unresolved" => Status::Firing,
        "resolved" => Status::Resolved,
        // Archiving (called ignoring in older Sentry) means "stop telling me until it escalates". Keeping
        // the ticket open would leave it open forever with nobody going to act on it in Sentry; if the
        // issue escalates, Sentry sends `unresolved` (and issue alerts fire), which reopens it.
        "archived" | "ignored" => Status::Resolved,
        // `assigned` and any action Sentry adds later say nothing about whether the problem is happening.
        _ => return Ok(None),
    };
    let is = object_at(v, &["data", "issue"]).ok_or("`data.issue` is missing or not an object")?;
    let id = id_at(is, &["id"]).ok_or("`data.issue.id` is missing")?;
    let short_id = str_at(is, &["shortId"]);
    let level = str_at(is, &["level"]);

    let mut labels = Labels::new();
    insert(
        &mut labels,
        "project",
        str_at(is, &["project", "slug"]).map(str::to_string),
    );
    insert(&mut labels, "project_id", id_at(is, &["project", "id"]));
    insert(&mut labels, "short_id", short_id.map(str::to_string));
    insert(
        &mut labels,
        "platform",
        str_at(is, &["platform"]).map(str::to_string),
    );
    insert(&mut labels, "level", level.map(str::to_string));
    insert(
        &mut labels,
        "culprit",
        str_at(is, &["culprit"]).map(str::to_string),
    );

    let mut annotations = Labels::new();
    annotations.insert("sentry_action".into(), action.to_string());
    insert(
        &mut annotations,
        "substatus",
        str_at(is, &["substatus"]).map(str::to_string),
    );
    insert(
        &mut annotations,
        "first_seen",
        str_at(is, &["firstSeen"]).map(str::to_string),
    );
    insert(
        &mut annotations,
        "last_seen",
        str_at(is, &["lastSeen"]).map(str::to_string),
    );
    insert(&mut annotations, "count", is.get("count").and_then(scalar));
    insert(
        &mut annotations,
        "user_count",
        is.get("userCount").and_then(scalar),
    );

    let title = str_at(is, &["title"])
        .or_else(|| str_at(is, &["metadata", "value"]))
        .map(str::to_string)
        .unwrap_or_else(|| format!("Sentry issue {}", short_id.unwrap_or(&id)));
    Ok(Some(Alert {
        source: cx.source.to_string(),
        fingerprint: format!("issue:{id}"),
        status,
        title,
        severity: level.map(severity_of).unwrap_or(Severity::None),
        labels,
        annotations,
        description: None,
        url: str_at(is, &["web_url"])
            .or_else(|| str_at(is, &["permalink"]))
            .map(str::to_string),
        starts_at: None,
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(v, cx),
    }))
}

/// A metric alert rule's incident changed level.
fn metric_alert(v: &Value, cx: &Context<'_>) -> Result<Option<Alert>, String> {
    let action = str_at(v, &["action"]).ok_or("`action` is missing")?;
    let (status, severity) = match action {
        "critical" => (Status::Firing, Severity::Critical),
        "warning" => (Status::Firing, Severity::Warning),
        "resolved" => (Status::Resolved, Severity::None),
        _ => return Ok(None),
    };
    let ma = object_at(v, &["data", "metric_alert"])
        .ok_or("`data.metric_alert` is missing or not an object")?;
    let id = id_at(ma, &["id"]).ok_or("`data.metric_alert.id` is missing")?;
    let rule = ma.get("alert_rule").filter(|r| r.is_object());
    let rule_str = |field: &str| rule.and_then(|r| str_at(r, &[field])).map(str::to_string);

    let mut labels = Labels::new();
    insert(&mut labels, "rule", rule_str("name"));
    insert(&mut labels, "rule_id", rule.and_then(|r| id_at(r, &["id"])));
    insert(
        &mut labels,
        "project",
        rule.and_then(|r| r.get("projects"))
            .or_else(|| ma.get("projects"))
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty()),
    );
    insert(&mut labels, "environment", rule_str("environment"));
    insert(&mut labels, "aggregate", rule_str("aggregate"));

    let mut annotations = Labels::new();
    annotations.insert("sentry_action".into(), action.to_string());
    insert(&mut annotations, "query", rule_str("query"));
    insert(&mut annotations, "incident", id_at(ma, &["identifier"]));
    insert(
        &mut annotations,
        "description_title",
        str_at(v, &["data", "description_title"]).map(str::to_string),
    );

    // The rule's name, not `description_title`: that one starts with the level ("Critical: Too many
    // errors", "Resolved: Too many errors"), which is already the severity and status, and a title
    // carrying it would still say "Critical" after the resolution.
    let title = rule_str("name")
        .or_else(|| str_at(v, &["data", "description_title"]).map(|t| without_level(t).to_string()))
        .filter(|t| !t.is_empty())
        .or_else(|| str_at(ma, &["title"]).map(str::to_string))
        .unwrap_or_else(|| format!("Sentry metric alert {id}"));
    // The incident's own times; unreadable ones are left out rather than failing the delivery.
    let time = |field: &str| {
        str_at(ma, &[field]).and_then(|t| Timestamp::parse_optional(t).ok().flatten())
    };
    Ok(Some(Alert {
        source: cx.source.to_string(),
        fingerprint: format!("metric_alert:{id}"),
        status,
        title,
        severity,
        labels,
        annotations,
        description: str_at(v, &["data", "description_text"]).map(str::to_string),
        url: str_at(v, &["data", "web_url"]).map(str::to_string),
        starts_at: time("date_started"),
        ends_at: match status {
            Status::Resolved => time("date_closed"),
            Status::Firing | Status::Acknowledged | Status::Updated => None,
        },
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(v, cx),
    }))
}

/// `Critical: Too many errors` without its `Critical: ` (or `Warning: `, `Resolved: `).
fn without_level(title: &str) -> &str {
    for level in ["Critical:", "Warning:", "Resolved:"] {
        if let Some(rest) = title.strip_prefix(level) {
            return rest.trim_start();
        }
    }
    title
}

/// Sentry's levels: `fatal`, `error`, `warning`, `info`, `debug`.
fn severity_of(level: &str) -> Severity {
    match level.trim().to_ascii_lowercase().as_str() {
        "debug" => Severity::Info,
        other => Severity::parse_lenient(other),
    }
}

fn object_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| v.is_object())
}

/// An id: Sentry documents ids as strings, but some (project ids) are numbers; accept either.
fn id_at(v: &Value, path: &[&str]) -> Option<String> {
    match path.iter().try_fold(v, |v, k| v.get(k))? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// A tag from an event's `tags`: `[["level", "error"], ["environment", "prod"], ...]`.
fn tag<'v>(ev: &'v Value, name: &str) -> Option<&'v str> {
    ev.get("tags")?.as_array()?.iter().find_map(|pair| {
        let pair = pair.as_array()?;
        (pair.first()?.as_str()? == name)
            .then(|| pair.get(1)?.as_str())
            .flatten()
            .filter(|s| !s.is_empty())
    })
}

fn project_slug_from_url(url: &str) -> Option<&str> {
    let mut parts = url.split('/');
    parts.find(|p| *p == "projects")?;
    let _org = parts.next()?;
    parts.next().filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::kinds::testing::{
        self, arb_bytes, arb_json_nested, assert_alert, assert_resolves, edited, keeping_raw,
        raw_json,
    };

    const EVENT_ALERT: &str = include_str!("../../../examples/payloads/sentry/event_alert.json");
    const ISSUE_RESOLVED: &str =
        include_str!("../../../examples/payloads/sentry/issue_resolved.json");
    const METRIC_CRITICAL: &str =
        include_str!("../../../examples/payloads/sentry/metric_alert_critical.json");
    const METRIC_RESOLVED: &str =
        include_str!("../../../examples/payloads/sentry/metric_alert_resolved.json");
    const METRIC_DOCS_RESOLVED: &str =
        include_str!("../../../examples/payloads/sentry/metric_alert_resolved_docs.json");
    const INSTALLATION: &str = include_str!("../../../examples/payloads/sentry/installation.json");

    fn cx() -> Context<'static> {
        testing::cx("sentry", "2026-03-02T10:00:00Z")
    }

    fn one(resource: &str, body: &str) -> Alert {
        testing::one_alert(parse(resource, body.as_bytes(), &cx()))
    }

    fn none(resource: &str, body: &str) {
        assert_eq!(
            parse(resource, body.as_bytes(), &cx()).unwrap(),
            Parsed::default(),
            "{resource}: {body}"
        );
    }

    #[test]
    fn event_alert_fixture() {
        let a = one("event_alert", EVENT_ALERT);
        assert_alert(&a, "issue:4410932215", Status::Firing, Severity::Error);
        assert_eq!(
            a.title,
            "TypeError: Cannot read properties of undefined (reading 'total')"
        );
        assert_eq!(a.labels["project"], "checkout-web");
        assert_eq!(a.labels["project_id"], "42");
        assert_eq!(a.labels["environment"], "production");
        assert_eq!(a.labels["platform"], "javascript");
        assert_eq!(a.labels["level"], "error");
        assert_eq!(a.labels["culprit"], "renderBasket(app/basket)");
        assert_eq!(a.labels["rule"], "Checkout errors to on-call");
        assert_eq!(
            a.annotations["event_id"],
            "9c1e5b0f3a2d4e7f8a6b5c4d3e2f1a0b"
        );
        assert_eq!(
            a.url.as_deref(),
            Some("https://sentry.example.org/organizations/shop/issues/4410932215/events/9c1e5b0f3a2d4e7f8a6b5c4d3e2f1a0b/")
        );
        assert_eq!(a.starts_at, None);
        assert_eq!(a.source, "sentry");
    }

    #[test]
    fn issue_resolved_fixture_resolves_the_event_alert_ticket() {
        let fired = one("event_alert", EVENT_ALERT);
        let r = one("issue", ISSUE_RESOLVED);
        assert_resolves(&fired, &r);
        assert_eq!(r.title, fired.title);
        assert_eq!(r.severity, Severity::Error);
        assert_eq!(r.labels["project"], "checkout-web");
        assert_eq!(r.labels["project_id"], "42");
        assert_eq!(r.labels["short_id"], "CHECKOUT-WEB-3F");
        assert_eq!(r.annotations["sentry_action"], "resolved");
        assert_eq!(
            r.url.as_deref(),
            Some("https://sentry.example.org/organizations/shop/issues/4410932215/")
        );
        assert_eq!(r.starts_at, None);
    }

    #[test]
    fn issue_actions() {
        let action = |a: &str| edited(ISSUE_RESOLVED, |v| v["action"] = a.into());
        assert_eq!(one("issue", &action("created")).status, Status::Firing);
        assert_eq!(one("issue", &action("unresolved")).status, Status::Firing);
        assert_eq!(one("issue", &action("archived")).status, Status::Resolved);
        assert_eq!(one("issue", &action("ignored")).status, Status::Resolved);
        none("issue", &action("assigned"));
        none("issue", &action("something_new"));
        // Assignment needs no issue body to be ignored.
        none("issue", r#"{"action":"assigned"}"#);
    }

    #[test]
    fn metric_alert_fixtures() {
        let c = one("metric_alert", METRIC_CRITICAL);
        assert_alert(&c, "metric_alert:8817", Status::Firing, Severity::Critical);
        // The rule's name: the level is the severity, and the resolution keeps the same title.
        assert_eq!(c.title, "Checkout p95 latency");
        assert_eq!(
            c.annotations["description_title"],
            "Critical: Checkout p95 latency"
        );
        assert_eq!(
            c.description.as_deref(),
            Some("p95(transaction.duration) above 1500ms in the last 5 minutes")
        );
        assert_eq!(c.labels["rule"], "Checkout p95 latency");
        assert_eq!(c.labels["rule_id"], "311");
        assert_eq!(c.labels["project"], "checkout-web");
        assert_eq!(c.labels["environment"], "production");
        assert_eq!(c.labels["aggregate"], "p95(transaction.duration)");
        assert_eq!(
            c.url.as_deref(),
            Some("https://sentry.example.org/organizations/shop/alerts/rules/details/311/")
        );
        assert_eq!(
            c.starts_at,
            Timestamp::parse_optional("2026-03-02T09:20:00Z").unwrap()
        );

        let warning = edited(METRIC_CRITICAL, |v| v["action"] = "warning".into());
        assert_eq!(one("metric_alert", &warning).severity, Severity::Warning);

        let r = one("metric_alert", METRIC_RESOLVED);
        assert_resolves(&c, &r);
        assert_eq!(r.title, c.title);
        assert_eq!(r.starts_at, c.starts_at);
        assert_eq!(
            r.ends_at,
            Timestamp::parse_optional("2026-03-02T09:47:00Z").unwrap()
        );
        // Without the rule's name, the title is `description_title` without its level.
        let unnamed = edited(METRIC_CRITICAL, |v| {
            v["data"]["metric_alert"]["alert_rule"]
                .as_object_mut()
                .unwrap()
                .remove("name");
        });
        assert_eq!(one("metric_alert", &unnamed).title, "Checkout p95 latency");
        let warned = edited(&unnamed, |v| {
            v["data"]["description_title"] = "Warning:Checkout p95 latency".into()
        });
        assert_eq!(one("metric_alert", &warned).title, "Checkout p95 latency");
        let bare = edited(&unnamed, |v| {
            v["data"]["description_title"] = "Resolved: ".into()
        });
        assert_eq!(one("metric_alert", &bare).title, "Checkout p95 latency");
    }

    #[test]
    fn metric_alert_of_sentrys_documentation() {
        let r = one("metric_alert", METRIC_DOCS_RESOLVED);
        assert_alert(&r, "metric_alert:4", Status::Resolved, Severity::None);
        assert_eq!(r.title, "Too many errors");
        assert_eq!(
            r.annotations["description_title"],
            "Resolved: Too many errors"
        );
        let fired = one(
            "metric_alert",
            &edited(METRIC_DOCS_RESOLVED, |v| v["action"] = "critical".into()),
        );
        assert_resolves(&fired, &r);
        assert_eq!(fired.title, r.title);
        assert_eq!(fired.severity, Severity::Critical);
    }

    #[test]
    fn error_events_key_by_issue_else_hashes() {
        let error = edited(EVENT_ALERT, |v| {
            let ev = v["data"]["event"].take();
            v["data"] = serde_json::json!({ "error": ev });
            v["action"] = "created".into();
        });
        let e = one("error", &error);
        assert_eq!(e.fingerprint, "issue:4410932215");
        assert_eq!(e.status, Status::Firing);
        assert!(!e.labels.contains_key("rule"));

        let no_issue = edited(&error, |v| {
            v["data"]["error"]
                .as_object_mut()
                .unwrap()
                .remove("issue_id");
        });
        assert_eq!(
            one("error", &no_issue).fingerprint,
            "error:b3d9f1e07c2a4658a1f0e9d8c7b6a5f4"
        );
        let nothing = edited(&no_issue, |v| {
            v["data"]["error"].as_object_mut().unwrap().remove("hashes");
        });
        assert!(parse("error", nothing.as_bytes(), &cx()).is_err());
    }

    #[test]
    fn numeric_ids_are_accepted() {
        let body = edited(EVENT_ALERT, |v| v["data"]["event"]["issue_id"] = 77.into());
        assert_eq!(one("event_alert", &body).fingerprint, "issue:77");
    }

    #[test]
    fn other_resources_yield_nothing() {
        none("installation", INSTALLATION);
        none("comment", r#"{"action":"created"}"#);
        // Sentry may add resources; their bodies are not ours to judge.
        none("seer", "not even json");
        none(" Installation ", INSTALLATION);
    }

    #[test]
    fn keep_raw_keeps_the_payload() {
        let p = parse(
            "metric_alert",
            METRIC_RESOLVED.as_bytes(),
            &keeping_raw(cx()),
        )
        .unwrap();
        let raw = raw_json(&p.alerts[0]);
        assert_eq!(raw["action"], "resolved");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse("", EVENT_ALERT.as_bytes(), &cx())
            .unwrap_err()
            .contains("Sentry-Hook-Resource"));
        for resource in ["event_alert", "issue", "metric_alert", "error"] {
            for body in ["", "nope", "[]", "null", "7", "{}", r#"{"data":[]}"#] {
                assert!(
                    parse(resource, body.as_bytes(), &cx()).is_err(),
                    "{resource}: {body}"
                );
            }
        }
        let missing = [
            (
                "event_alert",
                edited(EVENT_ALERT, |v| {
                    v["data"]["event"]
                        .as_object_mut()
                        .unwrap()
                        .remove("issue_id");
                }),
            ),
            (
                "event_alert",
                edited(EVENT_ALERT, |v| v["data"]["event"] = "x".into()),
            ),
            (
                "event_alert",
                edited(EVENT_ALERT, |v| v["data"]["event"]["issue_id"] = "".into()),
            ),
            (
                "event_alert",
                edited(EVENT_ALERT, |v| v["data"]["event"]["issue_id"] = 1.5.into()),
            ),
            (
                "issue",
                edited(ISSUE_RESOLVED, |v| v["data"]["issue"]["id"] = Value::Null),
            ),
            ("issue", edited(ISSUE_RESOLVED, |v| v["action"] = 3.into())),
            ("issue", edited(ISSUE_RESOLVED, |v| v["data"] = Value::Null)),
            (
                "metric_alert",
                edited(METRIC_CRITICAL, |v| {
                    v["data"]["metric_alert"]
                        .as_object_mut()
                        .unwrap()
                        .remove("id");
                }),
            ),
            (
                "metric_alert",
                edited(METRIC_CRITICAL, |v| {
                    v.as_object_mut().unwrap().remove("action");
                }),
            ),
        ];
        for (resource, body) in missing {
            assert!(
                parse(resource, body.as_bytes(), &cx()).is_err(),
                "{resource}: {body}"
            );
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(
            project_slug_from_url("https://s.example/api/0/projects/org/web/events/1/"),
            Some("web")
        );
        assert_eq!(
            project_slug_from_url("https://s.example/api/0/projects/"),
            None
        );
        assert_eq!(
            project_slug_from_url("https://s.example/api/0/projects/org/"),
            None
        );
        assert_eq!(severity_of("fatal"), Severity::Critical);
        assert_eq!(severity_of("debug"), Severity::Info);
        assert_eq!(severity_of("warning"), Severity::Warning);
        assert_eq!(severity_of("sideways"), Severity::None);
    }

    fn arb_resource() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("event_alert".to_string()),
            Just("issue".to_string()),
            Just("metric_alert".to_string()),
            Just("error".to_string()),
            Just("installation".to_string()),
            Just(String::new()),
            ".{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            resource in arb_resource(),
            body in arb_bytes(),
        ) {
            let _ = parse(&resource, &body, &cx());
        }

        #[test]
        fn arbitrary_json_never_panics(resource in arb_resource(), v in arb_json_nested(
            5,
            &["action", "data", "event", "error", "issue", "metric_alert", "alert_rule", "issue_id", "id",
              "hashes", "tags", "project", "projects", "url", "date_started"],
            &["critical", "resolved", "created", "archived", "2026-03-02T09:00:00Z",
              "https://s.example/api/0/projects/o/p/events/1/"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(p) = parse(&resource, &body, &keeping_raw(cx())) {
                prop_assert!(p.alerts.len() <= 1);
                for a in &p.alerts {
                    prop_assert!(!a.fingerprint.is_empty());
                    prop_assert!(!a.title.is_empty());
                }
            }
        }
    }
}
