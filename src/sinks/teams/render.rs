//! Builds the Adaptive Card a Teams Workflows webhook posts: a `message` with one card attachment.
//!
//! Every string that came from an alert goes through [`escape`]; only mentions routing decided become
//! `<at>` tags, each with its `msteams.entities` entry, because Teams pings only tags it finds there.

use serde_json::{json, Value};

use crate::domain::alert::Severity;
use crate::domain::message::{Change, Content, Digest, Mention, TicketMessage};
use crate::domain::ticket::TicketState;
use crate::sinks::text;

/// The card schema version. 1.4 is what the Workflows "post card" actions accept everywhere; newer
/// versions render as "unsupported card" on some clients.
const CARD_VERSION: &str = "1.4";

// The whole message must stay well under the ~28 KB Teams accepts, so every alert string is capped.
const MAX_TITLE: usize = 400;
const MAX_TEXT: usize = 3000;
const MAX_LABEL: usize = 300;
const MAX_DIGEST_TITLE: usize = 200;

/// Markdown-escapes alert text for a TextBlock, then breaks every `<` from its next character with a
/// zero-width space. The backslash alone is not enough here: Teams finds `<at>` tags (and some clients
/// HTML-ish tags) before Markdown runs, so `\<at>` could still be read as a tag.
pub fn escape(raw: &str) -> String {
    text::escape_markdown(raw).replace('<', "<\u{200B}")
}

/// [`escape`]d and cut to `max` characters. Cutting the raw text first keeps escapes whole.
fn fit(raw: &str, max: usize) -> String {
    escape(&text::truncate(raw, max))
}

/// The full request body for one content.
pub fn message(content: &Content) -> Value {
    let card = match content {
        Content::Ticket(t) => ticket_card(t),
        Content::Digest(d) => digest_card(d),
    };
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// TextBlock color: resolved is good news whatever the severity; acked is being handled, so it stops
/// shouting; firing follows the severity.
pub fn color(state: TicketState, severity: Severity) -> &'static str {
    match state {
        TicketState::Resolved => "good",
        TicketState::Acked => "accent",
        TicketState::Open => match severity {
            Severity::Critical | Severity::Error => "attention",
            Severity::Warning => "warning",
            Severity::Info | Severity::None => "default",
        },
    }
}

fn text_block(text: String) -> Value {
    json!({"type": "TextBlock", "text": text, "wrap": true})
}

/// The line that says what happened, for changes the header does not already tell.
fn change_line(change: &Change) -> Option<String> {
    match change {
        Change::Opened => None,
        Change::Refired => Some("Firing again.".to_string()),
        Change::Reopened => Some("Reopened: firing again after it was resolved.".to_string()),
        Change::Acked { by } => Some(format!("Acknowledged by {}", fit(by, MAX_LABEL))),
        Change::Resolved { by } => Some(format!("Resolved by {}", fit(by, MAX_LABEL))),
        Change::Note { author, text } => Some(format!(
            "Note from {}: {}",
            fit(author, MAX_LABEL),
            fit(text, MAX_TEXT)
        )),
    }
}

fn ticket_card(t: &TicketMessage) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock",
        // Our own brackets are not a Markdown link: the escaped title can never supply the `(url)`.
        "text": format!("[{}] {} {}", t.state_tag(), t.reference(), fit(&t.title, MAX_TITLE)),
        "weight": "Bolder",
        "size": "Medium",
        "color": color(t.state, t.severity),
        "wrap": true,
    })];
    if let Some(line) = change_line(&t.change) {
        body.push(text_block(line));
    }
    if let Some(summary) = t.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        body.push(text_block(fit(summary, MAX_TEXT)));
    }
    let mut facts = vec![
        json!({"title": "severity", "value": t.severity.as_str()}),
        json!({"title": "source", "value": fit(&t.source, MAX_LABEL)}),
    ];
    for (name, value) in &t.labels {
        facts.push(json!({"title": fit(name, MAX_LABEL), "value": fit(value, MAX_LABEL)}));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    let open = json!({
        "type": "Action.OpenUrl",
        "title": format!("Open {}", t.reference()),
        "url": t.link,
    });
    card(body, open, &t.mentions)
}

