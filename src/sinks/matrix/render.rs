//! Matrix message text: the same message twice, as `org.matrix.custom.html` for `formatted_body` and as
//! plain text for `body`, plus the `m.mentions` object that alone decides who is pinged.
//!
//! Alert text goes through [`text::escape_html`] for the HTML and through [`plain`] (look-alike angle
//! brackets, then [`text::plain`]) for the plain body: a client that shows `body` (notifications,
//! terminal clients, bridges) must not show markup the alert brought either. Pills and `@room` are added
//! here, after escaping, and only for the mentions routing decided.
//!
//! tocsin's own emphasis is `<strong>`/`<i>`, never `<b>`: a raw `<b>` in an event can then only mean
//! that alert markup got through, which is what the tests look for.

use serde_json::{json, Map, Value};

use crate::domain::message::{Change, Content, Digest, Mention, TicketMessage};
use crate::domain::ticket::TicketState;
use crate::sinks::text;

/// A rendered message, before the envelope (`msgtype`, relations) is added.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Plain text for `body`.
    pub body: String,
    /// HTML for `formatted_body`.
    pub html: String,
    /// The `m.mentions` object: `{}` when nobody is pinged.
    pub mentions: Value,
}

impl Rendered {
    /// Whether the message pings anyone (a user or the whole room).
    pub fn pings(&self) -> bool {
        self.mentions.as_object().is_some_and(|m| !m.is_empty())
    }
}

// Bounds on alert text, so one verbose alert cannot push an event past Synapse's 64 KiB limit (which
// would be a permanent failure) or bury the room.
const MAX_TITLE: usize = 300;
const MAX_LABELS: usize = 20;
const MAX_LABEL: usize = 200;
const MAX_SUMMARY: usize = 2_000;
const MAX_NOTE: usize = 4_000;

pub fn render(content: &Content) -> Rendered {
    match content {
        Content::Ticket(t) => ticket(t),
        Content::Digest(d) => digest(d),
    }
}

fn ticket(t: &TicketMessage) -> Rendered {
    let mut html = Vec::new();
    let mut body = Vec::new();

    let title = one_line(&text::truncate(&t.title, MAX_TITLE));
    let reference = t.reference();
    html.push(format!(
        "<strong>[{}]</strong> {} {}",
        t.state_tag(),
        anchor(&t.link, &reference),
        escape(&title)
    ));
    body.push(format!("[{}] {reference} {}", t.state_tag(), plain(&title)));

    // Severity and source are tocsin's own words; labels come from the alert.
    let mut facts = vec![
        ("severity".to_string(), t.severity.as_str().to_string()),
        ("source".to_string(), t.source.clone()),
    ];
    facts.extend(
        t.labels
            .iter()
            .take(MAX_LABELS)
            .map(|(k, v)| (k.clone(), text::truncate(v, MAX_LABEL))),
    );
    html.push(
        facts
            .iter()
            .map(|(k, v)| format!("{}: {}", escape(&one_line(k)), escape(&one_line(v))))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    body.push(
        facts
            .iter()
            .map(|(k, v)| format!("{}: {}", plain(&one_line(k)), plain(&one_line(v))))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    if t.labels.len() > MAX_LABELS {
        let more = format!("(+{} more labels)", t.labels.len() - MAX_LABELS);
        html.push(escape(&more));
        body.push(more);
    }

    if let Some(summary) = t.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        let summary = text::truncate(summary.trim(), MAX_SUMMARY);
        html.push(escape(&summary));
        body.push(plain(&summary));
    }

    if let Some((what, who, note)) = change_line(&t.change) {
        let head = format!("{what} by {}", one_line(who));
        match note {
            Some(note) => {
                let note = text::truncate(note.trim(), MAX_NOTE);
                html.push(format!("<i>{}:</i> {}", escape(&head), escape(&note)));
                body.push(format!("{}: {}", plain(&head), plain(&note)));
            }
            None => {
                html.push(format!("<i>{}</i>", escape(&head)));
                body.push(plain(&head));
            }
        }
    } else if let Some(what) = bare_change(&t.change) {
        html.push(format!("<i>{what}</i>"));
        body.push(what.to_string());
    }

    finish(html, body, &t.mentions, &t.link)
}

/// Changes made by someone: what, who, and the note's text.
fn change_line(change: &Change) -> Option<(&'static str, &str, Option<&str>)> {
    match change {
        Change::Acked { by } => Some(("acked", by, None)),
        Change::Resolved { by } => Some(("resolved", by, None)),
        Change::Note { author, text } => Some(("note", author, Some(text))),
        Change::Opened | Change::Refired | Change::Reopened => None,
    }
}

/// Changes nobody made, worth a word in a follow-up.
fn bare_change(change: &Change) -> Option<&'static str> {
    match change {
        Change::Refired => Some("fired again"),
        Change::Reopened => Some("reopened"),
        _ => None,
    }
}

