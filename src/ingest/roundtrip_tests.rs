//! Accept ⇒ decode, for every parser: whatever alert any sender kind's parser accepts is read back
//! unchanged from the journal's encoding, whatever its times, labels or sizes. The inputs are each
//! kind's real payloads with their leaves mutated: times at both ends of the representable range and
//! beyond, odd offsets, leap seconds, epoch numbers of any size, and huge or odd strings.

use proptest::prelude::*;
use serde_json::Value;

use super::kinds;
use super::parse::{self, Context};
use crate::domain::alert::Alert;
use crate::domain::time::Timestamp;

fn fixture(path: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/payloads")
        .join(path);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// One payload per kind, and how to parse it.
fn cases() -> Vec<(&'static str, Value)> {
    let prom = serde_json::json!([{"labels": {"alertname": "A", "severity": "critical"},
        "annotations": {"summary": "s"}, "startsAt": "2026-11-22T11:00:00Z",
        "endsAt": "2026-11-22T13:00:00Z", "generatorURL": "http://p/graph"}]);
    let am = serde_json::json!({"version": "4", "status": "firing", "receiver": "r", "groupKey": "g",
        "alerts": [{"status": "firing", "labels": {"alertname": "A"}, "annotations": {"summary": "s"},
        "startsAt": "2026-11-22T11:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f"}]});
    let generic = serde_json::json!({"title": "t", "status": "firing", "severity": "error",
        "fingerprint": "f", "labels": {"host": "db1"}, "annotations": {"runbook": "r"},
        "description": "d", "url": "http://x"});
    vec![
        ("prometheus", prom),
        ("alertmanager", am),
        ("generic", generic),
        ("mapping", fixture("generic/mapped.json")),
        ("grafana", fixture("grafana/firing.json")),
        ("sentry", fixture("sentry/metric_alert_critical.json")),
        ("sentry-event", fixture("sentry/event_alert.json")),
        ("pagerduty", fixture("pagerduty/trigger.json")),
        ("datadog", fixture("datadog/triggered.json")),
        ("newrelic", fixture("newrelic/activated.json")),
        ("zabbix", fixture("zabbix/problem.json")),
        ("uptime_kuma", fixture("uptime_kuma/down.json")),
        ("sns", fixture("sns/notification_alarm.json")),
    ]
}

fn mapping() -> crate::config::MappingConfig {
    serde_yaml::from_str(
        "{alerts: /events, title: /check/name, key: [/check/id, /region], status: /state, \
         firing: [down, degraded], resolved: [up], severity: /level, labels: {region: /region}}",
    )
    .unwrap()
}

/// What each kind's parser accepts from `body`.
fn parse(kind: &str, body: &[u8], cx: &Context<'_>) -> Vec<Alert> {
    let parsed = match kind {
        "prometheus" => parse::prometheus(body, cx),
        "alertmanager" => parse::alertmanager(body, cx),
        "generic" => parse::generic(body, cx),
        "mapping" => kinds::mapping::parse(&mapping(), body, cx),
        "grafana" => kinds::grafana::parse(body, cx),
        "sentry" => kinds::sentry::parse("metric_alert", body, cx),
        "sentry-event" => kinds::sentry::parse("event_alert", body, cx),
        "pagerduty" => {
            return kinds::pagerduty::parse(body, cx)
                .map(|e| vec![e.alert])
                .unwrap_or_default()
        }
        "datadog" => kinds::datadog::parse(body, cx),
        "newrelic" => kinds::newrelic::parse(body, cx),
        "zabbix" => kinds::zabbix::parse(body, cx),
        "uptime_kuma" => kinds::uptime_kuma::parse(body, cx),
        // The signature is checked before this, and is not what is under test.
        "sns" => {
            return kinds::sns::envelope(body)
                .map(|env| kinds::sns::alerts(&env, cx).alerts)
                .unwrap_or_default()
        }
        other => panic!("no parser for {other}"),
    };
    parsed.map(|p| p.alerts).unwrap_or_default()
}

/// What may replace one leaf of a payload: which, and the candidates.
#[derive(Debug, Clone)]
struct Leaf {
    pick: u8,
    time: String,
    odd: String,
    number: i64,
}

fn time_text() -> impl Strategy<Value = String> {
    let rfc3339 = (
        0i32..10000,
        1u8..13,
        1u8..32,
        0u8..24,
        0u8..60,
        0u8..61,
        proptest::option::of(0u32..1_000_000_000),
        proptest::option::of((-23i8..24, 0u8..60)),
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, off)| {
            let frac = frac.map(|f| format!(".{f:09}")).unwrap_or_default();
            let zone = match off {
                None => "Z".to_string(),
                Some((oh, om)) => format!(
                    "{}{:02}:{om:02}",
                    if oh < 0 { '-' } else { '+' },
                    oh.unsigned_abs()
                ),
            };
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{frac}{zone}")
        });
    prop_oneof![
        rfc3339,
        Just("0001-01-01T00:00:00Z".to_string()),
        Just("0002-01-01T00:00:00+01:00".to_string()),
        Just("9999-12-31T23:59:59-23:59".to_string()),
        Just("2016-12-31T23:59:60Z".to_string()),
        Just("1969-12-31T23:59:59.999+0000".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn odd_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,40}",
        Just(String::new()),
        Just("\u{0}\u{202E}@channel <script>".to_string()),
        (0usize..64 * 1024).prop_map(|n| "x".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    (
        any::<u8>(),
        time_text(),
        odd_text(),
        prop_oneof![
            any::<i64>(),
            Just(i64::MAX),
            Just(i64::MIN),
            Just(0i64),
            Just(253_402_300_800_000i64),
            Just(-62_135_596_800_000i64),
        ],
    )
        .prop_map(|(pick, time, odd, number)| Leaf {
            pick,
            time,
            odd,
            number,
        })
}

/// Whether a leaf holds a time (RFC 3339 text, or an epoch number under a time-like key): those are
/// the ones most worth replacing with odd times.
fn looks_like_time(key: &str, v: &Value) -> bool {
    let key = key.to_ascii_lowercase();
    let timely_key = ["time", "at", "date", "seen", "since", "timestamp", "when"]
        .iter()
        .any(|k| key.ends_with(k));
    match v {
        Value::String(s) => {
            let b = s.as_bytes();
            timely_key || (b.len() >= 10 && b[4] == b'-' && b[7] == b'-')
        }
        Value::Number(_) => timely_key,
        _ => false,
    }
}

/// Replaces leaves in order (strings and numbers), `edits[i]` deciding for the i-th one met: times
/// are mostly replaced by odd times, other leaves sometimes by odd strings or numbers.
fn mutate(key: &str, v: &mut Value, edits: &[Leaf], at: &mut usize) {
    match v {
        Value::Object(m) => m.iter_mut().for_each(|(k, c)| mutate(k, c, edits, at)),
        Value::Array(a) => a.iter_mut().for_each(|c| mutate(key, c, edits, at)),
        Value::String(_) | Value::Number(_) => {
            let Some(edit) = edits.get(*at) else { return };
            *at += 1;
            let timely = looks_like_time(key, v);
            *v = match (timely, edit.pick) {
                (true, 0..=159) if edit.pick % 2 == 0 => Value::String(edit.time.clone()),
                (true, 0..=159) => Value::from(edit.number),
                (false, 0..=24) => Value::String(edit.odd.clone()),
                (false, 25..=34) => Value::from(edit.number),
                _ => return,
            };
        }
        _ => {}
    }
}

/// The harness is not vacuous: each payload as it is gives alerts.
#[test]
fn every_payload_as_it_is_is_accepted() {
    let cx = Context {
        source: "src",
        now: Timestamp::from_millis(1_795_000_000_000),
        resolve_timeout: std::time::Duration::from_secs(300),
        keep_raw: false,
    };
    for (kind, payload) in cases() {
        let body = serde_json::to_vec(&payload).unwrap();
        assert!(!parse(kind, &body, &cx).is_empty(), "{kind}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn whatever_a_parser_accepts_round_trips_through_the_journal(
        case in 0usize..13,
        edits in proptest::collection::vec(leaf(), 0..80),
        keep_raw in any::<bool>(),
    ) {
        let (kind, mut payload) = cases().swap_remove(case);
        let mut at = 0;
        mutate("", &mut payload, &edits, &mut at);
        let body = serde_json::to_vec(&payload).unwrap();
        let cx = Context {
            source: "src",
            now: Timestamp::from_millis(1_795_000_000_000),
            resolve_timeout: std::time::Duration::from_secs(300),
            keep_raw,
        };
        for alert in parse(kind, &body, &cx) {
            // The journal's encoding, both ways.
            let stored = serde_json::to_string(&alert).unwrap();
            let back: Alert = serde_json::from_str(&stored)
                .map_err(|e| TestCaseError::fail(format!("{kind}: {e}: {stored}")))?;
            prop_assert_eq!(&back, &alert, "{}", kind);
            for t in [alert.starts_at, alert.ends_at].into_iter().flatten() {
                prop_assert!((Timestamp::MIN..=Timestamp::MAX).contains(&t), "{}: {:?}", kind, t);
            }
        }
    }
}