fn digest_card(d: &Digest) -> Value {
    let header_color = if d.firing > 0 { "attention" } else { "good" };
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": format!("Alert storm in {}: {} changes", fit(&d.room, MAX_LABEL), d.changes),
            "weight": "Bolder",
            "size": "Medium",
            "color": header_color,
            "wrap": true,
        }),
        text_block(format!(
            "**{}** firing · **{}** acked · **{}** resolved",
            d.firing, d.acked, d.resolved
        )),
    ];
    if !d.by_severity.is_empty() {
        let counts: Vec<String> = d
            .by_severity
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        body.push(text_block(format!(
            "Firing by severity: {}",
            counts.join(", ")
        )));
    }
    for item in &d.top {
        body.push(json!({
            "type": "TextBlock",
            "text": format!(
                "[T-{n}]({url}) {tag} {severity} {title}",
                n = item.number,
                url = link_target(&item.link),
                tag = state_tag(item.state),
                severity = item.severity.as_str(),
                title = fit(&item.title, MAX_DIGEST_TITLE),
            ),
            "color": color(item.state, item.severity),
            "spacing": "None",
            "wrap": true,
        }));
    }
    if d.more > 0 {
        body.push(text_block(format!("+{} more", d.more)));
    }
    let open = json!({"type": "Action.OpenUrl", "title": "Open tickets", "url": d.link});
    card(body, open, &d.mentions)
}