fn digest(d: &Digest) -> Rendered {
    let mut html = Vec::new();
    let mut body = Vec::new();

    let room = one_line(&d.room);
    let severities = d
        .by_severity
        .iter()
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut counts = format!("{} changes · {} firing", d.changes, d.firing);
    if !severities.is_empty() {
        counts.push_str(&format!(" ({severities})"));
    }
    counts.push_str(&format!(" · {} acked · {} resolved", d.acked, d.resolved));
    html.push(format!(
        "<strong>[DIGEST]</strong> {}: {}",
        anchor(&d.link, &room),
        escape(&counts)
    ));
    body.push(format!("[DIGEST] {}: {counts}", plain(&room)));

    if !d.top.is_empty() {
        let items: String = d
            .top
            .iter()
            .map(|i| {
                let title = one_line(&text::truncate(&i.title, MAX_TITLE));
                let reference = format!("T-{}", i.number);
                body.push(format!(
                    "- [{}] {reference} {} ({}) {}",
                    state_tag(i.state),
                    plain(&title),
                    i.severity.as_str(),
                    plain_link(&i.link)
                ));
                format!(
                    "<li><strong>[{}]</strong> {} {} ({})</li>",
                    state_tag(i.state),
                    anchor(&i.link, &reference),
                    escape(&title),
                    i.severity.as_str()
                )
            })
            .collect();
        html.push(format!("<ul>{items}</ul>"));
    }
    if d.more > 0 {
        let more = format!("+{} more", d.more);
        html.push(anchor(&d.link, &more));
        body.push(more);
    }

    finish(html, body, &d.mentions, &d.link)
}

/// Adds the mention line and the link, and joins the lines.
fn finish(
    mut html: Vec<String>,
    mut body: Vec<String>,
    mentions: &[Mention],
    link: &str,
) -> Rendered {
    let mut user_ids: Vec<&str> = Vec::new();
    let mut room = false;
    let mut html_names = Vec::new();
    let mut body_names = Vec::new();
    for m in mentions {
        match m {
            Mention::Member { name, handle } => match handle.as_deref().and_then(user_id) {
                Some(id) => {
                    if !user_ids.contains(&id) {
                        user_ids.push(id);
                        // A pill: clients show the user's name and the m.mentions entry pings them.
                        html_names.push(format!(
                            "<a href=\"https://matrix.to/#/{}\">{}</a>",
                            attr(id),
                            escape(&one_line(name))
                        ));
                        body_names.push(id.to_string());
                    }
                }
                // No Matrix account known (or not a valid user ID): named, never pinged.
                None => {
                    html_names.push(escape(&one_line(name)));
                    body_names.push(plain(&one_line(name)));
                }
            },
            Mention::Here | Mention::All => room = true,
        }
    }
    if room {
        // Matrix has no "here": both mean the whole room.
        html_names.insert(0, "@room".to_string());
        body_names.insert(0, "@room".to_string());
    }
    if !html_names.is_empty() {
        html.push(html_names.join(" "));
        body.push(body_names.join(" "));
    }
    body.push(plain_link(link));

    let mut object = Map::new();
    if !user_ids.is_empty() {
        object.insert("user_ids".into(), json!(user_ids));
    }
    if room {
        object.insert("room".into(), json!(true));
    }
    Rendered {
        body: body.join("\n"),
        html: html.join("<br>"),
        mentions: Value::Object(object),
    }
}

