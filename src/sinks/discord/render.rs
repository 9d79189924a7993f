//! Builds a Discord webhook message: one embed that describes the ticket (or the storm digest), and a
//! `content` line that holds only the pings routing decided.
//!
//! Discord pings only from `content`, and only what `allowed_mentions` permits, so `parse` is empty
//! unless routing chose `here`/`all`, and each member's id is listed in `users`. Alert text goes
//! through [`escape`] wherever it lands.

use serde_json::{json, Value};

use crate::domain::alert::Severity;
use crate::domain::message::{Change, Content, Digest, Mention, TicketMessage};
use crate::domain::ticket::TicketState;
use crate::sinks::text;

/// Discord's documented limits.
pub const MAX_CONTENT: usize = 2000;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 4096;
pub const MAX_FIELDS: usize = 25;
pub const MAX_FIELD_NAME: usize = 256;
pub const MAX_FIELD_VALUE: usize = 1024;
/// Title, description and all field names and values together.
pub const MAX_EMBED_TOTAL: usize = 6000;
/// `allowed_mentions.users` takes at most this many ids.
const MAX_USERS: usize = 100;
/// Digest lines name tickets; a title longer than this adds nothing to a storm summary.
const MAX_DIGEST_TITLE: usize = 200;

/// Markdown-escapes alert text, then breaks every `<` from its next character with a zero-width space.
/// The backslash already stops Discord reading `<@id>`, `<#id>` or `<t:..>`; the space also keeps tag
/// names like `<script` out of the text for anything downstream that looks at the raw JSON.
pub fn escape(raw: &str) -> String {
    text::escape_markdown(raw).replace('<', "<\u{200B}")
}

/// Cuts already-escaped text to `max` characters. A cut right after an escaping backslash would leave
/// it escaping the `…`, so that backslash goes too.
pub fn clip(escaped: &str, max: usize) -> String {
    if escaped.chars().count() <= max {
        return escaped.to_string();
    }
    let cut = text::truncate(escaped, max);
    let kept = cut.strip_suffix('…').unwrap_or(&cut);
    let backslashes = kept.chars().rev().take_while(|&c| c == '\\').count();
    if backslashes % 2 == 1 {
        format!("{}…", &kept[..kept.len() - 1])
    } else {
        cut
    }
}

/// A Discord id: a snowflake, all digits. Anything else in `allowed_mentions.users` makes Discord
/// reject the whole message (50035), so such a handle is shown as a name instead.
fn is_snowflake(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// The `content` line and who it may ping.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pings {
    pub line: String,
    pub users: Vec<String>,
    /// `@here` or `@everyone` is in the line, so `parse` must allow `everyone`.
    pub everyone: bool,
}

pub fn pings(list: &[Mention]) -> Pings {
    let mut out = Pings::default();
    let mut parts: Vec<String> = Vec::new();
    let mut seen: Vec<&Mention> = Vec::new();
    for m in list {
        if seen.contains(&m) {
            continue;
        }
        seen.push(m);
        let part = match m {
            Mention::Member {
                handle: Some(id), ..
            } if is_snowflake(id) && out.users.len() < MAX_USERS => {
                if !out.users.contains(id) {
                    out.users.push(id.clone());
                }
                format!("<@{id}>")
            }
            Mention::Member { name, .. } => escape(name),
            Mention::Here => {
                out.everyone = true;
                "@here".to_string()
            }
            Mention::All => {
                out.everyone = true;
                "@everyone".to_string()
            }
        };
        parts.push(part);
    }
    // Whole parts only: half a `<@id>` would show as garbage.
    for part in parts {
        let extra = part.chars().count() + usize::from(!out.line.is_empty());
        if out.line.chars().count() + extra > MAX_CONTENT {
            break;
        }
        if !out.line.is_empty() {
            out.line.push(' ');
        }
        out.line.push_str(&part);
    }
    out
}

/// The full request body, the same for a new message and an edit (an edit replaces the content, so it
/// must carry the mention line and `allowed_mentions` again: Discord re-reads mentions on edit).
pub fn message(content: &Content) -> Value {
    let pings = pings(content.mentions());
    let embed = match content {
        Content::Ticket(t) => ticket_embed(t),
        Content::Digest(d) => digest_embed(d),
    };
    let parse: Vec<&str> = if pings.everyone {
        vec!["everyone"]
    } else {
        Vec::new()
    };
    json!({
        "content": pings.line,
        "allowed_mentions": {"parse": parse, "users": pings.users},
        "embeds": [embed],
    })
}

