//! The `zabbix` source kind: Zabbix's webhook media type, with the script tocsin publishes.
//!
//! Zabbix has no fixed webhook payload: a media type's JavaScript builds it. tocsin's
//! ([`MEDIA_TYPE_SCRIPT`], importable as `examples/payloads/zabbix/media_type.yaml`) sends the media
//! type's parameters ([`MEDIA_TYPE_PARAMETERS`]: Zabbix macros, resolved) as one JSON object under the
//! parameters' names, `{EVENT.TAGSJSON}` as an array, plus a `link` to the problem in the frontend.
//!
//! - **Key**: `event_id` (`{EVENT.ID}`). Recovery and update notifications carry the *problem's*
//!   `{EVENT.ID}` (the OK event's own id is `{EVENT.RECOVERY.ID}`), so they find the ticket the
//!   problem opened. Event ids are unique within one Zabbix server: give each server its own source.
//! - **Status**: `event_value` (`{EVENT.VALUE}`) `1` is firing, `0` resolved. Discovery and
//!   autoregistration events (`{EVENT.SOURCE}` 1 and 2) are always firing: Zabbix never sends them a
//!   recovery, so people resolve them.
//! - **Updates** (`{EVENT.UPDATE.STATUS}` `1`): `{EVENT.UPDATE.ACTION}` lists what the update did,
//!   Zabbix's way (`acknowledged`, `commented and changed severity from High to Disaster`). Each
//!   update yields up to two alerts for the problem's key, in this order: `acknowledged` is an
//!   acknowledgement (without the action macro, `{EVENT.ACK.STATUS}` `Yes` says it); `commented` or
//!   `changed severity` is an update ([`Status::Updated`]): the comment (`event_update_message`,
//!   `{EVENT.UPDATE.MESSAGE}`) becomes a note on the ticket, signed with `event_update_user`
//!   (`{USER.FULLNAME}`) when given, and a severity change moves the ticket to the new
//!   `{EVENT.NSEVERITY}` with a `severity_changed` entry. Unacknowledge, suppress and rank changes
//!   yield nothing; a close brings its own recovery.
//! - **Severity**: `{EVENT.NSEVERITY}` 0–1 info, 2–3 warning, 4 error, 5 critical; else the name
//!   (`Not classified`, `Information`, `Warning`, `Average`, `High`, `Disaster`).
//! - **Test**: Zabbix's *Test* dialog sends the parameters as written, macros unresolved. A payload whose
//!   `event_id` is still `{EVENT.ID}` is a test: accepted, no alert. Other unresolved macros
//!   (`{EVENT.RECOVERY.ID}` in a problem, `{EVENT.UPDATE.ACTION}` outside updates) and `*UNKNOWN*` count as
//!   absent.
//! - **Labels**: the event's tags (a tag name seen twice keeps both values, comma-separated; tags
//!   without a value are only in the `event_tags` annotation) and `host` (`{HOST.NAME}`). Every other
//!   text parameter, your own included, is an annotation under its name.
//!
//! Zabbix gives event times in the server's local time without a zone, so alerts carry no
//! `starts_at`; each problem has its own event id anyway, so a new problem is always a new key.

use serde_json::{Map, Value};

use super::json;
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::ingest::parse::{raw_of, Context, Parsed};

/// The script of tocsin's Zabbix webhook media type (Zabbix 5.4 and later; Duktape, so ES5 only). It
/// reads the parameters, POSTs them to the `url` parameter with `Authorization: Bearer <token>` (when
/// `token` is set) and returns `OK` on a 2xx answer; any other answer is thrown, so Zabbix logs it and
/// retries.
pub const MEDIA_TYPE_SCRIPT: &str = include_str!("../../../examples/payloads/zabbix/media_type.js");