fn state_tag(state: TicketState) -> &'static str {
    match state {
        TicketState::Open => "FIRING",
        TicketState::Acked => "ACKED",
        TicketState::Resolved => "RESOLVED",
    }
}

/// Alert text for HTML: escaped, with line breaks kept as `<br>`.
fn escape(text: &str) -> String {
    text::escape_html(text).replace('\n', "<br>")
}

/// Alert text for the plain `body`. There is no markup to escape in plain text, but clients and bridges
/// that show `body` should not show a `<script>` or `<!channel>` from an alert as if it were real, so the
/// angle brackets become look-alikes; [`text::plain`] then defuses pings.
pub fn plain(text: &str) -> String {
    let shown: String = text
        .chars()
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            c => c,
        })
        .collect();
    text::plain(&shown)
}

/// Titles, names and labels stay on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `<a href="link">label</a>` for links tocsin made (its `public_url`), or just the label when the link
/// is not plain http(s), so a mangled setting can never become a `javascript:` link.
fn anchor(link: &str, label: &str) -> String {
    match web_link(link) {
        Some(link) => format!("<a href=\"{}\">{}</a>", attr(link), escape(label)),
        None => escape(label),
    }
}

fn plain_link(link: &str) -> String {
    web_link(link).unwrap_or_default().to_string()
}

fn web_link(link: &str) -> Option<&str> {
    let link = link.trim();
    let web = link.starts_with("https://") || link.starts_with("http://");
    (web && !link.chars().any(|c| c.is_whitespace() || c.is_control())).then_some(link)
}

