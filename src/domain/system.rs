//! tocsin's own alerts about itself (source `tocsin`): a plugin switched off, an accepted alert that
//! could not be processed. Pure constructors, so the processor, the API and every store backend make the
//! same alerts, and their tickets open and resolve through the ordinary path.

use super::alert::{Alert, Labels, Routing, Severity, Status};
use super::time::Timestamp;

/// Source name of tocsin's own system tickets. Reserved in the config.
pub const SYSTEM_SOURCE: &str = "tocsin";

/// Fingerprint prefix of the tickets about journal rows moved aside.
const DEAD_JOURNAL: &str = "dead-journal:";

fn system_alert(
    fingerprint: String,
    firing: bool,
    title: String,
    labels: Labels,
    detail: &str,
    now: Timestamp,
) -> Alert {
    Alert {
        source: SYSTEM_SOURCE.to_string(),
        fingerprint,
        status: if firing {
            Status::Firing
        } else {
            Status::Resolved
        },
        title,
        severity: Severity::Error,
        labels,
        annotations: Labels::new(),
        description: Some(detail.to_string()),
        url: None,
        starts_at: None,
        ends_at: None,
        received_at: now,
        routing: Routing::default(),
        raw: None,
    }
}

/// A system alert about a plugin: firing when it was switched off, resolved when it is back on.
pub fn plugin_alert(plugin: &str, firing: bool, detail: &str, now: Timestamp) -> Alert {
    system_alert(
        format!("plugin-disabled:{plugin}"),
        firing,
        format!("Plugin {plugin} is switched off after repeated failures"),
        Labels::from([
            ("alertname".to_string(), "PluginDisabled".to_string()),
            ("plugin".to_string(), plugin.to_string()),
        ]),
        detail,
        now,
    )
}

/// A system alert about journal row `journal_id`, which could not be decoded or applied and was moved
/// to the dead journal (firing), or was retried or deleted by an admin (resolved).
pub fn dead_journal_alert(journal_id: i64, firing: bool, detail: &str, now: Timestamp) -> Alert {
    system_alert(
        format!("{DEAD_JOURNAL}{journal_id}"),
        firing,
        format!("An accepted alert could not be processed (journal row {journal_id})"),
        Labels::from([
            ("alertname".to_string(), "DeadJournalRow".to_string()),
            ("journal_id".to_string(), journal_id.to_string()),
        ]),
        detail,
        now,
    )
}

/// Whether `alert` is one of [`dead_journal_alert`]'s. Such a row that cannot be applied either is moved
/// aside without another notice, so a broken database cannot make notices about notices forever.
pub fn is_dead_journal_notice(alert: &Alert) -> bool {
    alert.source == SYSTEM_SOURCE && alert.fingerprint.starts_with(DEAD_JOURNAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_name_their_row_and_are_recognised() {
        let now = Timestamp::from_millis(1_000);
        let a = dead_journal_alert(42, true, "corrupt stored JSON", now);
        assert!(a.title.contains("journal row 42"));
        assert_eq!(a.labels["journal_id"], "42");
        assert_eq!(a.received_at, now);
        assert!(is_dead_journal_notice(&a));
        assert!(!is_dead_journal_notice(&plugin_alert("p", true, "x", now)));
    }
}