/// The media type's parameters, name and value, in order: `url`, `token` and `http_proxy` configure the
/// sending and are not sent; the rest are the macros the parser reads. Extra parameters are sent too
/// and kept as annotations.
pub const MEDIA_TYPE_PARAMETERS: &[(&str, &str)] = &[
    ("url", "https://tocsin.example.com/ingest/zabbix"),
    ("token", "<token of the tocsin source>"),
    ("http_proxy", ""),
    ("event_id", "{EVENT.ID}"),
    ("event_value", "{EVENT.VALUE}"),
    ("event_source", "{EVENT.SOURCE}"),
    ("event_update_status", "{EVENT.UPDATE.STATUS}"),
    ("event_update_action", "{EVENT.UPDATE.ACTION}"),
    ("event_update_message", "{EVENT.UPDATE.MESSAGE}"),
    ("event_update_user", "{USER.FULLNAME}"),
    ("event_ack_status", "{EVENT.ACK.STATUS}"),
    ("event_nseverity", "{EVENT.NSEVERITY}"),
    ("event_severity", "{EVENT.SEVERITY}"),
    ("event_name", "{EVENT.NAME}"),
    ("event_opdata", "{EVENT.OPDATA}"),
    ("event_tags", "{EVENT.TAGSJSON}"),
    ("event_date", "{EVENT.DATE}"),
    ("event_time", "{EVENT.TIME}"),
    ("event_recovery_id", "{EVENT.RECOVERY.ID}"),
    ("host_name", "{HOST.NAME}"),
    ("host_ip", "{HOST.IP}"),
    ("trigger_id", "{TRIGGER.ID}"),
    ("trigger_description", "{TRIGGER.DESCRIPTION}"),
    ("zabbix_url", "{$ZABBIX.URL}"),
];

/// Fields that become the key, title, labels, description or link rather than annotations.
const NOT_ANNOTATED: &[&str] = &[
    "version",
    "event_id",
    "event_name",
    "event_tags",
    "host_name",
    "trigger_description",
    "link",
    "event_update_message",
];

/// Reads one request's payload.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json::read(body)?;
    let Some(obj) = value.as_object() else {
        return Err("expected a JSON object: what tocsin's Zabbix media type sends".into());
    };
    if obj
        .get("event_id")
        .and_then(Value::as_str)
        .is_some_and(|s| is_unresolved(s.trim()))
    {
        // The media type's Test dialog: the sender works, and there is no event to report.
        return Ok(Parsed::default());
    }
    Ok(Parsed {
        alerts: alerts(obj, &value, cx)?,
        rejected: Vec::new(),
    })
}

/// The notification's alerts: one for a problem or recovery, up to two for an update (see the module).
fn alerts(obj: &Map<String, Value>, whole: &Value, cx: &Context<'_>) -> Result<Vec<Alert>, String> {
    let field = |name: &str| text(obj.get(name));
    if field("event_update_status").as_deref() != Some("1") {
        return Ok(vec![one(obj, whole, cx, None)?]);
    }
    let action = field("event_update_action");
    let actions = update_actions(action.as_deref());
    let mut out = Vec::new();
    if acknowledged(&actions, field("event_ack_status").as_deref()) {
        out.push(one(obj, whole, cx, Some(Status::Acknowledged))?);
    }
    let commented = actions.iter().any(|a| a.eq_ignore_ascii_case("commented"));
    let severity_changed = actions
        .iter()
        .any(|a| a.to_ascii_lowercase().starts_with("changed severity"));
    // Without the action macro (an older media type), a message is taken as the comment it is.
    let message = field("event_update_message").filter(|_| commented || actions.is_empty());
    if message.is_some() || severity_changed {
        let mut update = one(obj, whole, cx, Some(Status::Updated))?;
        // An update carries only what changed: the new severity, the comment (see Status::Updated).
        if !severity_changed {
            update.severity = Severity::None;
        }
        update.description = message.map(|m| match field("event_update_user") {
            Some(user) => format!("{user} in Zabbix: {m}"),
            None => m,
        });
        out.push(update);
    }
    Ok(out)
}

