//! The `grafana` source kind: Grafana unified alerting's webhook contact point.
//!
//! Grafana posts a notification *group* (`alerts[]` plus envelope fields such as `groupKey`, `title` and a
//! group `status`). The group is only a delivery envelope: each item in `alerts[]` carries its own
//! `status` and `fingerprint`, and each becomes one alert here with its own key. Keying by group (what
//! Grafana OnCall does) resolves every alert of a group together, which users report as wrong.
//!
//! Keys are `<namespace>/<fingerprint>`, the namespace being a short hash of the envelope's `orgId` and
//! `externalURL`: two Grafanas (or two orgs of one Grafana) can produce the same fingerprint for
//! unrelated alerts, and one tocsin source may receive from several of them.
//!
//! As in `ingest::parse`, an unreadable envelope fails the whole request, while an invalid item is
//! reported by position and its neighbours are still accepted.

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::json;
use crate::domain::alert::{labels_fingerprint, Alert, Labels, Routing, Severity, Status};
use crate::ingest::parse::{firing_or_resolved, raw_of, time_field, Context, Parsed};

/// The envelope fields we read; everything else (`groupKey`, `commonLabels`, `message`...) is ignored.
#[derive(Deserialize)]
struct Group {
    alerts: Vec<Value>,
    /// A number in Grafana's payload; a string is accepted too (custom templates, proxies).
    #[serde(default, rename = "orgId")]
    org_id: Option<Value>,
    #[serde(default, rename = "externalURL")]
    external_url: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct GrafanaAlert {
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
    #[serde(default, rename = "panelURL")]
    panel_url: Option<String>,
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// Reads one request's payload.
pub fn parse(body: &[u8], cx: &Context<'_>) -> Result<Parsed, String> {
    let value: Value = json::read(body)?;
    if !value.is_object() {
        return Err(
            "expected Grafana's webhook payload: a JSON object with an `alerts` array".into(),
        );
    }
    let group: Group =
        serde_json::from_value(value).map_err(|e| format!("not a Grafana webhook payload: {e}"))?;
    let namespace = namespace(group.org_id.as_ref(), group.external_url.as_deref());
    let group_title = group.title.as_deref().map(str::trim).unwrap_or("");
    let mut out = Parsed::default();
    for (i, item) in group.alerts.into_iter().enumerate() {
        match one(item, &namespace, group_title, cx) {
            Ok(a) => out.alerts.push(a),
            Err(e) => out.rejected.push(format!("alerts[{i}]: {e}")),
        }
    }
    Ok(out)
}

/// First 12 hex digits of SHA-256 over `orgId` and `externalURL`. Hashed rather than spelled out so keys
/// stay short whatever the URL; a trailing `/` is dropped so that editing Grafana's `root_url` to add or
/// remove one does not orphan every open ticket.
fn namespace(org_id: Option<&Value>, external_url: Option<&str>) -> String {
    let org = match org_id {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let url = external_url.unwrap_or("").trim().trim_end_matches('/');
    let mut h = Sha256::new();
    h.update(org.as_bytes());
    // A separator no org id contains, so ("1", "2x") and ("12", "x") cannot hash alike.
    h.update(b"\n");
    h.update(url.as_bytes());
    hex::encode(h.finalize())[..12].to_string()
}

fn non_empty(s: Option<&String>) -> Option<&str> {
    s.map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn one(item: Value, namespace: &str, group_title: &str, cx: &Context<'_>) -> Result<Alert, String> {
    let raw = raw_of(&item, cx);
    let g: GrafanaAlert = serde_json::from_value(item).map_err(|e| e.to_string())?;
    let status = firing_or_resolved(g.status.trim())?;
    let fingerprint = match non_empty(g.fingerprint.as_ref()) {
        Some(f) => f.to_string(),
        // Older Grafanas and custom templates may leave it out; the label set is what Grafana hashes
        // anyway, so the fallback is stable across notifications.
        None if !g.labels.is_empty() => labels_fingerprint(&g.labels),
        None => return Err("no fingerprint and no labels to identify the alert".into()),
    };
    let key = format!("{namespace}/{fingerprint}");
    // Times are trimmed; `0001-01-01T00:00:00Z` (Go's zero time) comes back as `None`: it means "unset".
    let starts_at = time_field("startsAt", g.starts_at.as_deref().map(str::trim))?;
    // Firing alerts carry no lease: Grafana sends the resolution itself, and a firing alert's `endsAt`
    // is only Grafana's internal resend horizon.
    let ends_at = match status {
        Status::Resolved => time_field("endsAt", g.ends_at.as_deref().map(str::trim))?,
        Status::Firing | Status::Acknowledged | Status::Updated => None,
    };
    let title = non_empty(g.annotations.get("summary"))
        .or_else(|| non_empty(g.labels.get("alertname")))
        .or(Some(group_title).filter(|t| !t.is_empty()))
        .unwrap_or(&fingerprint)
        .to_string();
    let severity = g
        .labels
        .get("severity")
        .map(|s| Severity::parse_lenient(s))
        .unwrap_or(Severity::None);
    let url = [&g.generator_url, &g.panel_url, &g.dashboard_url]
        .into_iter()
        .find_map(|u| non_empty(u.as_ref()))
        .map(str::to_string);
    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint: key,
        status,
        title,
        severity,
        description: non_empty(g.annotations.get("description")).map(str::to_string),
        labels: g.labels,
        annotations: g.annotations,
        url,
        starts_at,
        ends_at,
        received_at: cx.now,
        routing: Routing::default(),
        raw,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::time::Timestamp;
    use crate::ingest::kinds::testing::{
        self, arb_json, assert_alert, assert_resolves, keeping_raw, labels, one_alert, raw_json,
    };

    const FIRING: &str = include_str!("../../../examples/payloads/grafana/firing.json");
    const RESOLVED: &str = include_str!("../../../examples/payloads/grafana/resolved.json");

    fn cx() -> Context<'static> {
        testing::cx("grafana", "2026-03-02T10:00:00Z")
    }

    fn ts(text: &str) -> Option<Timestamp> {
        Timestamp::parse_optional(text).unwrap()
    }

    #[test]
    fn firing_fixture() {
        let p = parse(FIRING.as_bytes(), &cx()).unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        assert_eq!(p.alerts.len(), 2);

        let a = &p.alerts[0];
        let ns = namespace(Some(&Value::from(3)), Some("https://grafana.example.net/"));
        let key = format!("{ns}/5d1f0c3a9b7e2640");
        assert_alert(a, &key, Status::Firing, Severity::Critical);
        assert_eq!(a.source, "grafana");
        assert_eq!(a.title, "Disk on db-2 is 93% full");
        assert_eq!(
            a.description.as_deref(),
            Some("The /var/lib/postgresql volume has less than 10% free space.")
        );
        assert_eq!(a.labels["alertname"], "DiskAlmostFull");
        assert_eq!(a.labels["instance"], "db-2");
        assert_eq!(
            a.annotations["runbook_url"],
            "https://wiki.example.net/runbooks/disk"
        );
        assert_eq!(
            a.url.as_deref(),
            Some("https://grafana.example.net/alerting/grafana/fe1kq2wz0a8e/view?orgId=3")
        );
        assert_eq!(a.starts_at, ts("2026-03-02T09:41:30.5+01:00"));
        assert_eq!(a.ends_at, None);
        assert_eq!(a.raw, None);

        // No summary: the alert name is the title. No severity label: none. No generatorURL: the panel.
        let b = &p.alerts[1];
        assert_eq!(b.title, "QueueBacklog");
        assert_eq!(b.severity, Severity::None);
        assert_eq!(
            b.url.as_deref(),
            Some("https://grafana.example.net/d/q9x/queues?orgId=3&viewPanel=4")
        );
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn resolved_fixture_resolves_the_firing_key() {
        let firing = parse(FIRING.as_bytes(), &cx()).unwrap();
        let r = one_alert(parse(RESOLVED.as_bytes(), &cx()));
        assert_resolves(&firing.alerts[0], &r);
        assert_eq!(r.starts_at, firing.alerts[0].starts_at);
        assert_eq!(r.ends_at, ts("2026-03-02T09:58:00+01:00"));
        assert_eq!(r.severity, Severity::Critical);
    }

    #[test]
    fn keep_raw_keeps_each_item() {
        let p = parse(RESOLVED.as_bytes(), &keeping_raw(cx())).unwrap();
        let raw = raw_json(&p.alerts[0]);
        assert_eq!(raw["fingerprint"], "5d1f0c3a9b7e2640");
        assert!(raw.get("orgId").is_none(), "raw is the item, not the group");
    }

    #[test]
    fn same_fingerprint_from_another_grafana_is_another_key() {
        let body = |org: &str, url: &str| {
            format!(
                r#"{{"orgId":{org},"externalURL":"{url}","alerts":[{{"status":"firing","labels":{{"alertname":"A"}},"fingerprint":"abc"}}]}}"#
            )
        };
        let key = |org: &str, url: &str| {
            parse(body(org, url).as_bytes(), &cx()).unwrap().alerts[0]
                .fingerprint
                .clone()
        };
        let base = key("1", "https://g1.example/");
        assert!(base.ends_with("/abc"));
        assert_ne!(base, key("2", "https://g1.example/"));
        assert_ne!(base, key("1", "https://g2.example/"));
        // A trailing slash is not another Grafana.
        assert_eq!(base, key("1", "https://g1.example"));
    }

    #[test]
    fn missing_fingerprint_falls_back_to_the_labels() {
        let body = br#"{"alerts":[{"status":"firing","labels":{"b":"2","a":"1"}}]}"#;
        let a = &parse(body, &cx()).unwrap().alerts[0];
        let labels = labels(&[("a", "1"), ("b", "2")]);
        assert_eq!(
            a.fingerprint,
            format!("{}/{}", namespace(None, None), labels_fingerprint(&labels))
        );
        // Nothing else to go on: the group title.
        let body = br#"{"title":"[FIRING:1] grp","alerts":[{"status":"firing","labels":{"x":"y"},"fingerprint":"f"}]}"#;
        assert_eq!(
            parse(body, &cx()).unwrap().alerts[0].title,
            "[FIRING:1] grp"
        );
    }

    #[test]
    fn invalid_items_are_rejected_by_position() {
        let body = br#"{"alerts":[
            {"status":"firing","labels":{"alertname":"ok"},"fingerprint":"1"},
            {"status":"pending","labels":{"alertname":"x"},"fingerprint":"2"},
            {"labels":{"alertname":"no status"}},
            {"status":"firing","labels":{"alertname":"n"},"fingerprint":"3","startsAt":"yesterday"},
            {"status":"firing","labels":{"alertname":1}},
            {"status":"firing"},
            "not an object"
        ]}"#;
        let p = parse(body, &cx()).unwrap();
        assert_eq!(p.alerts.len(), 1);
        assert_eq!(p.rejected.len(), 6, "{:?}", p.rejected);
        assert!(p.rejected[0].starts_with("alerts[1]: status must be"));
        assert!(p.rejected[1].starts_with("alerts[2]: "));
        assert!(p.rejected[2].starts_with("alerts[3]: startsAt"));
        assert!(p.rejected[5].starts_with("alerts[6]: "));
    }

    #[test]
    fn unreadable_payloads_are_errors() {
        for body in [
            &b"not json"[..],
            b"",
            b"[]",
            b"42",
            b"{}",
            br#"{"alerts":{}}"#,
            br#"{"alerts":null}"#,
            br#"{"alerts":[],"externalURL":7}"#,
            br#"{"alerts":[],"title":["x"]}"#,
        ] {
            assert!(
                parse(body, &cx()).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(parse(b"{", &cx())
            .unwrap_err()
            .starts_with("malformed JSON"));
        // An empty group is readable: nothing to do.
        assert_eq!(
            parse(br#"{"alerts":[]}"#, &cx()).unwrap(),
            Parsed::default()
        );
    }

    testing::arbitrary_bytes_never_panic!(|body| parse(body, &cx()));

    proptest! {
        #[test]
        fn arbitrary_json_never_panics(v in arb_json(
            &["alerts", "status", "labels", "annotations", "fingerprint", "startsAt", "endsAt", "orgId",
              "externalURL", "title"],
            &["firing", "resolved", "0001-01-01T00:00:00Z", "2026-03-02T09:00:00Z"],
        )) {
            let body = serde_json::to_vec(&v).unwrap();
            if let Ok(p) = parse(&body, &keeping_raw(cx())) {
                for a in &p.alerts {
                    prop_assert!(!a.fingerprint.is_empty());
                    prop_assert!(a.status != Status::Acknowledged);
                }
            }
        }
    }
}