/// `FIRING`, `ACKED`, `RESOLVED`, as in a ticket message's header.
fn state_tag(state: TicketState) -> &'static str {
    match state {
        TicketState::Open => "FIRING",
        TicketState::Acked => "ACKED",
        TicketState::Resolved => "RESOLVED",
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

/// The mention line and its entities. Members with a Teams handle (their UPN or email) become `<at>`
/// tags; members without one are named in plain text. Workflows webhooks have no channel-wide ping, so
/// `Here` and `All` are said in words, with no `@` that could look like one.
pub fn mentions(list: &[Mention]) -> Option<(String, Vec<Value>)> {
    let mut parts: Vec<String> = Vec::new();
    let mut entities: Vec<Value> = Vec::new();
    let mut seen: Vec<&Mention> = Vec::new();
    for m in list {
        if seen.contains(&m) {
            continue;
        }
        seen.push(m);
        match m {
            Mention::Member {
                name,
                handle: Some(handle),
            } => {
                let tag = format!("<at>{}</at>", fit(name, MAX_LABEL));
                entities.push(json!({
                    "type": "mention",
                    "text": tag,
                    "mentioned": {"id": handle, "name": text::plain(name)},
                }));
                parts.push(tag);
            }
            Mention::Member { name, handle: None } => parts.push(fit(name, MAX_LABEL)),
            Mention::Here => parts.push("(everyone active in this channel)".to_string()),
            Mention::All => parts.push("(everyone in this channel)".to_string()),
        }
    }
    (!parts.is_empty()).then(|| (parts.join(" "), entities))
}

fn card(mut body: Vec<Value>, open: Value, list: &[Mention]) -> Value {
    let (line, entities) = match mentions(list) {
        Some((line, entities)) => (Some(line), entities),
        None => (None, Vec::new()),
    };
    if let Some(line) = line {
        body.push(text_block(line));
    }
    json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "actions": [open],
        "msteams": {"width": "Full", "entities": entities},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::Labels;
    use crate::domain::message::DigestItem;
    use crate::domain::time::Timestamp;

    fn ticket(state: TicketState, change: Change, mentions: Vec<Mention>) -> TicketMessage {
        TicketMessage {
            ticket_id: "t".into(),
            number: 42,
            title: "Disk full on db1".into(),
            state,
            severity: Severity::Critical,
            source: "prom".into(),
            labels: Labels::from([("alertname".into(), "DiskFull".into())]),
            summary: Some("95% used".into()),
            link: "http://tocsin.test/tickets/T-42".into(),
            change,
            mentions,
            at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    fn card_of(content: &Content) -> Value {
        message(content)["attachments"][0]["content"].clone()
    }

    #[test]
    fn envelope_is_a_message_with_one_adaptive_card() {
        let v = message(&Content::Ticket(ticket(
            TicketState::Open,
            Change::Opened,
            vec![],
        )));
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert!(a["contentUrl"].is_null());
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["version"], "1.4");
        assert_eq!(a["content"]["msteams"]["width"], "Full");
        assert_eq!(a["content"]["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(a["content"]["actions"][0]["title"], "Open T-42");
        assert_eq!(
            a["content"]["actions"][0]["url"],
            "http://tocsin.test/tickets/T-42"
        );
    }

    #[test]
    fn header_says_state_reference_and_title_in_color() {
        let c = card_of(&Content::Ticket(ticket(
            TicketState::Open,
            Change::Opened,
            vec![],
        )));
        assert_eq!(c["body"][0]["text"], "[FIRING] T-42 Disk full on db1");
        assert_eq!(c["body"][0]["color"], "attention");
        let facts = c["body"].as_array().unwrap().last().unwrap()["facts"].clone();
        assert_eq!(facts[0], json!({"title": "severity", "value": "critical"}));
        assert_eq!(facts[2], json!({"title": "alertname", "value": "DiskFull"}));
    }

    #[test]
    fn colors_follow_state_then_severity() {
        assert_eq!(color(TicketState::Open, Severity::Critical), "attention");
        assert_eq!(color(TicketState::Open, Severity::Error), "attention");
        assert_eq!(color(TicketState::Open, Severity::Warning), "warning");
        assert_eq!(color(TicketState::Open, Severity::Info), "default");
        assert_eq!(color(TicketState::Resolved, Severity::Critical), "good");
        assert_eq!(color(TicketState::Acked, Severity::Critical), "accent");
    }

    #[test]
    fn member_with_handle_gets_an_at_tag_and_an_entity() {
        let alice = Mention::Member {
            name: "alice".into(),
            handle: Some("alice@example.org".into()),
        };
        let bob = Mention::Member {
            name: "bob".into(),
            handle: None,
        };
        let (line, entities) = mentions(&[alice.clone(), bob, alice]).unwrap();
        assert_eq!(line, "<at>alice</at> bob");
        assert_eq!(
            entities,
            vec![json!({
                "type": "mention",
                "text": "<at>alice</at>",
                "mentioned": {"id": "alice@example.org", "name": "alice"},
            })]
        );
    }

    #[test]
    fn here_and_all_are_words_without_at_signs() {
        let (line, entities) = mentions(&[Mention::Here, Mention::All]).unwrap();
        assert!(!line.contains('@'), "{line}");
        assert!(line.contains("everyone"));
        assert!(entities.is_empty());
        assert_eq!(mentions(&[]), None);
    }

    #[test]
    fn alert_text_cannot_make_tags_or_links() {
        let mut t = ticket(TicketState::Open, Change::Opened, vec![]);
        t.title = "<at>boss</at> <b>x</b> [a](http://evil) @here".into();
        let body = message(&Content::Ticket(t)).to_string();
        for bad in ["<at>", "<b>", "[a](", "@here"] {
            assert!(!body.contains(bad), "{bad} in {body}");
        }
    }

    #[test]
    fn changes_are_spelled_out() {
        let c = card_of(&Content::Ticket(ticket(
            TicketState::Resolved,
            Change::Resolved { by: "bob".into() },
            vec![],
        )));
        assert_eq!(c["body"][1]["text"], "Resolved by bob");
        assert_eq!(c["body"][0]["color"], "good");
        let c = card_of(&Content::Ticket(ticket(
            TicketState::Open,
            Change::Note {
                author: "carol".into(),
                text: "*look*".into(),
            },
            vec![],
        )));
        assert_eq!(c["body"][1]["text"], "Note from carol: \\*look\\*");
    }

    #[test]
    fn long_titles_are_cut() {
        let mut t = ticket(TicketState::Open, Change::Opened, vec![]);
        t.title = "x".repeat(5000);
        let c = card_of(&Content::Ticket(t));
        let text = c["body"][0]["text"].as_str().unwrap();
        assert!(text.chars().count() < MAX_TITLE + 20);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn digest_lists_counts_top_items_and_the_rest() {
        let d = Digest {
            room: "ops".into(),
            changes: 40,
            firing: 12,
            acked: 3,
            resolved: 25,
            by_severity: vec![(Severity::Critical, 10), (Severity::Warning, 2)],
            top: vec![DigestItem {
                number: 3,
                title: "Disk (full)".into(),
                state: TicketState::Open,
                severity: Severity::Critical,
                link: "http://tocsin.test/tickets/T-3".into(),
            }],
            more: 39,
            link: "http://tocsin.test/tickets".into(),
            mentions: vec![Mention::Here],
            at: Timestamp::from_millis(0),
        };
        let c = card_of(&Content::Digest(d));
        let texts: Vec<String> = c["body"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(texts[0], "Alert storm in ops: 40 changes");
        assert_eq!(texts[1], "**12** firing · **3** acked · **25** resolved");
        assert_eq!(texts[2], "Firing by severity: critical 10, warning 2");
        assert_eq!(
            texts[3],
            "[T-3](http://tocsin.test/tickets/T-3) FIRING critical Disk \\(full\\)"
        );
        assert_eq!(texts[4], "+39 more");
        assert_eq!(texts[5], "(everyone active in this channel)");
        assert_eq!(c["actions"][0]["url"], "http://tocsin.test/tickets");
        assert_eq!(c["body"][0]["color"], "attention");
    }

    #[test]
    fn link_targets_cannot_close_the_link() {
        assert_eq!(link_target("http://x/a b(c)"), "http://x/a%20b%28c%29");
    }
}
