//! What `tocsin plugin test --event` accepts besides a fixture event or case: an entry of
//! `GET /api/dropped` (`{id, at, plugin, reason, alert}`), that answer whole when it holds one entry,
//! or a bare alert as tocsin stores it. Each becomes a fixture event.

use serde_json::Value;

use crate::domain::alert::Alert;
use crate::domain::plugin_event::event_of;

/// Turns a dropped entry or a stored alert into a fixture event; anything else is returned as it was.
pub fn normalise(value: serde_yaml::Value) -> Result<serde_yaml::Value, String> {
    let json: Value = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    let alert = if let Some(list) = json.get("dropped").and_then(Value::as_array) {
        match list.as_slice() {
            [one] => one.get("alert").cloned(),
            _ => {
                return Err(format!(
                    "this /api/dropped answer holds {} entries; save one entry (`.dropped[0]`)",
                    list.len()
                ))
            }
        }
    } else if json.get("alert").is_some() && json.get("reason").is_some() {
        json.get("alert").cloned()
    } else if json.get("received_at").is_some() && json.get("fingerprint").is_some() {
        Some(json)
    } else {
        None
    };
    let Some(alert) = alert else {
        return Ok(value);
    };
    let alert: Alert =
        serde_json::from_value(alert).map_err(|e| format!("not a tocsin alert: {e}"))?;
    serde_yaml::to_value(event_of(&alert)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DROPPED: &str = r#"{"id": 7, "at": "2026-12-01T10:00:00Z", "plugin": "suppress",
        "reason": "matched drop rule", "alert": {"source": "prom", "fingerprint": "abc",
        "status": "firing", "title": "Watchdog", "severity": "none",
        "labels": {"alertname": "Watchdog"}, "annotations": {},
        "received_at": "2026-12-01T10:00:00Z", "raw": "{\"x\":1}"}}"#;

    #[test]
    fn a_dropped_entry_becomes_a_fixture_event() {
        let v: serde_yaml::Value = serde_yaml::from_str(DROPPED).unwrap();
        let e = serde_json::to_value(normalise(v).unwrap()).unwrap();
        assert_eq!(e["title"], "Watchdog");
        assert_eq!(e["labels"]["alertname"], "Watchdog");
        assert_eq!(e["received_at_ms"], 1_796_119_200_000i64);
        assert_eq!(e["raw_json"], "{\"x\":1}");
        // It reads as a fixture event.
        let _: crate::plugin::fixtures::FixtureEvent =
            serde_json::from_value(e).expect("a fixture event");
    }

    #[test]
    fn the_whole_answer_with_one_entry_is_taken_and_with_two_refused() {
        let one = format!("{{\"dropped\": [{DROPPED}]}}");
        let v: serde_yaml::Value = serde_yaml::from_str(&one).unwrap();
        assert!(normalise(v).is_ok());
        let two = format!("{{\"dropped\": [{DROPPED}, {DROPPED}]}}");
        let v: serde_yaml::Value = serde_yaml::from_str(&two).unwrap();
        assert!(normalise(v).unwrap_err().contains("holds 2 entries"));
    }

    #[test]
    fn a_fixture_event_is_left_alone() {
        let v: serde_yaml::Value = serde_yaml::from_str("title: x\nlabels: {a: b}\n").unwrap();
        assert_eq!(normalise(v.clone()).unwrap(), v);
    }
}
