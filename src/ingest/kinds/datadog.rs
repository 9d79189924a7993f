//! The `datadog` source kind: Datadog's Webhooks integration.
//!
//! Datadog posts whatever payload template the webhook is given, with `$VARIABLES` substituted as text.
//! Its default template says neither which monitor fired nor whether it recovered, so tocsin documents
//! its own, [`TEMPLATE`]: the default payload's fields under the same names, plus the monitor fields.
//! Both are read here; a payload made from the default template is understood as far as its title
//! allows (Datadog writes the transition and the group into event titles:
//! `[P2] [Triggered on {host:web-3}] Web latency is high`).
//!
//! - **Key**: the monitor id (`$ALERT_ID`), plus the alert's group (`$ALERT_SCOPE`, tags sorted) for
//!   multi-alert monitors, so each host or group of a monitor is its own ticket and a recovery finds
//!   its trigger: `91850327/availability-zone:eu-west-1a,host:web-3`. Without a monitor id, the
//!   aggregation key (`$AGGREG_KEY`); with neither (the default template), a hash of the title's
//!   monitor name and group.
//! - **Status**: `Recovered` is resolved. `Triggered`, `Re-Triggered`, `Warn`, `Re-Warn`, `No Data`,
//!   `Re-No Data`, `Renotify` (and words Datadog may add) are firing: an alert must reach people. No
//!   transition at all: resolved when `$ALERT_TYPE` is `success`, else firing.
//! - **Severity**: the monitor's priority (`P1` critical, `P2` error, `P3` warning, `P4`/`P5` info),
//!   else `$ALERT_TYPE` (`error`, `warning`, `info`). A `Warn` transition is at most a warning.
//! - **Labels**: `key:value` tags from `$TAGS` and the scope (bare tags such as `monitor` carry no value
//!   to route on and are kept only in the `tags` annotation), `monitor_id`, and `host` from `$HOSTNAME`.
//!
//! Renotifications and re-triggers carry the time they were sent, not the time the problem started, so
//! alerts carry no `starts_at`: a renotification of an open ticket is a resend, not a new firing.

use serde_json::{Map, Value};

use super::json;
use crate::domain::alert::{
    labels_and_title_fingerprint, Alert, Labels, Routing, Severity, Status,
};
use crate::ingest::parse::{raw_of, Context, Parsed};

/// tocsin's payload template for Datadog's Webhooks integration. Paste it into the webhook's
/// **Payload** field (leave **Encode as form** unticked), and mention `@webhook-<name>` in each
/// monitor's message.
///
/// The first seven fields are Datadog's default payload, under the same names, so a webhook that still
/// sends the default payload reads the same way, only with less to go on. The `alert_*` fields and
/// `aggreg_key` identify the monitor and its group and say what happened; `hostname`, `tags` and `link`
/// route the alert and link back to Datadog. Every value is quoted: Datadog substitutes variables as
/// text, and a variable with no value becomes an empty string rather than broken JSON.
pub const TEMPLATE: &str = r#"{
  "id": "$ID",
  "title": "$EVENT_TITLE",
  "body": "$EVENT_MSG",
  "event_type": "$EVENT_TYPE",
  "date": "$DATE",
  "last_updated": "$LAST_UPDATED",
  "org": {
    "id": "$ORG_ID",
    "name": "$ORG_NAME"
  },
  "alert_id": "$ALERT_ID",
  "alert_title": "$ALERT_TITLE",
  "alert_transition": "$ALERT_TRANSITION",
  "alert_type": "$ALERT_TYPE",
  "alert_priority": "$ALERT_PRIORITY",
  "alert_status": "$ALERT_STATUS",
  "alert_scope": "$ALERT_SCOPE",
  "alert_metric": "$ALERT_METRIC",
  "alert_query": "$ALERT_QUERY",
  "alert_cycle_key": "$ALERT_CYCLE_KEY",
  "aggreg_key": "$AGGREG_KEY",
  "hostname": "$HOSTNAME",
  "tags": "$TAGS",
  "link": "$LINK"
}
"#;

/// Template fields copied to annotations under their own names: what people may want to see, and
/// plugins to read, without being part of the alert's identity.
const ANNOTATED: &[&str] = &[
    "alert_transition",
    "alert_type",
    "alert_priority",
    "alert_status",
    "alert_scope",
    "alert_metric",
    "alert_query",
    "alert_cycle_key",
    "aggreg_key",
    "event_type",
    "hostname",
    "tags",
    "date",
];

