//! The ticket page's "Recent changes": the change events (`domain::change`) on the ticket's timeline,
//! newest first, with the system that changed, when, and the sender's links. Everything is escaped;
//! only `http(s)` links become anchors (a sender could send `javascript:`).

use super::html::{esc, time};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind};

/// The card, or nothing when the ticket was shown no change.
pub fn recent_changes(entries: &[Entry]) -> String {
    let items: String = entries
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Change)
        .map(item)
        .collect();
    if items.is_empty() {
        return String::new();
    }
    format!(
        "<section class=\"card changes\" id=\"changes\"><h2>Recent changes</h2>\
         <ul class=\"changes\">{items}</ul></section>"
    )
}

fn item(e: &Entry) -> String {
    let d = &e.data;
    let summary = d["summary"].as_str().unwrap_or(&e.text);
    let system = d["payload_source"].as_str().map_or(String::new(), |s| {
        format!(" <span class=\"fact\">on <b>{}</b></span>", esc(s))
    });
    let at = d["at"]
        .as_str()
        .and_then(|t| Timestamp::parse_optional(t).ok().flatten())
        .unwrap_or(e.at);
    let links: String = d["links"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let href = l["href"].as_str()?;
            if !(href.starts_with("https://") || href.starts_with("http://")) {
                return None;
            }
            let text = l["text"].as_str().unwrap_or(href);
            Some(format!(
                " <a href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">{} ↗</a>",
                esc(href),
                esc(text)
            ))
        })
        .collect();
    format!(
        "<li class=\"change\"><span class=\"text\">{}</span>{system} {}{links}</li>",
        esc(summary),
        time(at)
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::timeline::Visibility;

    fn entry(seq: i64, kind: EntryKind, data: serde_json::Value) -> Entry {
        Entry {
            seq,
            at: Timestamp::from_millis(1_000 * seq),
            kind,
            visibility: Visibility::Public,
            actor: "source:pd".into(),
            text: "Change: x".into(),
            data,
        }
    }

    #[test]
    fn newest_first_escaped_and_only_web_links() {
        let entries = [
            entry(1, EntryKind::Opened, json!({})),
            entry(
                2,
                EntryKind::Change,
                json!({"summary": "<b>old</b>", "payload_source": "web\"1", "at": "2026-03-02T09:00:00Z",
                       "links": [{"href": "javascript:alert(1)", "text": "evil"},
                                 {"href": "https://ci.example/1?a=1&b=2", "text": "<i>build</i>"}]}),
            ),
            entry(3, EntryKind::Change, json!({"summary": "new", "links": []})),
        ];
        let html = recent_changes(&entries);
        assert!(html.contains("Recent changes"));
        assert!(
            html.find("new").unwrap() < html.find("&lt;b&gt;old").unwrap(),
            "{html}"
        );
        assert!(
            !html.contains("<b>old") && !html.contains("<i>build"),
            "{html}"
        );
        assert!(html.contains("web&quot;1"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(
            html.contains("href=\"https://ci.example/1?a=1&amp;b=2\""),
            "{html}"
        );
        assert!(
            html.contains("2026-03-02T09:00:00"),
            "the sender's time: {html}"
        );
        assert_eq!(recent_changes(&entries[..1]), "", "no changes, no card");
    }
}
