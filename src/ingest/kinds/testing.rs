//! Test helpers shared by the parsers' tests in `ingest::kinds`: a parse context, label maps from
//! pairs, the one alert a payload must yield, edited fixtures, the checks every fixture test starts
//! with, an alert's raw JSON, and the arbitrary input (and the bytes property) of the no-panic tests.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

use crate::domain::alert::{Alert, Labels, Severity, Status};
use crate::domain::time::Timestamp;
use crate::ingest::parse::{Context, Parsed};

/// A context for `source` at `now` (RFC 3339) that keeps no raw JSON.
pub(crate) fn cx(source: &'static str, now: &str) -> Context<'static> {
    cx_at(source, Timestamp::parse_optional(now).unwrap().unwrap())
}

/// [`cx`] at a [`Timestamp`].
pub(crate) fn cx_at(source: &'static str, now: Timestamp) -> Context<'static> {
    Context {
        source,
        now,
        resolve_timeout: Duration::from_secs(300),
        keep_raw: false,
    }
}

/// The same context, keeping each alert's raw JSON.
pub(crate) fn keeping_raw(cx: Context<'static>) -> Context<'static> {
    Context {
        keep_raw: true,
        ..cx
    }
}

/// A label (or annotation) map from `(name, value)` pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The only alert of a payload that must be read, yield exactly one alert and reject nothing.
#[track_caller]
pub(crate) fn one_alert(parsed: Result<Parsed, String>) -> Alert {
    let p = parsed.unwrap();
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert_eq!(p.alerts.len(), 1, "{:?}", p.alerts);
    p.alerts.into_iter().next().unwrap()
}

/// `body` (JSON text) changed by `edit`, as JSON text again.
#[track_caller]
pub(crate) fn edited(body: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(body).unwrap();
    edit(&mut v);
    v.to_string()
}

/// Asserts what fixture tests check first: the alert's key, status and severity.
#[track_caller]
pub(crate) fn assert_alert(a: &Alert, fingerprint: &str, status: Status, severity: Severity) {
    assert_eq!(a.fingerprint, fingerprint, "fingerprint");
    assert_eq!(a.status, status, "status");
    assert_eq!(a.severity, severity, "severity");
}

/// Asserts that `resolved` resolves the ticket `fired` opened: the same key, resolved.
#[track_caller]
pub(crate) fn assert_resolves(fired: &Alert, resolved: &Alert) {
    assert_eq!(resolved.fingerprint, fired.fingerprint, "fingerprint");
    assert_eq!(resolved.status, Status::Resolved, "status");
}

/// The raw JSON an alert kept (the context must have been [`keeping_raw`]).
#[track_caller]
pub(crate) fn raw_json(alert: &Alert) -> Value {
    serde_json::from_str(alert.raw.as_deref().unwrap()).unwrap()
}

/// Any bytes, up to 512 of them.
pub(crate) fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

/// A property test named `arbitrary_bytes_never_panic`: whatever the bytes, `$parse` (a closure over
/// them) returns.
macro_rules! arbitrary_bytes_never_panic {
    ($parse:expr) => {
        ::proptest::proptest! {
            #[test]
            fn arbitrary_bytes_never_panic(body in $crate::ingest::kinds::testing::arb_bytes()) {
                let _ = ($parse)(&body[..]);
            }
        }
    };
}
pub(crate) use arbitrary_bytes_never_panic;

/// Arbitrary JSON for the parsers' no-panic properties, biased towards the `keys` and `words` each
/// parser looks for so that the generated documents reach past the first check.
pub(crate) fn arb_json(
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    arb_json_nested(4, keys, words)
}

/// [`arb_json`] nested up to `depth` levels, for payloads whose fields lie deeper than four.
pub(crate) fn arb_json_nested(
    depth: u32,
    keys: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(words).prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 64, 8, move |inner| {
        let key = prop_oneof![
            prop::sample::select(keys).prop_map(str::to_string),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
