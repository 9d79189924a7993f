//! What plugins decide, and how a chain of decisions changes an alert. Pure: the wasm host in `plugin/`
//! produces [`Verdict`]s, [`apply`] folds them into the alert, and the store records the result.

use serde::{Deserialize, Serialize};

use super::alert::{Alert, Labels, Severity};

/// Ticket fields a plugin may set; `None` / empty keeps what the alert says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFields {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub group_key: Option<String>,
}

/// A `route` decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteFields {
    #[serde(default)]
    pub ticket: TicketFields,
    #[serde(default)]
    pub add_labels: Labels,
    #[serde(default)]
    pub rooms: Vec<String>,
    #[serde(default)]
    pub mentions: Vec<String>,
}

/// One plugin's decision about one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    Drop(String),
    Route(RouteFields),
}

/// Why a plugin did not produce a decision. Each is a plugin failure, and tocsin fails open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The plugin returned `err`.
    Error,
    /// The plugin trapped (panic, unreachable, bad memory access...).
    Trap,
    OutOfFuel,
    /// It ran past its wall-clock deadline.
    Deadline,
    /// It tried to grow its memory past the limit.
    MemoryLimit,
    /// It could not be instantiated.
    Instantiate,
    /// It is switched off after repeated failures.
    Disabled,
    /// It skips this alert's key for a while, after repeated failures on it (the per-key breaker).
    Skipped,
    /// This alert's failure made it skip the alert's key from now on, for a while: recorded on the
    /// ticket even for a resend, since it says why the plugin stops deciding about it.
    BreakerOpen,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Error => "error",
            FailureKind::Trap => "trap",
            FailureKind::OutOfFuel => "out_of_fuel",
            FailureKind::Deadline => "deadline",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::Instantiate => "instantiate",
            FailureKind::Disabled => "disabled",
            FailureKind::Skipped => "skipped",
            FailureKind::BreakerOpen => "breaker_open",
        }
    }
}

/// A plugin that failed on an alert, recorded on the ticket's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFailure {
    pub plugin: String,
    pub kind: FailureKind,
    pub message: String,
    /// The plugin's last log lines before it failed (`level: message`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// An alert a plugin dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropInfo {
    pub plugin: String,
    pub reason: String,
}

/// Folds one plugin's verdict into the alert. Returns `Some(reason)` if the alert was dropped.
pub fn apply(alert: &mut Alert, verdict: &Verdict) -> Option<String> {
    match verdict {
        Verdict::Pass => None,
        Verdict::Drop(reason) => Some(reason.clone()),
        Verdict::Route(r) => {
            for (k, v) in &r.add_labels {
                alert.labels.insert(k.clone(), v.clone());
            }
            if let Some(title) = r.ticket.title.as_ref().filter(|t| !t.trim().is_empty()) {
                alert.title = title.clone();
            }
            if let Some(severity) = r.ticket.severity {
                alert.severity = severity;
            }
            let routing = &mut alert.routing;
            extend_unique(&mut routing.rooms, &r.rooms);
            extend_unique(&mut routing.mentions, &r.mentions);
            extend_unique(&mut routing.tags, &r.ticket.tags);
            if r.ticket.body.is_some() {
                routing.body = r.ticket.body.clone();
            }
            if let Some(key) = r.ticket.group_key.as_ref().filter(|k| !k.is_empty()) {
                if routing.original_fingerprint.is_none() {
                    routing.original_fingerprint = Some(alert.fingerprint.clone());
                }
                routing.group_key = Some(key.clone());
                alert.fingerprint = format!("group:{key}");
            }
            None
        }
    }
}

fn extend_unique(into: &mut Vec<String>, from: &[String]) {
    for item in from {
        if !item.is_empty() && !into.contains(item) {
            into.push(item.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Routing, Status};
    use crate::domain::time::Timestamp;

    fn alert() -> Alert {
        Alert {
            source: "prom".into(),
            fingerprint: "fp".into(),
            status: Status::Firing,
            title: "t".into(),
            severity: Severity::Warning,
            labels: Labels::from([("team".to_string(), "infra".to_string())]),
            annotations: Labels::new(),
            description: None,
            url: None,
            starts_at: None,
            ends_at: None,
            received_at: Timestamp::from_millis(0),
            routing: Routing::default(),
            raw: None,
        }
    }

    #[test]
    fn routes_accumulate_and_later_fields_win() {
        let mut a = alert();
        let enrich = Verdict::Route(RouteFields {
            add_labels: Labels::from([("owner".to_string(), "db-team".to_string())]),
            ticket: TicketFields {
                body: Some("runbook".into()),
                tags: vec!["db".into()],
                ..TicketFields::default()
            },
            ..RouteFields::default()
        });
        let route = Verdict::Route(RouteFields {
            rooms: vec!["ops".into(), "ops".into()],
            mentions: vec!["alice".into()],
            ticket: TicketFields {
                title: Some("DB down".into()),
                severity: Some(Severity::Critical),
                tags: vec!["db".into(), "page".into()],
                group_key: Some("db-outage".into()),
                ..TicketFields::default()
            },
            ..RouteFields::default()
        });
        assert_eq!(apply(&mut a, &enrich), None);
        assert_eq!(apply(&mut a, &Verdict::Pass), None);
        assert_eq!(apply(&mut a, &route), None);
        assert_eq!(a.labels["owner"], "db-team");
        assert_eq!(a.title, "DB down");
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.routing.rooms, ["ops"]);
        assert_eq!(a.routing.tags, ["db", "page"]);
        assert_eq!(a.routing.body.as_deref(), Some("runbook"));
        assert_eq!(a.fingerprint, "group:db-outage");
        assert_eq!(a.routing.original_fingerprint.as_deref(), Some("fp"));
        assert_eq!(
            apply(&mut a, &Verdict::Drop("noise".into())),
            Some("noise".into())
        );
    }
}