/// Datadog's notification types (`$ALERT_TRANSITION`) as they appear in event titles. `Re-` forms come
/// first only for readability: matching is by whole word, so `Triggered` never matches `Re-Triggered`.
const TRANSITIONS: &[&str] = &[
    "Re-Triggered",
    "Triggered",
    "Recovered",
    "Re-Warn",
    "Warn",
    "Re-No Data",
    "No Data",
    "Renotify",
];

/// Reads one request's payload.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json::read(body)?;
    let Some(obj) = value.as_object() else {
        return Err("expected a JSON object: Datadog's webhook payload (see the template)".into());
    };
    let alert = one(obj, &value, cx)?;
    Ok(Parsed {
        alerts: vec![alert],
        rejected: Vec::new(),
    })
}

fn one(obj: &Map<String, Value>, whole: &Value, cx: &Context<'_>) -> Result<Alert, String> {
    let field = |name: &str| text(obj.get(name));
    let org = obj.get("org").and_then(Value::as_object);
    let org_field = |name: &str| text(org.and_then(|o| o.get(name)));

    // `$ALERT_TITLE` and `$EVENT_TITLE` are usually the same text; the first is the monitor's own.
    let raw_title = field("alert_title").or_else(|| field("title"));
    let title_parts = raw_title.as_deref().map(split_title).unwrap_or_default();

    let alert_id = field("alert_id");
    let transition = field("alert_transition").or(title_parts.transition.clone());
    let priority = field("alert_priority").or(title_parts.priority.clone());
    let alert_type = field("alert_type");
    let scope = field("alert_scope").or(title_parts.scope.clone());
    let scope_pairs = scope.as_deref().map(scope_key).unwrap_or_default();

    let mut scope_labels = Labels::new();
    add_tags(&scope_pairs, &mut scope_labels);
    let mut labels = Labels::new();
    if let Some(tags) = field("tags") {
        add_tags(&tags, &mut labels);
    }
    // The scope names this alert's group exactly; a tag list may hold several values for one name.
    labels.extend(scope_labels.clone());
    json::insert(&mut labels, "monitor_id", alert_id.clone());
    if let Some(host) = field("hostname") {
        labels.entry("host".into()).or_insert(host);
    }

    let name = title_parts.name.clone();
    let fingerprint = match (&alert_id, field("aggreg_key")) {
        (Some(id), _) if scope_pairs.is_empty() => id.clone(),
        (Some(id), _) => format!("{id}/{scope_pairs}"),
        (None, Some(aggregation)) => aggregation,
        // The default template: the monitor's name and group are all that stays the same between a
        // trigger and its recovery.
        (None, None) if !name.is_empty() => labels_and_title_fingerprint(&scope_labels, &name),
        (None, None) => return Err(
            "cannot tell which monitor this is: no alert_id, aggreg_key or title (use tocsin's \
                 payload template)"
                .into(),
        ),
    };

    let status = status_of(transition.as_deref(), alert_type.as_deref());
    let severity = severity_of(
        priority.as_deref(),
        alert_type.as_deref(),
        transition.as_deref(),
    );

    let mut annotations = Labels::new();
    for name in ANNOTATED {
        json::insert(&mut annotations, name, field(name));
    }
    if let Some(v) = &transition {
        annotations
            .entry("alert_transition".into())
            .or_insert(v.clone());
    }
    json::insert(&mut annotations, "event_id", field("id"));
    for (name, key) in [("id", "org_id"), ("name", "org_name")] {
        json::insert(&mut annotations, key, org_field(name));
    }

    let title = Some(name)
        .filter(|n| !n.is_empty())
        .or_else(|| field("alert_status"))
        .unwrap_or_else(|| format!("Datadog monitor {fingerprint}"));
    let ends_at = match status {
        // `$DATE`: milliseconds since the epoch, as text.
        Status::Resolved => json::epoch_ms(obj.get("date")),
        Status::Firing | Status::Acknowledged | Status::Updated => None,
    };

    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint,
        status,
        title,
        severity,
        labels,
        annotations,
        description: field("body").and_then(|b| message(&b)),
        url: field("link"),
        starts_at: None,
        ends_at,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(whole, cx),
    })
}

/// A field as text: strings trimmed, numbers and booleans written out (a template may leave a variable
/// unquoted). Empty strings and variables Datadog left as written (`$ALERT_PRIORITY`) count as absent.
fn text(value: Option<&Value>) -> Option<String> {
    json::text(value).filter(|s| !is_unfilled(s))
}