/// Escapes a URL for an attribute. Unlike [`text::escape_html`] it leaves `@` alone: a pill's
/// `matrix.to/#/@user:server` must stay intact. Only tocsin's own links and validated user IDs get here.
fn attr(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A member handle that is a Matrix user ID (`@localpart:server`), or `None`. Anything else is shown as
/// a name: putting it in `m.mentions` would ping nobody, and in a pill it would be a broken link.
pub fn user_id(handle: &str) -> Option<&str> {
    let handle = handle.trim();
    let (local, server) = handle.strip_prefix('@')?.split_once(':')?;
    // Historical user IDs allow any printable ASCII but `:` in the localpart; the grammar of today is
    // `a-z 0-9 . _ = - / +`. Upper case is accepted for old accounts; nothing that needs escaping is.
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._=-/+".contains(c));
    let server_ok = !server.is_empty()
        && server
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    (local_ok && server_ok && handle.len() <= 255).then_some(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::Severity;
    use crate::domain::message::DigestItem;
    use crate::domain::time::Timestamp;

    fn message(mentions: Vec<Mention>, change: Change) -> TicketMessage {
        TicketMessage {
            ticket_id: "t".into(),
            number: 42,
            title: "Disk <b>full</b> @room".into(),
            state: TicketState::Open,
            severity: Severity::Critical,
            source: "prom".into(),
            labels: [("instance".to_string(), "<img src=x>".to_string())].into(),
            summary: Some("line one\nline <two>".into()),
            link: "http://tocsin.test/tickets/T-42".into(),
            change,
            mentions,
            at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn alert_text_is_escaped_in_both_bodies() {
        let r = ticket(&message(vec![], Change::Opened));
        assert_eq!(
            r.html,
            "<strong>[FIRING]</strong> <a href=\"http://tocsin.test/tickets/T-42\">T-42</a> Disk &lt;b&gt;full&lt;/b&gt; @\u{200B}room\
             <br>severity: critical · source: prom · instance: &lt;img src=x&gt;\
             <br>line one<br>line &lt;two&gt;"
        );
        assert_eq!(
            r.body,
            "[FIRING] T-42 Disk ‹b›full‹/b› @\u{200B}room\n\
             severity: critical · source: prom · instance: ‹img src=x›\n\
             line one\nline ‹two›\n\
             http://tocsin.test/tickets/T-42"
        );
        assert_eq!(r.mentions, json!({}));
        assert!(!r.pings());
    }

    #[test]
    fn routed_mentions_become_pills_and_mentions() {
        let mentions = vec![
            Mention::Member {
                name: "bob".into(),
                handle: Some("@bob:localhost".into()),
            },
            Mention::Member {
                name: "carol".into(),
                handle: None,
            },
            Mention::Member {
                name: "mallory".into(),
                handle: Some("@x\"><script>:localhost".into()),
            },
            Mention::Here,
        ];
        let r = ticket(&message(
            mentions,
            Change::Note {
                author: "alice".into(),
                text: "looking <now>".into(),
            },
        ));
        assert_eq!(
            r.mentions,
            json!({"user_ids": ["@bob:localhost"], "room": true})
        );
        assert!(r.html.contains(
            "<i>note by alice:</i> looking &lt;now&gt;<br>@room \
             <a href=\"https://matrix.to/#/@bob:localhost\">bob</a> carol mallory"
        ));
        assert!(r
            .body
            .contains("note by alice: looking ‹now›\n@room @bob:localhost carol mallory\n"));
        assert!(!r.html.contains("<script"));
    }

    #[test]
    fn digests_count_and_list() {
        let d = Digest {
            room: "ops".into(),
            changes: 40,
            firing: 12,
            acked: 3,
            resolved: 5,
            by_severity: vec![(Severity::Critical, 10), (Severity::Warning, 2)],
            top: vec![DigestItem {
                number: 1,
                title: "<i>a</i>".into(),
                state: TicketState::Open,
                severity: Severity::Critical,
                link: "http://tocsin.test/tickets/T-1".into(),
            }],
            more: 19,
            link: "http://tocsin.test/tickets".into(),
            mentions: vec![Mention::All],
            at: Timestamp::from_millis(0),
        };
        let r = digest(&d);
        assert_eq!(
            r.html,
            "<strong>[DIGEST]</strong> <a href=\"http://tocsin.test/tickets\">ops</a>: 40 changes · 12 firing \
             (critical 10, warning 2) · 3 acked · 5 resolved<br><ul><li><strong>[FIRING]</strong> \
             <a href=\"http://tocsin.test/tickets/T-1\">T-1</a> &lt;i&gt;a&lt;/i&gt; (critical)</li></ul>\
             <br><a href=\"http://tocsin.test/tickets\">+19 more</a><br>@room"
        );
        assert_eq!(
            r.body,
            "[DIGEST] ops: 40 changes · 12 firing (critical 10, warning 2) · 3 acked · 5 resolved\n\
             - [FIRING] T-1 ‹i›a‹/i› (critical) http://tocsin.test/tickets/T-1\n\
             +19 more\n@room\nhttp://tocsin.test/tickets"
        );
        assert_eq!(r.mentions, json!({"room": true}));
    }

    #[test]
    fn only_web_links_become_anchors() {
        assert_eq!(anchor("javascript:alert(1)", "T-1"), "T-1");
        assert_eq!(
            anchor("https://x.test/?a=1&b=\"", "T-1"),
            "<a href=\"https://x.test/?a=1&amp;b=&quot;\">T-1</a>"
        );
    }

    #[test]
    fn user_ids_are_checked() {
        assert_eq!(user_id("@bob:localhost"), Some("@bob:localhost"));
        assert_eq!(
            user_id("@b.o_b=1:matrix.example.org:8448"),
            Some("@b.o_b=1:matrix.example.org:8448")
        );
        for bad in [
            "bob",
            "@bob",
            "@:localhost",
            "@bob:",
            "@bo b:x",
            "@bob:x\"y",
            "HANDLE-ALICE",
        ] {
            assert_eq!(user_id(bad), None, "{bad}");
        }
    }
}
