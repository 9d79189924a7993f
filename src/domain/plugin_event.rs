//! An alert as a plugin test event (the fixture event format of `plugins/README.md`), for
//! `plugin test --event`, `/api/replay` and the fixture download.

use serde_json::{json, Value};

use super::alert::Alert;

/// A stored alert in the fixture event format. Pure.
pub fn event_of(a: &Alert) -> Value {
    let mut e = json!({
        "title": a.title,
        "source": a.source,
        "fingerprint": a.routing.original_fingerprint.as_ref().unwrap_or(&a.fingerprint),
        "status": a.status,
        "severity": a.severity,
        "labels": a.labels,
        "annotations": a.annotations,
        "received_at_ms": a.received_at.as_millis(),
    });
    let opt = [
        ("description", a.description.as_ref().map(|d| json!(d))),
        ("generator_url", a.url.as_ref().map(|u| json!(u))),
        ("starts_at_ms", a.starts_at.map(|t| json!(t.as_millis()))),
        ("ends_at_ms", a.ends_at.map(|t| json!(t.as_millis()))),
        ("raw_json", a.raw.as_ref().map(|r| json!(r))),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            e[k] = v;
        }
    }
    e
}