/// Embed color: resolved is green and acked blue whatever the severity; firing follows the severity.
pub fn color(state: TicketState, severity: Severity) -> u32 {
    match state {
        TicketState::Resolved => 0x2ECC71,
        TicketState::Acked => 0x3498DB,
        TicketState::Open => severity_color(severity),
    }
}

fn severity_color(severity: Severity) -> u32 {
    match severity {
        Severity::Critical => 0xE74C3C,
        Severity::Error => 0xE67E22,
        Severity::Warning => 0xF1C40F,
        Severity::Info | Severity::None => 0x95A5A6,
    }
}

fn state_tag(state: TicketState) -> &'static str {
    match state {
        TicketState::Open => "FIRING",
        TicketState::Acked => "ACKED",
        TicketState::Resolved => "RESOLVED",
    }
}

fn change_line(change: &Change) -> Option<String> {
    match change {
        Change::Opened => None,
        Change::Refired => Some("**Firing again.**".to_string()),
        Change::Reopened => Some("**Reopened:** firing again after it was resolved.".to_string()),
        Change::Acked { by } => Some(format!("**Acknowledged** by {}", escape(by))),
        Change::Resolved { by } => Some(format!("**Resolved** by {}", escape(by))),
        Change::Note { author, text } => Some(format!(
            "**Note** from {}: {}",
            escape(author),
            escape(text)
        )),
    }
}

fn ticket_embed(t: &TicketMessage) -> Value {
    let title = clip(
        &format!("[{}] {} {}", t.state_tag(), t.reference(), escape(&t.title)),
        MAX_TITLE,
    );
    let mut parts: Vec<String> = Vec::new();
    if let Some(summary) = t.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        parts.push(escape(summary));
    }
    if let Some(line) = change_line(&t.change) {
        parts.push(line);
    }
    let description = clip(&parts.join("\n\n"), MAX_DESCRIPTION);
    let mut candidates = vec![
        ("severity".to_string(), t.severity.as_str().to_string()),
        ("source".to_string(), escape(&t.source)),
    ];
    for (name, value) in &t.labels {
        candidates.push((escape(name), escape(value)));
    }
    // The title and description matter most; fields fill what is left of the embed's total.
    let mut used = title.chars().count() + description.chars().count();
    let mut fields = Vec::new();
    for (name, value) in candidates.into_iter().take(MAX_FIELDS) {
        let name = non_empty(clip(&name, MAX_FIELD_NAME));
        let value = non_empty(clip(&value, MAX_FIELD_VALUE));
        let cost = name.chars().count() + value.chars().count();
        if used + cost > MAX_EMBED_TOTAL {
            break;
        }
        used += cost;
        fields.push(json!({"name": name, "value": value, "inline": true}));
    }
    let mut embed = json!({
        "title": title,
        "url": t.link,
        "color": color(t.state, t.severity),
        "fields": fields,
        "timestamp": t.at.to_rfc3339(),
    });
    if !description.is_empty() {
        embed["description"] = Value::String(description);
    }
    embed
}

/// Discord rejects empty field names and values.
fn non_empty(text: String) -> String {
    if text.trim().is_empty() {
        "—".to_string()
    } else {
        text
    }
}

