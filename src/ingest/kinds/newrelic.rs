//! The `newrelic` source kind: New Relic workflow notifications to a Webhook destination, with the
//! payload template New Relic fills in by default (one issue per request).
//!
//! - **Key**: the issue id (`id`, `{{ json issueId }}` in the template; `issueId` is accepted too for
//!   templates that kept New Relic's own name). An issue is one problem from activation to close, and
//!   correlated incidents join it rather than opening new ones, so one issue is one ticket.
//! - **Status**: `CLOSED` is resolved. An issue's states are only `CREATED`, `ACTIVATED`, `DEACTIVATED`
//!   and `CLOSED`: an acknowledgement does not change the state, it arrives as `state: ACTIVATED` with
//!   `trigger: USER_ACTION` (`{{ json triggerEvent }}`; a close by a person has `CLOSED`). That is
//!   acknowledged, as is a notification without `trigger` whose template carries an acknowledgement
//!   (`acknowledgedAt`, `issueAcknowledgedAt`, `acknowledgedBy`, `owner`, or `isAcknowledged: true`).
//!   Other triggers (`PRIORITY_CHANGED`, `INCIDENT_ADDED`...) on an acknowledged issue are firing
//!   resends, which keep the ticket acked and refresh its content. Everything else is firing.
//! - **Severity**: `priority` `CRITICAL` critical, `HIGH` error, `MEDIUM` warning, `LOW` info. (Not
//!   tocsin's general normaliser: it reads `high` as critical, which is one step too loud here.)
//! - **Times**: `createdAt` (epoch milliseconds) is the firing's start: it stays the same in every
//!   notification for the issue, so a priority change or an added incident is a resend and a late copy
//!   after the close is recognised as one. A close ends at `closedAt`, else `updatedAt`.
//! - **Annotations**: `state`, `priority`, `trigger`, `total_incidents`, `is_correlated`, and who and
//!   when acknowledged (`acknowledged_by`, `acknowledged_at`) where the template carries them.
//! - **Labels**: `policy`, `condition`, `entities`, `sources` and `workflow` from the template's lists
//!   (comma-separated when several), and `accumulations.tag.*` when a custom template sends
//!   `accumulations`.

use serde_json::{Map, Value};

use super::json::{self, epoch_ms, text};
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::ingest::parse::{raw_of, Context, Parsed};

/// Reads one request's payload.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json::read(body)?;
    let Some(obj) = value.as_object() else {
        return Err("expected a JSON object: New Relic's webhook payload".into());
    };
    let alert = one(obj, &value, cx)?;
    Ok(Parsed {
        alerts: vec![alert],
        rejected: Vec::new(),
    })
}

/// Label name, then the default template's field and the `accumulations` field it summarises.
const LISTS: &[(&str, &str, &str)] = &[
    ("policy", "alertPolicyNames", "policyName"),
    ("condition", "alertConditionNames", "conditionName"),
    ("entities", "impactedEntities", "entityName"),
    ("sources", "sources", "source"),
];

fn one(obj: &Map<String, Value>, whole: &Value, cx: &Context<'_>) -> Result<Alert, String> {
    let field = |name: &str| text(obj.get(name));
    let id = field("id")
        .or_else(|| field("issueId"))
        .ok_or("no issue id (`id` in New Relic's default template)")?;
    let accumulations = obj.get("accumulations").and_then(Value::as_object);

    let state = field("state").map(|s| s.to_ascii_uppercase());
    let trigger = field("trigger")
        .or_else(|| field("triggerEvent"))
        .map(|s| s.to_ascii_uppercase());
    let acked_at = field("acknowledgedAt").or_else(|| field("issueAcknowledgedAt"));
    let acked_by = field("acknowledgedBy").or_else(|| field("owner"));
    let carries_ack = acked_at.is_some()
        || acked_by.is_some()
        || field("isAcknowledged").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let status = match (state.as_deref(), trigger.as_deref()) {
        (Some("CLOSED"), _) => Status::Resolved,
        // What New Relic sends when someone acknowledges: the state stays ACTIVATED.
        (_, Some("USER_ACTION")) => Status::Acknowledged,
        // A custom template without the trigger: its acknowledgement fields say it.
        (_, None) if carries_ack => Status::Acknowledged,
        _ => Status::Firing,
    };
    let priority = field("priority");
    let severity = match priority.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("CRITICAL") => Severity::Critical,
        Some("HIGH") => Severity::Error,
        Some("MEDIUM") => Severity::Warning,
        Some("LOW") => Severity::Info,
        Some(other) => Severity::parse_lenient(other),
        None => Severity::None,
    };

    let mut labels = Labels::new();
    for (label, field_name, accumulated) in LISTS {
        let values = list(obj.get(*field_name))
            .or_else(|| list(accumulations.and_then(|a| a.get(*accumulated))));
        json::insert(&mut labels, label, values);
    }
    json::insert(&mut labels, "workflow", field("workflowName"));
    if let Some(acc) = accumulations {
        for (name, value) in acc {
            if let (Some(tag), Some(v)) = (name.strip_prefix("tag."), list(Some(value))) {
                if !tag.is_empty() {
                    labels.entry(tag.to_string()).or_insert(v);
                }
            }
        }
    }

    // The template sends `annotations.title.[0]`; a custom one may send the whole array.
    let title = first(obj.get("title"))
        .or_else(|| labels.get("condition").cloned())
        .unwrap_or_else(|| format!("New Relic issue {id}"));

    let mut annotations = Labels::new();
    for (key, name) in [
        ("state", "state"),
        ("priority", "priority"),
        ("total_incidents", "totalIncidents"),
        ("is_correlated", "isCorrelated"),
    ] {
        json::insert(&mut annotations, key, field(name));
    }
    json::insert(&mut annotations, "trigger", trigger);
    json::insert(&mut annotations, "acknowledged_by", acked_by);
    json::insert(&mut annotations, "acknowledged_at", acked_at);

    let starts_at = epoch_ms(obj.get("createdAt"));
    let ends_at = match status {
        Status::Resolved => {
            epoch_ms(obj.get("closedAt")).or_else(|| epoch_ms(obj.get("updatedAt")))
        }
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
        description: first(obj.get("description")),
        url: field("issueUrl").or_else(|| field("issuePageUrl")),
        starts_at,
        ends_at,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(whole, cx),
    })
}