fn is_unfilled(s: &str) -> bool {
    s.len() > 1
        && s.starts_with('$')
        && s[1..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// What a Datadog title says besides the monitor's name.
#[derive(Debug, Default, PartialEq)]
struct TitleParts {
    /// The title without the priority and transition groups.
    name: String,
    priority: Option<String>,
    transition: Option<String>,
    /// The group, `host:web-3,availability-zone:eu-west-1a`, from `[Triggered on {...}]`.
    scope: Option<String>,
}

/// Takes `[P2] [Triggered on {host:web-3}] Web latency is high` apart. Bracketed groups that are
/// neither (`[TEST]`, a team's own `[db]`) stay in the name.
fn split_title(title: &str) -> TitleParts {
    let mut parts = TitleParts::default();
    let mut kept: Vec<&str> = Vec::new();
    let mut rest = title.trim();
    while let Some(after) = rest.strip_prefix('[') {
        // A scope may in principle hold `]`; its braces are closed first.
        let from = match (after.find('{'), after.find(']')) {
            (Some(brace), Some(close)) if brace < close => {
                after[brace..].find('}').map(|b| brace + b).unwrap_or(0)
            }
            _ => 0,
        };
        let Some(end) = after[from..].find(']').map(|e| from + e) else {
            break;
        };
        let inner = after[..end].trim();
        let group = &rest[..end + 2];
        rest = after[end + 1..].trim_start();
        if parts.priority.is_none() && is_priority(inner) {
            parts.priority = Some(inner.to_ascii_uppercase());
        } else if let (None, Some((transition, scope))) = (&parts.transition, transition_of(inner))
        {
            parts.transition = Some(transition.to_string());
            parts.scope = scope;
        } else {
            kept.push(group);
        }
    }
    kept.push(rest);
    parts.name = kept
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    parts
}

fn is_priority(s: &str) -> bool {
    matches!(s.as_bytes(), [b'P' | b'p', b'1'..=b'5'])
}

/// `Triggered on {host:web-3}` → (`Triggered`, `host:web-3`); `Recovered` → (`Recovered`, none).
fn transition_of(inner: &str) -> Option<(&'static str, Option<String>)> {
    TRANSITIONS.iter().find_map(|t| {
        let head = inner.get(..t.len())?;
        if !head.eq_ignore_ascii_case(t) {
            return None;
        }
        let tail = &inner[t.len()..];
        if tail.is_empty() {
            return Some((*t, None));
        }
        let scope = tail
            .strip_prefix(" on ")
            .or_else(|| tail.strip_prefix(" ON "))?;
        let scope = scope.trim().trim_start_matches('{').trim_end_matches('}');
        Some((*t, Some(scope.to_string()).filter(|s| !s.trim().is_empty())))
    })
}

/// The scope as part of a key: tags trimmed, sorted and deduplicated, so `a:1, b:2` and `b:2,a:1`
/// (title and `$ALERT_SCOPE` spell it differently) are one group.
fn scope_key(scope: &str) -> String {
    let mut tags: Vec<&str> = scope
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags.join(",")
}

/// Adds `name:value` tags to labels; a name seen twice keeps both values, comma-separated.
fn add_tags(list: &str, labels: &mut Labels) {
    for tag in list.split(',') {
        let Some((name, value)) = tag.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if !name.is_empty() && !value.is_empty() {
            json::add_value(labels, name, value);
        }
    }
}

fn status_of(transition: Option<&str>, alert_type: Option<&str>) -> Status {
    match transition.map(|t| t.to_ascii_lowercase()) {
        Some(t) if t == "recovered" => Status::Resolved,
        // Old Datadogs send `Null` for notifications that are no transition.
        Some(t) if t != "null" => Status::Firing,
        _ if alert_type.is_some_and(|t| t.eq_ignore_ascii_case("success")) => Status::Resolved,
        _ => Status::Firing,
    }
}

fn severity_of(
    priority: Option<&str>,
    alert_type: Option<&str>,
    transition: Option<&str>,
) -> Severity {
    let from_priority = priority
        .map(Severity::parse_lenient)
        .filter(|s| *s != Severity::None);
    let from_type = alert_type.and_then(|t| match t.to_ascii_lowercase().as_str() {
        "error" => Some(Severity::Error),
        "warning" => Some(Severity::Warning),
        "info" => Some(Severity::Info),
        _ => None,
    });
    let severity = from_priority.or(from_type).unwrap_or(Severity::None);
    // `Warn` is the monitor's warning threshold, below its alert threshold: a P1 monitor that only
    // crossed its warning line should not page the way its alert does.
    let warn = transition
        .is_some_and(|t| t.eq_ignore_ascii_case("warn") || t.eq_ignore_ascii_case("re-warn"));
    match (warn, severity) {
        (true, Severity::None) => Severity::Warning,
        (true, s) => s.min(Severity::Warning),
        (false, s) => s,
    }
}

/// `$EVENT_MSG` without the `%%%` markdown fences Datadog wraps it in.
fn message(body: &str) -> Option<String> {
    let text = body.trim();
    let text = text.strip_prefix("%%%").unwrap_or(text);
    let text = text.strip_suffix("%%%").unwrap_or(text);
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::time::Timestamp;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, keeping_raw, labels,
    };

    const TRIGGERED: &str = include_str!("../../../examples/payloads/datadog/triggered.json");
    const RECOVERED: &str = include_str!("../../../examples/payloads/datadog/recovered.json");
    const TEMPLATE_FILE: &str = include_str!("../../../examples/payloads/datadog/TEMPLATE.json");

    fn cx() -> Context<'static> {
        testing::cx("datadog", "2026-03-02T10:00:05Z")
    }

    fn one_alert(body: &str) -> Alert {
        testing::one_alert(parse(body.as_bytes(), &cx()))
    }

    #[test]
    fn triggered_fixture() {
        let a = one_alert(TRIGGERED);
        assert_alert(
            &a,
            "91850327/availability-zone:eu-west-1a,host:web-3",
            Status::Firing,
            Severity::Error,
        );
        assert_eq!(a.title, "Web latency is high");
        let labels = labels(&[
            ("availability-zone", "eu-west-1a"),
            ("env", "prod"),
            ("host", "web-3"),
            ("monitor_id", "91850327"),
            ("service", "web"),
            ("team", "storefront"),
        ]);
        assert_eq!(a.labels, labels);
        assert_eq!(
            a.description.as_deref(),
            Some("p95 request latency on web-3 is above 800 ms.\n\n@webhook-tocsin")
        );
        assert_eq!(
            a.url.as_deref(),
            Some("https://app.datadoghq.com/event/event?id=7745982361154620431")
        );
        assert_eq!(a.annotations["alert_transition"], "Triggered");
        assert_eq!(a.annotations["org_name"], "Acme Production");
        assert_eq!(a.annotations["event_id"], "7745982361154620431");
        assert!(a.annotations["tags"].contains(",monitor,"));
        assert_eq!(a.starts_at, None);
        assert_eq!(a.ends_at, None);
        assert_eq!(a.received_at, cx().now);
    }

    #[test]
    fn recovered_fixture_resolves_the_same_key() {
        let fired = one_alert(TRIGGERED);
        let a = one_alert(RECOVERED);
        assert_resolves(&fired, &a);
        assert_eq!(a.severity, Severity::Error);
        assert_eq!(a.title, fired.title);
        assert_eq!(a.labels, fired.labels);
        assert_eq!(a.ends_at, Some(Timestamp::from_millis(1_772_446_500_000)));
    }

    #[test]
    fn template_file_is_the_const_and_reads_once_filled() {
        assert_eq!(TEMPLATE, TEMPLATE_FILE);
        // Datadog's test button may send variables it cannot fill as written: nothing is made of them.
        let raw = parse(TEMPLATE.as_bytes(), &cx());
        assert!(raw.is_err(), "{raw:?}");
        let filled = TEMPLATE
            .replace("$ALERT_TRANSITION", "Warn")
            .replace("$ALERT_PRIORITY", "P1")
            .replace("$ALERT_SCOPE", "role:db")
            .replace("$ALERT_ID", "42")
            .replace("$ALERT_TITLE", "[P1] [Warn on {role:db}] Replication lag")
            .replace("$ALERT_TYPE", "warning");
        let a = one_alert(&filled);
        assert_eq!(a.fingerprint, "42/role:db");
        assert_eq!(a.status, Status::Firing);
        // A P1 monitor's warning threshold does not page like its alert threshold.
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.title, "Replication lag");
        assert_eq!(a.labels["role"], "db");
        assert!(!a.annotations.contains_key("alert_query"));
    }

    #[test]
    fn default_payload_is_read_from_its_title() {
        let trigger = r#"{"body":"%%%\nCPU on db-1 above 90%\n%%%","last_updated":"1772445600000",
            "event_type":"metric_alert_monitor",
            "title":"[Triggered on {host:db-1, role:db}] CPU is high","date":"1772445600000",
            "org":{"id":"418902","name":"Acme"},"id":"5544"}"#;
        let recover = r#"{"body":"","last_updated":"1772446000000","event_type":"metric_alert_monitor",
            "title":"[Recovered on {role:db,host:db-1}] CPU is high","date":"1772446000000",
            "org":{"id":"418902","name":"Acme"},"id":"5545"}"#;
        let t = one_alert(trigger);
        let r = one_alert(recover);
        assert_eq!(t.status, Status::Firing);
        assert_eq!(t.title, "CPU is high");
        assert_eq!(t.labels["host"], "db-1");
        assert_eq!(t.description.as_deref(), Some("CPU on db-1 above 90%"));
        assert_resolves(&t, &r);
        assert_eq!(r.description, None);
        let other_host = trigger.replace("host:db-1", "host:db-2");
        assert_ne!(one_alert(&other_host).fingerprint, t.fingerprint);
    }

    #[test]
    fn titles_come_apart() {
        let p = split_title(
            "[P2] [Triggered on {availability-zone:eu-west-1a,host:web-3}] Web latency",
        );
        assert_eq!(
            p,
            TitleParts {
                name: "Web latency".into(),
                priority: Some("P2".into()),
                transition: Some("Triggered".into()),
                scope: Some("availability-zone:eu-west-1a,host:web-3".into()),
            }
        );
        let p = split_title("[TEST] [Re-No Data] [db] Replication");
        assert_eq!(p.name, "[TEST] [db] Replication");
        assert_eq!(p.transition.as_deref(), Some("Re-No Data"));
        assert_eq!(split_title("[Warning] disk").transition, None);
        assert_eq!(
            split_title("[Recovered on {a:]b}] x").scope.as_deref(),
            Some("a:]b")
        );
        assert_eq!(split_title("[unclosed").name, "[unclosed");
        assert_eq!(split_title("").name, "");
        assert_eq!(scope_key(" b:2 ,a:1,, a:1"), "a:1,b:2");
    }

    #[test]
    fn transitions_and_severities() {
        for t in [
            "Triggered",
            "Re-Triggered",
            "Warn",
            "No Data",
            "Re-No Data",
            "Renotify",
            "Flapping",
        ] {
            assert_eq!(status_of(Some(t), Some("error")), Status::Firing, "{t}");
        }
        assert_eq!(status_of(Some("Recovered"), None), Status::Resolved);
        assert_eq!(status_of(Some("Null"), Some("success")), Status::Resolved);
        assert_eq!(status_of(None, Some("error")), Status::Firing);
        assert_eq!(
            severity_of(Some("P1"), Some("error"), None),
            Severity::Critical
        );
        assert_eq!(severity_of(Some("P4"), None, None), Severity::Info);
        assert_eq!(severity_of(None, Some("warning"), None), Severity::Warning);
        assert_eq!(severity_of(None, Some("success"), None), Severity::None);
        assert_eq!(severity_of(None, None, Some("Re-Warn")), Severity::Warning);
        assert_eq!(severity_of(Some("P5"), None, Some("Warn")), Severity::Info);
    }

    #[test]
    fn repeated_tag_names_keep_every_value() {
        let mut l = Labels::new();
        add_tags(
            "env:prod,env:eu,monitor,:x,y:,env:prod, url:https://x",
            &mut l,
        );
        assert_eq!(l["env"], "prod,eu");
        assert_eq!(l["url"], "https://x");
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn numbers_are_accepted_where_a_template_left_quotes_out() {
        let a = one_alert(r#"{"alert_id":91850327,"alert_transition":"Triggered","title":"x"}"#);
        assert_eq!(a.fingerprint, "91850327");
        let b = one_alert(r#"{"aggreg_key":"abc","alert_transition":"Recovered"}"#);
        assert_eq!(b.fingerprint, "abc");
        assert_eq!(b.title, "Datadog monitor abc");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(b"{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert!(parse(b"[]", &cx()).is_err());
        assert!(parse(b"\"x\"", &cx()).is_err());
        assert!(parse(br#"{"body":"hello"}"#, &cx()).is_err());
        assert!(parse(br#"{"title":"[Triggered]"}"#, &cx()).is_err());
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["alert_id", "alert_title", "title", "alert_transition", "alert_type", "alert_priority",
              "alert_scope", "aggreg_key", "tags", "hostname", "date", "body", "org", "id", "name", "link"],
            &["Triggered", "Recovered", "Warn", "success", "P1", "[P1] [Triggered on {a:b}] x",
              "[Recovered on {", "a:b, c", "$ALERT_ID", "%%%", "1772446500000"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(p) = parse(&body, &keeping_raw(cx())) {
                let a = &p.alerts[0];
                prop_assert!(!a.fingerprint.is_empty());
                prop_assert!(!a.title.is_empty());
                prop_assert!(a.status != Status::Acknowledged);
            }
        }

        #[test]
        fn any_title_splits_without_panicking(t in "(\\[|\\]|\\{|\\}| on |P1|Warn|Recovered|\\PC){0,24}") {
            let _ = split_title(&t);
        }
    }
}
