//! What plugins did, on the timeline: `plugin_decided` entries when they are news, a breaker opening
//! even on a resend, and a room that is not configured, said once.

use std::sync::Arc;

use tocsin::domain::alert::{Severity, Status};
use tocsin::domain::decision::{Field, PluginDecision};
use tocsin::domain::plugin::{FailureKind, PluginFailure};
use tocsin::domain::timeline::EntryKind;
use tocsin::store::{JournalEntry, Store};

use super::support::*;

fn raised(e: JournalEntry) -> JournalEntry {
    JournalEntry {
        decisions: vec![
            PluginDecision {
                plugin: "router".into(),
                field: Field::Severity,
                key: None,
                before: Some("warning".into()),
                after: Some("critical".into()),
            },
            PluginDecision {
                plugin: "router".into(),
                field: Field::Room,
                key: None,
                before: None,
                after: Some("dbx".into()),
            },
        ],
        ..e
    }
}

pub async fn plugin_decisions_are_recorded_when_news(store: Arc<dyn Store>) {
    route(&store);
    let mut a = alert("a", Status::Firing, T0, T0, Some(T0 + 10 * MIN));
    a.severity = Severity::Critical;
    a.routing.rooms = vec!["dbx".into()];
    ingest_entry(&store, a.clone(), raised).await;
    let ours = |k: &EntryKind| k != &EntryKind::EmailScheduled;
    assert_eq!(
        kinds(&store, 1)
            .await
            .into_iter()
            .filter(ours)
            .collect::<Vec<_>>(),
        [
            EntryKind::Opened,
            EntryKind::PluginDecided,
            EntryKind::PluginDecided,
            EntryKind::UnknownRoom
        ]
    );
    let d = &entries_of(&store, 1, EntryKind::PluginDecided).await[0];
    assert_eq!(
        (
            d.actor.as_str(),
            d.data["before"].as_str(),
            d.data["after"].as_str()
        ),
        ("plugin:router", Some("warning"), Some("critical"))
    );
    let u = &entries_of(&store, 1, EntryKind::UnknownRoom).await[0];
    assert_eq!(
        (u.data["room"].as_str(), u.data["plugin"].as_str()),
        (Some("dbx"), Some("router"))
    );

    // A resend decided the same way: nothing new.
    a.received_at = at(T0 + MIN);
    let resend = ingest_entry(&store, a.clone(), raised).await;
    assert_eq!(resend.outcome, "resent");
    let seq = ticket(&store, 1).await.last_seq;
    assert_eq!(timeline(&store, 1).await.len() as i64, seq, "nothing new");

    // A resend on which the plugin's breaker opened: recorded anyway, and the ticket saved whole.
    a.received_at = at(T0 + 2 * MIN);
    ingest_entry(&store, a, |e| JournalEntry {
        failures: vec![
            PluginFailure {
                plugin: "router".into(),
                kind: FailureKind::Deadline,
                message: "ran past its 50 ms deadline".into(),
                logs: vec!["warn: slow".into()],
            },
            PluginFailure {
                plugin: "router".into(),
                kind: FailureKind::BreakerOpen,
                message: "it skips them".into(),
                logs: Vec::new(),
            },
        ],
        ..e
    })
    .await;
    let failed = entries_of(&store, 1, EntryKind::PluginFailed).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].data["kind"], "breaker_open");
    assert_eq!(ticket(&store, 1).await.last_seq, seq + 1);
}
