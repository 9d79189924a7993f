//! Change events: something changed in a system (a deploy, a config push), without being a problem.
//! PagerDuty's Change Events API sends them; tocsin keeps them and shows them on the timelines of the
//! tickets they may explain.
//!
//! Which tickets: those of the same tocsin source whose `source` label (PagerDuty's `payload.source`,
//! as trigger events set it) is the change's `payload_source`. A change lands on such tickets that are
//! open or acked when it arrives, and on such tickets opened up to `attach_until` (its receipt plus the
//! source's `changes.window`) after it. Times are tocsin's receipt times, not the sender's clock.

use serde::Serialize;

use super::time::Timestamp;
use super::timeline::{EntryDraft, EntryKind, Visibility};

/// A change as ingest read it, before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangeDraft {
    /// The tocsin source it came through.
    pub source: String,
    /// PagerDuty's `payload.source`: the system that changed, if the sender said.
    pub payload_source: Option<String>,
    pub summary: String,
    /// When the sender says it happened (`payload.timestamp`), else when tocsin received it.
    pub at: Timestamp,
    pub received_at: Timestamp,
    /// Tickets opened until then are shown this change.
    pub attach_until: Timestamp,
    /// `payload.custom_details`, as sent (an object, or `null`).
    pub details: serde_json::Value,
    /// `links`, each `{href, text?}`.
    pub links: Vec<Link>,
}

/// A link sent with a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Link {
    pub href: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub id: i64,
    pub source: String,
    pub payload_source: Option<String>,
    pub summary: String,
    pub at: Timestamp,
    pub received_at: Timestamp,
    pub attach_until: Timestamp,
    pub details: serde_json::Value,
    pub links: Vec<Link>,
}

impl ChangeDraft {
    pub fn with_id(self, id: i64) -> Change {
        Change {
            id,
            source: self.source,
            payload_source: self.payload_source,
            summary: self.summary,
            at: self.at,
            received_at: self.received_at,
            attach_until: self.attach_until,
            details: self.details,
            links: self.links,
        }
    }
}

impl Change {
    /// Whether this change belongs on the timeline of a ticket of `source` whose `source` label is
    /// `label`, opened at `opened_at` (see the module doc). Only for tickets opened after the change
    /// was stored; open tickets are found by the store when the change arrives.
    pub fn explains_opening(
        &self,
        source: &str,
        label: Option<&str>,
        opened_at: Timestamp,
    ) -> bool {
        self.source == source
            && label.is_some()
            && self.payload_source.as_deref() == label
            && opened_at <= self.attach_until
    }

    /// The timeline entry a ticket gets for this change, at `at` (when it was put there).
    pub fn entry(&self, at: Timestamp) -> EntryDraft {
        EntryDraft::new(
            at,
            EntryKind::Change,
            Visibility::Public,
            format!("source:{}", self.source),
            format!("Change: {}", self.summary),
            serde_json::json!({
                "change_id": self.id,
                "summary": self.summary,
                "payload_source": self.payload_source,
                "at": self.at,
                "links": self.links,
                "details": self.details,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change() -> Change {
        ChangeDraft {
            source: "pd".into(),
            payload_source: Some("web-1".into()),
            summary: "Deployed v2".into(),
            at: Timestamp::from_millis(1_000),
            received_at: Timestamp::from_millis(2_000),
            attach_until: Timestamp::from_millis(5_000),
            details: serde_json::Value::Null,
            links: vec![],
        }
        .with_id(7)
    }

    #[test]
    fn explains_openings_of_the_same_source_and_system_within_the_window() {
        let c = change();
        assert!(c.explains_opening("pd", Some("web-1"), Timestamp::from_millis(5_000)));
        assert!(c.explains_opening("pd", Some("web-1"), Timestamp::from_millis(1)));
        assert!(!c.explains_opening("pd", Some("web-1"), Timestamp::from_millis(5_001)));
        assert!(!c.explains_opening("pd", Some("web-2"), Timestamp::from_millis(3_000)));
        assert!(!c.explains_opening("other", Some("web-1"), Timestamp::from_millis(3_000)));
        assert!(!c.explains_opening("pd", None, Timestamp::from_millis(3_000)));
        let mut nameless = c;
        nameless.payload_source = None;
        assert!(!nameless.explains_opening("pd", None, Timestamp::from_millis(3_000)));
    }

    #[test]
    fn entry_names_the_change() {
        let e = change().entry(Timestamp::from_millis(9));
        assert_eq!(e.kind, EntryKind::Change);
        assert_eq!(e.text, "Change: Deployed v2");
        assert_eq!(e.data["change_id"], 7);
        assert_eq!(e.actor, "source:pd");
    }
}