fn one(
    obj: &Map<String, Value>,
    whole: &Value,
    cx: &Context<'_>,
    update: Option<Status>,
) -> Result<Alert, String> {
    let field = |name: &str| text(obj.get(name));
    let id = field("event_id").ok_or("no event_id ({EVENT.ID})")?;

    let source = field("event_source").unwrap_or_else(|| "0".into());
    let status = if let Some(status) = update {
        status
    } else if source == "1" || source == "2" {
        Status::Firing
    } else {
        match field("event_value").as_deref() {
            Some("1") => Status::Firing,
            Some("0") => Status::Resolved,
            Some(other) => {
                return Err(format!(
                    "event_value must be 1 (problem) or 0 (recovery), not `{other}`"
                ))
            }
            None => return Err("no event_value ({EVENT.VALUE})".into()),
        }
    };

    let severity = field("event_nseverity")
        .and_then(|n| match n.as_str() {
            "0" | "1" => Some(Severity::Info),
            "2" | "3" => Some(Severity::Warning),
            "4" => Some(Severity::Error),
            "5" => Some(Severity::Critical),
            _ => None,
        })
        .or_else(|| field("event_severity").and_then(|s| severity_name(&s)))
        .unwrap_or(Severity::None);

    let mut labels = Labels::new();
    if let Some(tags) = obj.get("event_tags") {
        add_tags(tags, &mut labels);
    }
    json::insert(&mut labels, "host", field("host_name"));

    let mut annotations = Labels::new();
    for (name, v) in obj {
        if NOT_ANNOTATED.contains(&name.as_str()) || name.is_empty() {
            continue;
        }
        json::insert(&mut annotations, name, text(Some(v)));
    }
    json::insert(
        &mut annotations,
        "event_tags",
        obj.get("event_tags").and_then(tags_text),
    );

    let description = field("trigger_description");
    let title = field("event_name")
        .or_else(|| description.clone())
        .unwrap_or_else(|| format!("Zabbix event {id}"));

    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint: id,
        status,
        title,
        severity,
        labels,
        annotations,
        description,
        url: field("link"),
        starts_at: None,
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(whole, cx),
    })
}

/// A macro Zabbix left as written (`{EVENT.RECOVERY.ID}`, `{$ZABBIX.URL}`): not supported where the
/// notification was made, or the Test dialog.
fn is_unresolved(s: &str) -> bool {
    s.len() > 2
        && s.starts_with('{')
        && s.ends_with('}')
        && s[1..s.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b"._$#".contains(&b))
}

/// A scalar as text (strings trimmed); empty values, unresolved macros and `*UNKNOWN*` (Zabbix's word
/// for a macro it could not resolve) count as absent.
fn text(value: Option<&Value>) -> Option<String> {
    json::text(value).filter(|s| s != "*UNKNOWN*" && !is_unresolved(s))
}

