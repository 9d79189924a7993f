//! What plugins did, on the ticket page: runs of `plugin_decided` entries folded into one `<details>`
//! line, and a failing plugin's last log lines folded under its `plugin_failed` entry. Everything from
//! the entry (plugin names, values, log lines) is escaped.

use super::html::{esc, time};
use crate::domain::timeline::{Entry, EntryKind};

/// A run of `plugin_decided` entries at the start of `entries`, as one folded line: how many entries
/// it took and its HTML. `None` when the first entry is not one.
pub fn decided_run(entries: &[Entry]) -> Option<(usize, String)> {
    let run = entries
        .iter()
        .take_while(|e| e.kind == EntryKind::PluginDecided)
        .count();
    if run == 0 {
        return None;
    }
    let group = &entries[..run];
    let mut plugins: Vec<&str> = group
        .iter()
        .filter_map(|e| e.data.get("plugin").and_then(|p| p.as_str()))
        .collect();
    plugins.dedup();
    let seqs: Vec<String> = group.iter().map(|e| e.seq.to_string()).collect();
    let items: String = group
        .iter()
        .map(|e| format!("<li>{}</li>", esc(&e.text)))
        .collect();
    let what = if run == 1 {
        "1 change".to_string()
    } else {
        format!("{run} changes")
    };
    let html = format!(
        "<li class=\"entry sys kind-plugin_decided\" data-seqs=\"{seqs}\" data-count=\"{run}\" \
         data-plugins=\"{names}\">\
         <details><summary><span class=\"what\">plugin decided</span>\
         <span class=\"text\">{what} by {plugins}</span></summary>\
         <ul class=\"decisions\">{items}</ul></details>{at}</li>",
        seqs = seqs.join(" "),
        plugins = esc(&plugins.join(", ")),
        names = esc(&plugins.join(",")),
        at = time(group[run - 1].at),
    );
    Some((run, html))
}

/// A `plugin_failed` entry's last log lines, folded, or nothing when it has none.
pub fn failure_logs(e: &Entry) -> String {
    if e.kind != EntryKind::PluginFailed {
        return String::new();
    }
    let lines: Vec<&str> = e
        .data
        .get("logs")
        .and_then(|l| l.as_array())
        .map(|a| a.iter().filter_map(|l| l.as_str()).collect())
        .unwrap_or_default();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "<details class=\"logs\"><summary>last log lines</summary><pre>{}</pre></details>",
        esc(&lines.join("\n"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;
    use crate::domain::timeline::Visibility;
    use serde_json::json;

    fn entry(seq: i64, kind: EntryKind, text: &str, data: serde_json::Value) -> Entry {
        Entry {
            seq,
            at: Timestamp::from_millis(0),
            kind,
            visibility: Visibility::System,
            actor: "plugin:p".into(),
            text: text.into(),
            data,
        }
    }

    #[test]
    fn decisions_fold_into_one_escaped_line() {
        let entries = [
            entry(
                2,
                EntryKind::PluginDecided,
                "Plugin <b>x</b> changed the severity from warning to critical.",
                json!({"plugin": "<b>x</b>"}),
            ),
            entry(
                3,
                EntryKind::PluginDecided,
                "Plugin <b>x</b> routed the ticket to room ops.",
                json!({"plugin": "<b>x</b>"}),
            ),
            entry(4, EntryKind::Note, "n", json!({})),
        ];
        let (n, html) = decided_run(&entries).unwrap();
        assert_eq!(n, 2);
        assert!(html.contains("<details>") && html.contains("data-seqs=\"2 3\""));
        assert!(html.contains("2 changes by &lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(decided_run(&entries[2..]).is_none());
    }

    #[test]
    fn failure_logs_are_folded_and_escaped() {
        let e = entry(
            2,
            EntryKind::PluginFailed,
            "Plugin p failed",
            json!({"logs": ["warn: <script>", "error: boom"]}),
        );
        let html = failure_logs(&e);
        assert!(
            html.contains("<pre>warn: &lt;script&gt;\nerror: boom</pre>"),
            "{html}"
        );
        assert_eq!(
            failure_logs(&entry(3, EntryKind::PluginFailed, "x", json!({}))),
            ""
        );
    }
}