/// The text, or an array's first non-empty item.
fn first(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Array(items) => items.iter().find_map(|v| text(Some(v))),
        other => text(Some(other)),
    }
}

/// A list as one label value: items deduplicated in order (an issue lists its condition once per
/// incident), joined with commas. A lone string is a list of one.
fn list(value: Option<&Value>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    match value? {
        Value::Array(items) => {
            for v in items.iter().filter_map(|v| text(Some(v))) {
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
        }
        other => seen.extend(text(Some(other))),
    }
    Some(seen.join(",")).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::time::Timestamp;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, keeping_raw, labels,
    };

    const ACTIVATED: &str = include_str!("../../../examples/payloads/newrelic/activated.json");
    const CLOSED: &str = include_str!("../../../examples/payloads/newrelic/closed.json");
    const ACKNOWLEDGED: &str =
        include_str!("../../../examples/payloads/newrelic/acknowledged.json");

    fn cx() -> Context<'static> {
        testing::cx("newrelic", "2026-03-02T10:00:01Z")
    }

    fn one_alert(body: &str) -> Alert {
        testing::one_alert(parse(body.as_bytes(), &cx()))
    }

    #[test]
    fn activated_fixture() {
        let a = one_alert(ACTIVATED);
        assert_alert(
            &a,
            "5f0c7d2e-8a41-4b6e-9d3a-1c2b7e9f4a60",
            Status::Firing,
            Severity::Critical,
        );
        assert_eq!(
            a.title,
            "Error percentage > 5.0 for at least 5 minutes on 'checkout-api (prod)'"
        );
        let labels = labels(&[
            ("condition", "Checkout error rate"),
            ("entities", "checkout-api (prod)"),
            ("policy", "Checkout golden signals"),
            ("sources", "newrelic"),
            ("workflow", "Checkout on-call"),
        ]);
        assert_eq!(a.labels, labels);
        assert!(a.url.as_deref().unwrap().starts_with("https://radar-api."));
        assert_eq!(a.starts_at, Some(Timestamp::from_millis(1_772_445_600_123)));
        assert_eq!(a.ends_at, None);
        assert_eq!(a.annotations["trigger"], "STATE_CHANGE");
        assert_eq!(a.annotations["total_incidents"], "1");
    }

    #[test]
    fn closed_fixture_resolves_the_same_key() {
        let fired = one_alert(ACTIVATED);
        let a = one_alert(CLOSED);
        assert_resolves(&fired, &a);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.labels, fired.labels);
        // Same start: the ticket state machine sees the end of the firing it tracks.
        assert_eq!(a.starts_at, fired.starts_at);
        assert_eq!(a.ends_at, Some(Timestamp::from_millis(1_772_446_380_456)));
    }

    #[test]
    fn acknowledged_fixture_acks_the_same_key() {
        let fired = one_alert(ACTIVATED);
        let a = one_alert(ACKNOWLEDGED);
        assert_alert(
            &a,
            &fired.fingerprint,
            Status::Acknowledged,
            Severity::Critical,
        );
        assert_eq!(a.annotations["state"], "ACTIVATED");
        assert_eq!(a.annotations["trigger"], "USER_ACTION");
        assert_eq!(a.starts_at, fired.starts_at);
        assert_eq!(a.ends_at, None);
    }

    #[test]
    fn acknowledgement_fields_of_custom_templates() {
        let edit = |f: &dyn Fn(&mut Value)| one_alert(&testing::edited(ACTIVATED, f));
        // Without the trigger, the template's acknowledgement fields say it.
        let by_fields = edit(&|v| {
            v.as_object_mut().unwrap().remove("trigger");
            v["acknowledgedAt"] = "2026-03-02T10:02:07Z".into();
            v["acknowledgedBy"] = "alice@example.com".into();
        });
        assert_eq!(by_fields.status, Status::Acknowledged);
        assert_eq!(
            by_fields.annotations["acknowledged_by"],
            "alice@example.com"
        );
        assert_eq!(
            by_fields.annotations["acknowledged_at"],
            "2026-03-02T10:02:07Z"
        );
        let flag = edit(&|v| {
            v.as_object_mut().unwrap().remove("trigger");
            v["isAcknowledged"] = true.into();
        });
        assert_eq!(flag.status, Status::Acknowledged);
        let not_acked = edit(&|v| {
            v.as_object_mut().unwrap().remove("trigger");
            v["isAcknowledged"] = false.into();
            v["owner"] = "".into();
        });
        assert_eq!(not_acked.status, Status::Firing);
        // A priority change on an acknowledged issue is a resend, not a second acknowledgement.
        let later = edit(&|v| {
            v["trigger"] = "PRIORITY_CHANGED".into();
            v["isAcknowledged"] = true.into();
        });
        assert_eq!(later.status, Status::Firing);
        // `triggerEvent` under New Relic's own name counts too.
        let own_name = edit(&|v| {
            v.as_object_mut().unwrap().remove("trigger");
            v["triggerEvent"] = "USER_ACTION".into();
        });
        assert_eq!(own_name.status, Status::Acknowledged);
        // A person closing the issue is a close.
        let closed = edit(&|v| v["state"] = "CLOSED".into());
        assert_eq!(closed.status, Status::Resolved);
    }

    #[test]
    fn states_and_priorities() {
        let with = |state: &str, priority: &str| {
            one_alert(
                &ACTIVATED
                    .replace("ACTIVATED", state)
                    .replace("CRITICAL", priority),
            )
        };
        // New Relic has no such states; a state alone never acknowledges.
        assert_eq!(with("ACKNOWLEDGED", "HIGH").status, Status::Firing);
        assert_eq!(with("DEACTIVATED", "HIGH").status, Status::Firing);
        assert_eq!(with("CREATED", "HIGH").status, Status::Firing);
        assert_eq!(with("closed", "HIGH").status, Status::Resolved);
        assert_eq!(with("ACTIVATED", "HIGH").severity, Severity::Error);
        assert_eq!(with("ACTIVATED", "MEDIUM").severity, Severity::Warning);
        assert_eq!(with("ACTIVATED", "LOW").severity, Severity::Info);
        assert_eq!(with("ACTIVATED", "SOMETHING").severity, Severity::None);
    }

    #[test]
    fn custom_templates_with_new_relic_names() {
        let body = r#"{"issueId":"abc","issuePageUrl":"https://one.newrelic.com/x","title":["Disk full","more"],
            "state":"ACTIVATED","createdAt":"1772445600000",
            "accumulations":{"policyName":["Infra","Infra"],"conditionName":["Disk"],"tag.team":["dba"],"tag.":["x"]}}"#;
        let a = one_alert(body);
        assert_eq!(a.fingerprint, "abc");
        assert_eq!(a.title, "Disk full");
        assert_eq!(a.url.as_deref(), Some("https://one.newrelic.com/x"));
        assert_eq!(a.labels["policy"], "Infra");
        assert_eq!(a.labels["condition"], "Disk");
        assert_eq!(a.labels["team"], "dba");
        assert!(!a.labels.contains_key(""));
        assert_eq!(a.starts_at, Some(Timestamp::from_millis(1_772_445_600_000)));
        let untitled = one_alert(r#"{"id":"u1","alertConditionNames":["CPU","Memory"]}"#);
        assert_eq!(untitled.title, "CPU,Memory");
        assert_eq!(one_alert(r#"{"id":7}"#).title, "New Relic issue 7");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(b"{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert!(parse(b"[1]", &cx()).is_err());
        assert!(parse(br#"{"title":"no id","state":"ACTIVATED"}"#, &cx())
            .unwrap_err()
            .contains("issue id"));
        assert!(parse(br#"{"id":"  ","state":"ACTIVATED"}"#, &cx()).is_err());
        assert!(parse(br#"{"id":{"x":1}}"#, &cx()).is_err());
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["id", "issueId", "title", "priority", "state", "createdAt", "updatedAt", "closedAt",
              "alertPolicyNames", "alertConditionNames", "impactedEntities", "accumulations", "tag.team",
              "policyName", "issueUrl", "workflowName"],
            &["ACTIVATED", "CLOSED", "ACKNOWLEDGED", "CRITICAL", "LOW", "1772445600000", "-1"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(p) = parse(&body, &keeping_raw(cx())) {
                prop_assert!(!p.alerts[0].fingerprint.is_empty());
                prop_assert!(!p.alerts[0].title.is_empty());
            }
        }
    }
}