/// What an update did, from `{EVENT.UPDATE.ACTION}`: Zabbix joins the actions with `, ` and the last
/// with ` and ` (`acknowledged, commented and changed severity from Warning to High`).
fn update_actions(action: Option<&str>) -> Vec<&str> {
    action
        .into_iter()
        .flat_map(|a| a.split(", "))
        .flat_map(|part| part.split(" and "))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether an update notification is an acknowledgement. Without `{EVENT.UPDATE.ACTION}`,
/// `{EVENT.ACK.STATUS}` says whether the problem is acked.
fn acknowledged(actions: &[&str], ack_status: Option<&str>) -> bool {
    if actions.is_empty() {
        return ack_status.is_some_and(|s| s.eq_ignore_ascii_case("yes"));
    }
    actions
        .iter()
        .any(|a| a.eq_ignore_ascii_case("acknowledged"))
}

fn severity_name(name: &str) -> Option<Severity> {
    // Zabbix's own names; tocsin's general normaliser would read `high` as critical.
    match name.to_ascii_lowercase().as_str() {
        "not classified" | "information" => Some(Severity::Info),
        "warning" | "average" => Some(Severity::Warning),
        "high" => Some(Severity::Error),
        "disaster" => Some(Severity::Critical),
        _ => None,
    }
}

/// `(tag, value)` pairs from `[{"tag":..,"value":..}]`, that array as a JSON string (an older script),
/// or `{EVENT.TAGS}`'s `tag:value, tag:value` text.
fn tag_pairs(tags: &Value) -> Vec<(String, String)> {
    match tags {
        Value::Array(items) => items
            .iter()
            .filter_map(|t| {
                let tag = text(t.get("tag"))?;
                Some((tag, text(t.get("value")).unwrap_or_default()))
            })
            .collect(),
        Value::String(s) if s.trim_start().starts_with('[') => serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_array)
            .map(|v| tag_pairs(&v))
            .unwrap_or_default(),
        Value::String(s) if !is_unresolved(s.trim()) => s
            .split(',')
            .filter_map(|t| {
                let (tag, value) = t.split_once(':').unwrap_or((t, ""));
                let tag = tag.trim();
                (!tag.is_empty()).then(|| (tag.to_string(), value.trim().to_string()))
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn add_tags(tags: &Value, labels: &mut Labels) {
    for (tag, value) in tag_pairs(tags) {
        if !value.is_empty() {
            json::add_value(labels, &tag, &value);
        }
    }
}

/// All tags as `tag:value, tag` text, valueless tags included.
fn tags_text(tags: &Value) -> Option<String> {
    let text = tag_pairs(tags)
        .into_iter()
        .map(|(t, v)| if v.is_empty() { t } else { format!("{t}:{v}") })
        .collect::<Vec<_>>()
        .join(", ");
    Some(text).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, edited, keeping_raw, labels,
    };

    const PROBLEM: &str = include_str!("../../../examples/payloads/zabbix/problem.json");
    const RECOVERY: &str = include_str!("../../../examples/payloads/zabbix/recovery.json");
    const UPDATE: &str = include_str!("../../../examples/payloads/zabbix/update.json");
    const MEDIA_TYPE_YAML: &str = include_str!("../../../examples/payloads/zabbix/media_type.yaml");

    fn cx() -> Context<'static> {
        testing::cx("zabbix", "2026-03-02T10:00:02Z")
    }

    fn one_alert(body: &str) -> Alert {
        testing::one_alert(parse(body.as_bytes(), &cx()))
    }

    fn with(body: &str, pairs: &[(&str, Value)]) -> String {
        edited(body, |v| {
            for (k, x) in pairs {
                v[*k] = x.clone();
            }
        })
    }

    #[test]
    fn problem_fixture() {
        let a = one_alert(PROBLEM);
        assert_alert(&a, "1942211", Status::Firing, Severity::Error);
        assert_eq!(a.title, "High CPU utilization (over 90% for 5m)");
        let labels = labels(&[
            ("class", "os"),
            ("component", "cpu"),
            ("host", "db-2"),
            ("scope", "performance"),
            ("service", "billing,ledger"),
            ("target", "linux"),
        ]);
        assert_eq!(a.labels, labels);
        assert_eq!(
            a.url.as_deref(),
            Some("https://zabbix.example.com/tr_events.php?triggerid=23812&eventid=1942211")
        );
        assert_eq!(
            a.description.as_deref(),
            Some("CPU utilization is too high. The system might be slow to respond.")
        );
        assert_eq!(
            a.annotations["event_opdata"],
            "Current utilization: 97.31 %"
        );
        assert_eq!(a.annotations["trigger_id"], "23812");
        assert_eq!(a.annotations["event_severity"], "High");
        // Macros Zabbix does not resolve in a problem notification are not kept as if they were values.
        assert!(!a.annotations.contains_key("event_recovery_id"));
        assert!(!a.annotations.contains_key("event_update_action"));
        assert!(!a.annotations.contains_key("event_update_user"));
        assert!(a.annotations["event_tags"].starts_with("class:os, component:cpu"));
    }

    #[test]
    fn recovery_fixture_resolves_the_same_key() {
        let fired = one_alert(PROBLEM);
        let a = one_alert(RECOVERY);
        assert_resolves(&fired, &a);
        assert_eq!(a.severity, Severity::Error);
        assert_eq!(a.labels, fired.labels);
        assert_eq!(a.annotations["event_recovery_id"], "1942380");
    }

    #[test]
    fn update_fixture_acks_then_comments_and_changes_severity() {
        let p = parse(UPDATE.as_bytes(), &cx()).unwrap();
        assert_eq!(p.alerts.len(), 2, "{p:?}");
        let (ack, update) = (&p.alerts[0], &p.alerts[1]);
        assert_alert(ack, "1942211", Status::Acknowledged, Severity::Critical);
        assert_alert(update, "1942211", Status::Updated, Severity::Critical);
        assert_eq!(
            update.description.as_deref(),
            Some("Alice Admin (alice) in Zabbix: Failing over to db-3; <b>do not restart</b> db-2")
        );
        assert!(!update.annotations.contains_key("event_update_message"));
        assert_eq!(
            update.annotations["event_update_user"],
            "Alice Admin (alice)"
        );
    }

    #[test]
    fn updates_by_what_they_did() {
        let update = |action: Value, ack: &str| {
            with(
                UPDATE,
                &[
                    ("event_update_action", action),
                    ("event_ack_status", ack.into()),
                ],
            )
        };
        // (status, severity, whether it has a description: the trigger's for an acknowledgement, the
        // comment for an update).
        let statuses = |body: &str| {
            let p = parse(body.as_bytes(), &cx()).unwrap();
            p.alerts
                .iter()
                .map(|a| (a.status, a.severity, a.description.is_some()))
                .collect::<Vec<_>>()
        };
        use Status::{Acknowledged as Ack, Updated as Upd};
        let crit = Severity::Critical;
        // Zabbix joins two actions with " and ": both are read.
        assert_eq!(
            statuses(&update("acknowledged and commented".into(), "Yes")),
            [(Ack, crit, true), (Upd, Severity::None, true)]
        );
        assert_eq!(
            statuses(&update("acknowledged".into(), "Yes")),
            [(Ack, crit, true)]
        );
        assert_eq!(
            statuses(&update("commented".into(), "No")),
            [(Upd, Severity::None, true)]
        );
        assert_eq!(
            statuses(&update(
                "changed severity from High to Disaster".into(),
                "No"
            )),
            [(Upd, crit, false)]
        );
        for quiet in [
            "unacknowledged",
            "closed",
            "suppressed indefinitely",
            "ranked as cause",
        ] {
            assert_eq!(statuses(&update(quiet.into(), "No")), [], "{quiet}");
        }
        // A comment action without a message has nothing to note.
        let empty = with(
            &update("commented".into(), "No"),
            &[("event_update_message", "{EVENT.UPDATE.MESSAGE}".into())],
        );
        assert_eq!(statuses(&empty), []);
        // Without the action macro: the ack status decides, and a message is a comment.
        assert_eq!(
            statuses(&update(Value::Null, "Yes")),
            [(Ack, crit, true), (Upd, Severity::None, true)]
        );
        let no_user = with(
            &update("commented".into(), "No"),
            &[("event_update_user", "{USER.FULLNAME}".into())],
        );
        assert_eq!(
            parse(no_user.as_bytes(), &cx()).unwrap().alerts[0]
                .description
                .as_deref(),
            Some("Failing over to db-3; <b>do not restart</b> db-2")
        );
    }

    #[test]
    fn severities() {
        for (n, s) in [
            ("0", Severity::Info),
            ("1", Severity::Info),
            ("2", Severity::Warning),
            ("3", Severity::Warning),
            ("4", Severity::Error),
            ("5", Severity::Critical),
        ] {
            assert_eq!(
                one_alert(&with(PROBLEM, &[("event_nseverity", n.into())])).severity,
                s
            );
        }
        let by_name = with(
            PROBLEM,
            &[
                ("event_nseverity", "{EVENT.NSEVERITY}".into()),
                ("event_severity", "Disaster".into()),
            ],
        );
        assert_eq!(one_alert(&by_name).severity, Severity::Critical);
        let none = with(
            PROBLEM,
            &[
                ("event_nseverity", 9.into()),
                ("event_severity", "Odd".into()),
            ],
        );
        assert_eq!(one_alert(&none).severity, Severity::None);
    }

    #[test]
    fn test_dialog_is_accepted_without_an_alert() {
        let test = MEDIA_TYPE_PARAMETERS
            .iter()
            .skip(3)
            .map(|(k, v)| ((*k).to_string(), Value::from(*v)))
            .collect::<Map<_, _>>();
        let body = serde_json::to_vec(&test).unwrap();
        assert_eq!(parse(&body, &cx()).unwrap(), Parsed::default());
    }

    #[test]
    fn discovery_never_resolves_and_tags_come_in_every_shape() {
        let d = with(
            PROBLEM,
            &[
                ("event_source", "1".into()),
                ("event_value", "2".into()),
                ("event_tags", "{EVENT.TAGSJSON}".into()),
            ],
        );
        let a = one_alert(&d);
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.labels.keys().collect::<Vec<_>>(), ["host"]);
        let as_text = with(
            PROBLEM,
            &[(
                "event_tags",
                r#"[{"tag":"team","value":"dba"},{"tag":"bare"}]"#.into(),
            )],
        );
        let a = one_alert(&as_text);
        assert_eq!(a.labels["team"], "dba");
        assert!(!a.labels.contains_key("bare"));
        assert_eq!(a.annotations["event_tags"], "team:dba, bare");
        let old_style = with(
            PROBLEM,
            &[("event_tags", "team:dba, env:prod, bare".into())],
        );
        assert_eq!(one_alert(&old_style).labels["env"], "prod");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(parse(b"{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
        assert!(parse(b"[]", &cx()).is_err());
        assert!(parse(br#"{"event_value":"1"}"#, &cx())
            .unwrap_err()
            .contains("event_id"));
        assert!(parse(br#"{"event_id":"1"}"#, &cx())
            .unwrap_err()
            .contains("event_value"));
        assert!(parse(br#"{"event_id":"1","event_value":"7"}"#, &cx())
            .unwrap_err()
            .contains("`7`"));
        assert_eq!(
            one_alert(r#"{"event_id":5,"event_value":1}"#).title,
            "Zabbix event 5"
        );
    }

    #[test]
    fn published_script_and_media_type_agree() {
        let export: serde_yaml::Value = serde_yaml::from_str(MEDIA_TYPE_YAML).unwrap();
        let media = &export["zabbix_export"]["media_types"][0];
        assert_eq!(media["type"].as_str(), Some("WEBHOOK"));
        assert_eq!(media["script"].as_str(), Some(MEDIA_TYPE_SCRIPT));
        let params: Vec<(&str, &str)> = media["parameters"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
            .collect();
        assert_eq!(params, MEDIA_TYPE_PARAMETERS);
        // What the script leaves out of the body is what configures it.
        for name in ["url", "token", "http_proxy"] {
            assert!(MEDIA_TYPE_SCRIPT.contains(&format!("{name}: true")));
        }
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["event_id", "event_value", "event_source", "event_update_status", "event_update_action",
              "event_ack_status", "event_nseverity", "event_severity", "event_name", "event_tags",
              "host_name", "tag", "value", "link"],
            &["1", "0", "{EVENT.ID}", "acknowledged", "Yes", "High", "*UNKNOWN*", "[{\"tag\":\"a\"}]", "a:b, c", "{", "}"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(p) = parse(&body, &keeping_raw(cx())) {
                for a in &p.alerts {
                    prop_assert!(!a.fingerprint.is_empty());
                    prop_assert!(!a.title.is_empty());
                }
            }
        }
    }
}
