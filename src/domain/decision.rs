//! What a plugin did to an alert, change by change, for the ticket's timeline (`plugin_decided`).
//!
//! Pure: the host compares the alert before and after each plugin's verdict ([`changes`]); the store
//! writes one entry per change that is news for the ticket ([`is_news`]), so a resend that a plugin
//! routes the same way as before adds nothing, and the severity the sender gave is kept in `before`.

use serde::{Deserialize, Serialize};

use super::alert::{Alert, Labels};
use super::ticket::Ticket;

/// Which part of the alert a plugin changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Severity,
    Title,
    /// A label set or changed (`key` names it).
    Label,
    /// A room added.
    Room,
    /// A member or group mentioned.
    Mention,
    Tag,
    Body,
    GroupKey,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Severity => "severity",
            Field::Title => "title",
            Field::Label => "label",
            Field::Room => "room",
            Field::Mention => "mention",
            Field::Tag => "tag",
            Field::Body => "body",
            Field::GroupKey => "group_key",
        }
    }
}

/// One change one plugin made to an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginDecision {
    pub plugin: String,
    pub field: Field,
    /// The label's name, for [`Field::Label`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value before (`None`: there was none, e.g. a room added).
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The changes between `before` and `after` (the same alert on either side of one plugin's verdict).
pub fn changes(plugin: &str, before: &Alert, after: &Alert) -> Vec<PluginDecision> {
    let mut out = Vec::new();
    let mut push = |field, key: Option<&str>, b: Option<&str>, a: Option<&str>| {
        out.push(PluginDecision {
            plugin: plugin.to_string(),
            field,
            key: key.map(str::to_string),
            before: b.map(str::to_string),
            after: a.map(str::to_string),
        })
    };
    if before.severity != after.severity {
        push(
            Field::Severity,
            None,
            Some(before.severity.as_str()),
            Some(after.severity.as_str()),
        );
    }
    if before.title != after.title {
        push(Field::Title, None, Some(&before.title), Some(&after.title));
    }
    for (k, v) in &after.labels {
        let old = before.labels.get(k);
        if old != Some(v) {
            push(Field::Label, Some(k), old.map(String::as_str), Some(v));
        }
    }
    let (b, a) = (&before.routing, &after.routing);
    for (field, old, new) in [
        (Field::Room, &b.rooms, &a.rooms),
        (Field::Mention, &b.mentions, &a.mentions),
        (Field::Tag, &b.tags, &a.tags),
    ] {
        for item in new.iter().filter(|i| !old.contains(i)) {
            push(field, None, None, Some(item));
        }
    }
    if b.body != a.body {
        push(Field::Body, None, b.body.as_deref(), a.body.as_deref());
    }
    if b.group_key != a.group_key {
        push(
            Field::GroupKey,
            None,
            b.group_key.as_deref(),
            a.group_key.as_deref(),
        );
    }
    out
}

/// Whether the change is news for `ticket` as it was before the alert: a ticket that already shows
/// the change (a resend routed the same way) gets no entry for it again.
pub fn is_news(ticket: &Ticket, d: &PluginDecision) -> bool {
    let after = d.after.as_deref();
    let has = |list: &[String]| after.is_some_and(|a| list.iter().any(|x| x == a));
    let r = &ticket.routing;
    match d.field {
        Field::Severity => Some(ticket.severity.as_str()) != after,
        Field::Title => Some(ticket.title.as_str()) != after,
        Field::Label => label(&ticket.labels, d.key.as_deref()) != after,
        Field::Room => !has(&r.rooms),
        Field::Mention => !has(&r.mentions),
        Field::Tag => !has(&r.tags),
        Field::Body => r.body.as_deref() != after,
        Field::GroupKey => r.group_key.as_deref() != after,
    }
}

fn label<'a>(labels: &'a Labels, key: Option<&str>) -> Option<&'a str> {
    labels.get(key?).map(String::as_str)
}

/// The sentence for the timeline.
pub fn describe(d: &PluginDecision) -> String {
    let p = &d.plugin;
    let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "(none)".to_string());
    match d.field {
        Field::Severity => format!(
            "Plugin {p} changed the severity from {} to {}.",
            v(&d.before),
            v(&d.after)
        ),
        Field::Title => format!("Plugin {p} changed the title to \"{}\".", v(&d.after)),
        Field::Label => {
            let k = d.key.as_deref().unwrap_or("");
            match &d.before {
                Some(b) => format!("Plugin {p} set label {k} to {} (was {b}).", v(&d.after)),
                None => format!("Plugin {p} added label {k}={}.", v(&d.after)),
            }
        }
        Field::Room => format!("Plugin {p} routed the ticket to room {}.", v(&d.after)),
        Field::Mention => format!("Plugin {p} mentioned {}.", v(&d.after)),
        Field::Tag => format!("Plugin {p} tagged the ticket {}.", v(&d.after)),
        Field::Body => format!("Plugin {p} set the ticket's body."),
        Field::GroupKey => format!("Plugin {p} grouped the alert under {}.", v(&d.after)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Routing, Severity, Status};
    use crate::domain::plugin::{apply, RouteFields, TicketFields, Verdict};
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
    fn each_change_is_one_decision_and_keeps_what_was_before() {
        let before = alert();
        let mut after = before.clone();
        let verdict = Verdict::Route(RouteFields {
            ticket: TicketFields {
                severity: Some(Severity::Critical),
                tags: vec!["db".into()],
                ..TicketFields::default()
            },
            add_labels: Labels::from([
                ("team".to_string(), "db".to_string()),
                ("owner".to_string(), "ann".to_string()),
            ]),
            rooms: vec!["dbx".into()],
            mentions: vec!["alice".into()],
        });
        apply(&mut after, &verdict);
        let d = changes("severity-router", &before, &after);
        let fields: Vec<_> = d.iter().map(|d| d.field).collect();
        assert_eq!(
            fields,
            [
                Field::Severity,
                Field::Label,
                Field::Label,
                Field::Room,
                Field::Mention,
                Field::Tag
            ]
        );
        assert_eq!(d[0].before.as_deref(), Some("warning"));
        assert_eq!(d[0].after.as_deref(), Some("critical"));
        assert_eq!(
            describe(&d[0]),
            "Plugin severity-router changed the severity from warning to critical."
        );
        let team = d.iter().find(|d| d.key.as_deref() == Some("team")).unwrap();
        assert_eq!(team.before.as_deref(), Some("infra"));
        assert!(
            changes("p", &after, &after).is_empty(),
            "a pass changes nothing"
        );
    }

    #[test]
    fn what_the_ticket_already_shows_is_not_news() {
        let before = alert();
        let mut after = before.clone();
        after.severity = Severity::Critical;
        after.routing.rooms.push("ops".into());
        let d = changes("p", &before, &after);
        let fresh = crate::domain::ticket::open("id".into(), 1, &before, None).0;
        assert!(d.iter().all(|d| is_news(&fresh, d)));
        let routed = crate::domain::ticket::open("id".into(), 1, &after, None).0;
        assert!(d.iter().all(|d| !is_news(&routed, d)));
    }
}