/// A URL made safe to sit inside `[..](url)`: the characters that would end or break the link are
/// percent-encoded. Links are tocsin's own, but `public_url` is free text in the config.
pub fn link_target(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '[' => out.push_str("%5B"),
            ']' => out.push_str("%5D"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn digest_embed(d: &Digest) -> Value {
    let title = clip(
        &format!("Alert storm in {}: {} changes", escape(&d.room), d.changes),
        MAX_TITLE,
    );
    let mut lines = vec![format!(
        "**{}** firing · **{}** acked · **{}** resolved",
        d.firing, d.acked, d.resolved
    )];
    if !d.by_severity.is_empty() {
        let counts: Vec<String> = d
            .by_severity
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        lines.push(format!("Firing by severity: {}", counts.join(", ")));
    }
    lines.push(String::new());
    // Room for the "+N more" line, which must always fit.
    let budget = MAX_DESCRIPTION - 40;
    let mut used: usize = lines.iter().map(|l| l.chars().count() + 1).sum();
    let mut more = d.more;
    for (i, item) in d.top.iter().enumerate() {
        let line = format!(
            "[T-{}]({}) {} {} {}",
            item.number,
            link_target(&item.link),
            state_tag(item.state),
            item.severity.as_str(),
            clip(&escape(&item.title), MAX_DIGEST_TITLE),
        );
        let cost = line.chars().count() + 1;
        if used + cost > budget {
            // Whatever does not fit is counted with the rest rather than cut mid-link.
            more += (d.top.len() - i) as u64;
            break;
        }
        used += cost;
        lines.push(line);
    }
    if more > 0 {
        lines.push(format!("+{more} more"));
    }
    let color = match d.by_severity.first() {
        Some((severity, _)) if d.firing > 0 => severity_color(*severity),
        _ if d.firing > 0 => severity_color(Severity::Critical),
        _ => color(TicketState::Resolved, Severity::None),
    };
    json!({
        "title": title,
        "url": d.link,
        "description": clip(lines.join("\n").trim_end(), MAX_DESCRIPTION),
        "color": color,
        "timestamp": d.at.to_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::Labels;
    use crate::domain::message::DigestItem;
    use crate::domain::time::Timestamp;

    fn ticket(mentions: Vec<Mention>) -> TicketMessage {
        TicketMessage {
            ticket_id: "t".into(),
            number: 42,
            title: "Disk full on db1".into(),
            state: TicketState::Open,
            severity: Severity::Critical,
            source: "prom".into(),
            labels: Labels::from([("alertname".into(), "DiskFull".into())]),
            summary: Some("95% used".into()),
            link: "http://tocsin.test/tickets/T-42".into(),
            change: Change::Opened,
            mentions,
            at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    fn member(name: &str, handle: Option<&str>) -> Mention {
        Mention::Member {
            name: name.into(),
            handle: handle.map(Into::into),
        }
    }

    #[test]
    fn ticket_becomes_one_embed() {
        let v = message(&Content::Ticket(ticket(vec![])));
        let e = &v["embeds"][0];
        assert_eq!(e["title"], "[FIRING] T-42 Disk full on db1");
        assert_eq!(e["url"], "http://tocsin.test/tickets/T-42");
        assert_eq!(e["description"], "95% used");
        assert_eq!(e["color"], 0xE74C3C);
        assert_eq!(e["timestamp"], "2023-11-14T22:13:20.000Z");
        assert_eq!(
            e["fields"][0],
            json!({"name": "severity", "value": "critical", "inline": true})
        );
        assert_eq!(
            e["fields"][2],
            json!({"name": "alertname", "value": "DiskFull", "inline": true})
        );
        assert_eq!(v["content"], "");
        assert_eq!(
            v["allowed_mentions"],
            json!({"parse": [], "users": []}),
            "always sent, and empty without routed pings"
        );
    }

    #[test]
    fn members_ping_by_id_and_only_those_ids() {
        let p = pings(&[
            member("alice", Some("123456789012345678")),
            member("bob", None),
            member("eve", Some("HANDLE-EVE")),
            member("alice", Some("123456789012345678")),
        ]);
        assert_eq!(p.line, "<@123456789012345678> bob eve");
        assert_eq!(p.users, vec!["123456789012345678".to_string()]);
        assert!(!p.everyone);
    }

    #[test]
    fn here_and_all_need_routing_and_open_parse() {
        let v = message(&Content::Ticket(ticket(vec![Mention::Here, Mention::All])));
        assert_eq!(v["content"], "@here @everyone");
        assert_eq!(v["allowed_mentions"]["parse"], json!(["everyone"]));
    }

    #[test]
    fn alert_text_cannot_ping_or_mark_up() {
        let mut t = ticket(vec![]);
        t.title = "<@123> @everyone <script>".into();
        t.summary = Some("[x](http://evil) @here **b**".into());
        let v = message(&Content::Ticket(t));
        assert_eq!(v["content"], "");
        let body = v.to_string();
        for bad in ["<@123>", "@everyone", "@here", "<script", "[x](", "**b**"] {
            assert!(!body.contains(bad), "{bad} in {body}");
        }
    }

    #[test]
    fn changes_follow_the_summary() {
        let mut t = ticket(vec![]);
        t.state = TicketState::Resolved;
        t.change = Change::Resolved { by: "bob".into() };
        let v = message(&Content::Ticket(t));
        assert_eq!(
            v["embeds"][0]["description"],
            "95% used\n\n**Resolved** by bob"
        );
        assert_eq!(v["embeds"][0]["color"], 0x2ECC71);
        assert_eq!(v["embeds"][0]["title"], "[RESOLVED] T-42 Disk full on db1");
    }

    #[test]
    fn limits_hold_for_huge_alerts() {
        let mut t = ticket(vec![]);
        t.title = "t".repeat(1000);
        t.summary = Some("s".repeat(10_000));
        t.labels = (0..40)
            .map(|i| (format!("label{i}"), "v".repeat(2000)))
            .collect();
        let v = message(&Content::Ticket(t));
        let e = &v["embeds"][0];
        let len = |v: &Value| v.as_str().unwrap().chars().count();
        assert_eq!(len(&e["title"]), MAX_TITLE);
        assert_eq!(len(&e["description"]), MAX_DESCRIPTION);
        let fields = e["fields"].as_array().unwrap();
        assert!(fields.len() <= MAX_FIELDS);
        let total = len(&e["title"])
            + len(&e["description"])
            + fields
                .iter()
                .map(|f| len(&f["name"]) + len(&f["value"]))
                .sum::<usize>();
        assert!(total <= MAX_EMBED_TOTAL, "{total}");
        assert!(fields.iter().all(|f| len(&f["value"]) <= MAX_FIELD_VALUE));
    }

    #[test]
    fn clipping_never_leaves_a_dangling_escape() {
        assert_eq!(clip("ab\\*cd", 4), "ab…");
        assert_eq!(clip("a\\\\bcd", 4), "a\\\\…");
        assert_eq!(clip("short", 10), "short");
    }

    #[test]
    fn empty_label_values_get_a_placeholder() {
        let mut t = ticket(vec![]);
        t.labels = Labels::from([("empty".into(), String::new())]);
        let v = message(&Content::Ticket(t));
        assert_eq!(v["embeds"][0]["fields"][2]["value"], "—");
    }

    #[test]
    fn digest_lists_counts_top_items_and_the_rest() {
        let d = Digest {
            room: "ops".into(),
            changes: 40,
            firing: 12,
            acked: 3,
            resolved: 25,
            by_severity: vec![(Severity::Warning, 10)],
            top: vec![DigestItem {
                number: 3,
                title: "Disk (full)".into(),
                state: TicketState::Open,
                severity: Severity::Warning,
                link: "http://tocsin.test/tickets/T-3".into(),
            }],
            more: 39,
            link: "http://tocsin.test/tickets".into(),
            mentions: vec![member("alice", Some("42"))],
            at: Timestamp::from_millis(0),
        };
        let v = message(&Content::Digest(d));
        let e = &v["embeds"][0];
        assert_eq!(e["title"], "Alert storm in ops: 40 changes");
        assert_eq!(
            e["description"],
            "**12** firing · **3** acked · **25** resolved\n\
             Firing by severity: warning 10\n\n\
             [T-3](http://tocsin.test/tickets/T-3) FIRING warning Disk \\(full\\)\n\
             +39 more"
        );
        assert_eq!(e["color"], 0xF1C40F);
        assert_eq!(v["content"], "<@42>");
        assert_eq!(v["allowed_mentions"]["users"], json!(["42"]));
    }

    #[test]
    fn digest_items_that_do_not_fit_are_counted() {
        let item = DigestItem {
            number: 1,
            title: "x".repeat(500),
            state: TicketState::Open,
            severity: Severity::Critical,
            link: "http://tocsin.test/tickets/T-1".into(),
        };
        let d = Digest {
            room: "ops".into(),
            changes: 100,
            firing: 100,
            acked: 0,
            resolved: 0,
            by_severity: vec![],
            top: vec![item; 50],
            more: 50,
            link: "http://tocsin.test/tickets".into(),
            mentions: vec![],
            at: Timestamp::from_millis(0),
        };
        let v = message(&Content::Digest(d));
        let description = v["embeds"][0]["description"].as_str().unwrap();
        assert!(description.chars().count() <= MAX_DESCRIPTION);
        let listed = description.matches("[T-1]").count() as u64;
        assert!(listed < 50);
        assert!(
            description.ends_with(&format!("+{} more", 100 - listed)),
            "{description}"
        );
    }
}
