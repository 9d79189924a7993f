//! Mattermost rendering: a ticket change or a storm digest as one Markdown message, the same text for
//! incoming webhooks (`text`) and REST API posts (`message`).
//!
//! Alert text goes through [`md`] (the shared Markdown escape plus two Mattermost-specific guards),
//! after being cut to a length budget so the whole message stays under Mattermost's post limit.
//! Pings are only added here, from the [`Mention`]s routing decided.

use crate::domain::alert::Labels;
use crate::domain::message::{Change, Content, Digest, Mention, TicketMessage};
use crate::domain::ticket::TicketState;
use crate::sinks::slack::render::fit;
use crate::sinks::text;

/// Mattermost's post limit in characters (`PostMessageMaxRunesV2`); webhooks split longer posts and the
/// API rejects them. Everything below is budgeted to stay under it.
pub const MESSAGE_MAX: usize = 16383;
/// Digest items and mentions stop being added past this, leaving room for the "+N more" line.
const BODY_BUDGET: usize = 15_000;
/// Labels shown on the facts line.
pub const LABELS_MAX: usize = 6;
/// Labels people look for first; the rest follow in name order.
const PREFERRED_LABELS: [&str; 9] = [
    "alertname",
    "instance",
    "job",
    "service",
    "namespace",
    "pod",
    "host",
    "cluster",
    "env",
];

/// Alert text as Markdown. [`text::escape_markdown`] already makes `<b>` inert (`\<b\>`), but the raw
/// `<tag` is still there for anything downstream that reads the message as HTML-ish (notification
/// bridges, email digests), so a zero-width space goes after every `<`; and `=` is escaped too, since a
/// line of `===` under a summary line would turn it into a heading.
pub fn md(raw: &str) -> String {
    text::escape_markdown(raw)
        .replace('<', "<\u{200B}")
        .replace('=', "\\=")
}

/// [`md`] of `raw`, at most `max` characters long once escaped (cut with `…`). The raw text is cut, not
/// the escaped text, so a cut never separates a backslash from the character it escapes.
pub fn md_cut(raw: &str, max: usize) -> String {
    fit(raw, max, md)
}

/// Titles, labels, sources and names stay on one line so they cannot break the layout.
fn one_line(raw: &str) -> String {
    raw.replace(['\r', '\n'], " ")
}

/// `[label](url)`. Links are tocsin's own, but a `)` or a space would end the URL early, so those are
/// percent-encoded.
pub fn link(url: &str, label: &str) -> String {
    let mut safe = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '(' => safe.push_str("%28"),
            ')' => safe.push_str("%29"),
            '<' => safe.push_str("%3C"),
            '>' => safe.push_str("%3E"),
            c if c.is_whitespace() => safe.push_str("%20"),
            c => safe.push(c),
        }
    }
    format!("[{label}]({safe})")
}

/// A Mattermost username as configured (`alice`, or `@alice`), if it is one: anything else spliced
/// after an `@` could carry markup or a second mention.
fn username(handle: &str) -> Option<&str> {
    let name = handle.strip_prefix('@').unwrap_or(handle);
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    .then_some(name)
}

fn mention(m: &Mention) -> String {
    match m {
        Mention::Member {
            handle: Some(h), ..
        } if username(h).is_some() => format!("@{}", username(h).unwrap_or_default()),
        Mention::Member { name, .. } => md_cut(&one_line(name), 200),
        Mention::Here => "@here".into(),
        Mention::All => "@channel".into(),
    }
}

/// Appends the mentions line, dropping mentions that would push the message past its budget rather
/// than having the post rejected.
fn push_mentions(out: &mut String, list: &[Mention]) {
    let mut line = String::new();
    for m in list {
        let part = mention(m);
        if out.chars().count() + line.chars().count() + part.chars().count() + 2 > MESSAGE_MAX {
            break;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&part);
    }
    if !line.is_empty() {
        out.push('\n');
        out.push_str(&line);
    }
}

fn state_tag(state: TicketState) -> &'static str {
    match state {
        TicketState::Open => "FIRING",
        TicketState::Acked => "ACKED",
        TicketState::Resolved => "RESOLVED",
    }
}

/// Up to [`LABELS_MAX`] labels, the well-known ones first.
pub fn key_labels(labels: &Labels) -> Vec<(&str, &str)> {
    let preferred = PREFERRED_LABELS
        .iter()
        .filter_map(|k| labels.get_key_value(*k));
    let rest = labels
        .iter()
        .filter(|(k, _)| !PREFERRED_LABELS.contains(&k.as_str()));
    preferred
        .chain(rest)
        .take(LABELS_MAX)
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// "Acked by alice", "Note by bob: …".
fn change_line(change: &Change) -> Option<String> {
    let actor = |a: &str| md_cut(&one_line(a), 200);
    Some(match change {
        Change::Opened => return None,
        Change::Refired => "Firing again".into(),
        Change::Reopened => "Reopened".into(),
        Change::Acked { by } => format!("Acked by {}", actor(by)),
        Change::Resolved { by } => format!("Resolved by {}", actor(by)),
        Change::Note { author, text } => {
            format!("Note by {}: {}", actor(author), md_cut(text, 6000))
        }
    })
}

/// Renders a ticket change or a digest as one Markdown message.
pub fn render(content: &Content) -> String {
    match content {
        Content::Ticket(t) => ticket(t),
        Content::Digest(d) => digest(d),
    }
}

fn ticket(t: &TicketMessage) -> String {
    // Budgets, in escaped characters: title 1000, source 200, labels 6 × 400, summary 4000, actor
    // 200, note 6000: under 14 000 with the rest of the layout, so the post limit is never reached.
    let mut out = format!(
        "**[{}]** {} {}",
        state_tag(t.state),
        link(&t.link, &t.reference()),
        md_cut(&one_line(&t.title), 1000)
    );
    let mut facts = vec![
        format!("**{}**", t.severity.as_str()),
        format!("source: {}", md_cut(&one_line(&t.source), 200)),
    ];
    for (k, v) in key_labels(&t.labels) {
        facts.push(format!(
            "{}={}",
            md_cut(&one_line(k), 100),
            md_cut(&one_line(v), 300)
        ));
    }
    out.push('\n');
    out.push_str(&facts.join(" · "));
    if let Some(summary) = t.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        out.push('\n');
        out.push_str(&md_cut(summary, 4000));
    }
    if let Some(line) = change_line(&t.change) {
        out.push('\n');
        out.push_str(&line);
    }
    push_mentions(&mut out, &t.mentions);
    out
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn digest(d: &Digest) -> String {
    let mut out = format!(
        "**Alert storm in #{}**: {} — {} firing, {} acked, {} resolved",
        md_cut(&one_line(&d.room), 200),
        plural(d.changes, "change", "changes"),
        d.firing,
        d.acked,
        d.resolved
    );
    if !d.by_severity.is_empty() {
        let parts: Vec<String> = d
            .by_severity
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        out.push('\n');
        out.push_str(&parts.join(" · "));
    }
    let mut more = d.more;
    let mut length = out.chars().count();
    for (i, item) in d.top.iter().enumerate() {
        let line = format!(
            "{} [{}] {} {}",
            link(&item.link, &format!("T-{}", item.number)),
            state_tag(item.state),
            item.severity.as_str(),
            md_cut(&one_line(&item.title), 400)
        );
        let grown = length + 1 + line.chars().count();
        if grown > BODY_BUDGET {
            // What does not fit is still counted, and reachable through the "+N more" link.
            more += (d.top.len() - i) as u64;
            break;
        }
        out.push('\n');
        out.push_str(&line);
        length = grown;
    }
    if more > 0 {
        out.push('\n');
        out.push_str(&link(&d.link, &format!("+{more} more")));
    }
    push_mentions(&mut out, &d.mentions);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::Severity;
    use crate::domain::message::DigestItem;
    use crate::domain::time::Timestamp;

    fn message(change: Change, mentions: Vec<Mention>) -> TicketMessage {
        TicketMessage {
            ticket_id: "t".into(),
            number: 42,
            title: "Disk full on db1".into(),
            state: TicketState::Acked,
            severity: Severity::Warning,
            source: "prom".into(),
            labels: Labels::from([("alertname".into(), "DiskFull".into())]),
            summary: Some("Only 2% left".into()),
            link: "https://tocsin.example/tickets/T-42".into(),
            change,
            mentions,
            at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    #[test]
    fn ticket_lines() {
        let out = ticket(&message(
            Change::Acked { by: "alice".into() },
            vec![
                Mention::Member {
                    name: "bob".into(),
                    handle: Some("@bob.smith".into()),
                },
                Mention::Member {
                    name: "carol".into(),
                    handle: None,
                },
                Mention::Here,
                Mention::All,
            ],
        ));
        assert_eq!(
            out,
            "**[ACKED]** [T-42](https://tocsin.example/tickets/T-42) Disk full on db1\n\
             **warning** · source: prom · alertname=DiskFull\n\
             Only 2% left\n\
             Acked by alice\n\
             @bob.smith carol @here @channel"
        );
    }

    #[test]
    fn change_lines() {
        let cases = [
            (
                Change::Resolved {
                    by: "source:prom".into(),
                },
                "Resolved by source\\:prom",
            ),
            (
                Change::Note {
                    author: "bob".into(),
                    text: "on it, see [runbook](x)".into(),
                },
                "Note by bob: on it, see \\[runbook\\]\\(x\\)",
            ),
            (Change::Reopened, "Reopened"),
            (Change::Refired, "Firing again"),
        ];
        for (change, want) in cases {
            let out = ticket(&message(change, vec![]));
            assert!(out.lines().any(|l| l == want), "{out}");
        }
        let opened = ticket(&message(Change::Opened, vec![]));
        assert_eq!(opened.lines().count(), 3, "{opened}");
    }

    #[test]
    fn alert_text_cannot_ping_or_format() {
        let mut t = message(Change::Opened, vec![]);
        t.title = "@channel <b>x</b> **y** [z](https://evil)\n# big".into();
        t.summary = Some("@here <img src=x>\n===".into());
        let out = ticket(&t);
        for bad in [
            "@channel", "@here", "<b>", "<img", "**y**", "[z]", "\n# big", "\n===",
        ] {
            assert!(!out.contains(bad), "{bad} in {out}");
        }
    }

    #[test]
    fn odd_handles_are_named_not_spliced() {
        let m = Mention::Member {
            name: "eve".into(),
            handle: Some("eve @channel".into()),
        };
        assert_eq!(mention(&m), "eve");
    }

    #[test]
    fn long_text_stays_under_the_post_limit() {
        let mut t = message(
            Change::Note {
                author: "b".repeat(500),
                text: "*".repeat(10_000),
            },
            vec![Mention::Here; 5000],
        );
        t.title = "[".repeat(10_000);
        t.summary = Some("<".repeat(10_000));
        t.labels = (0..20)
            .map(|i| (format!("{i}{}", "_".repeat(100)), ".".repeat(1000)))
            .collect();
        let out = ticket(&t);
        assert!(out.chars().count() <= MESSAGE_MAX, "{}", out.len());
    }

    fn digest_of(top: usize, more: u64) -> Digest {
        Digest {
            room: "ops".into(),
            changes: 1,
            firing: 1,
            acked: 0,
            resolved: 0,
            by_severity: vec![(Severity::Critical, 1)],
            top: (1..=top as i64)
                .map(|n| DigestItem {
                    number: n,
                    title: "Disk *full*".into(),
                    state: TicketState::Open,
                    severity: Severity::Critical,
                    link: format!("https://tocsin.example/tickets/T-{n}"),
                })
                .collect(),
            more,
            link: "https://tocsin.example/tickets".into(),
            mentions: vec![Mention::All],
            at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    #[test]
    fn digest_lines() {
        assert_eq!(
            digest(&digest_of(1, 3)),
            "**Alert storm in #ops**: 1 change — 1 firing, 0 acked, 0 resolved\n\
             critical 1\n\
             [T-1](https://tocsin.example/tickets/T-1) [FIRING] critical Disk \\*full\\*\n\
             [+3 more](https://tocsin.example/tickets)\n\
             @channel"
        );
    }

    #[test]
    fn huge_digest_counts_what_it_cannot_list() {
        let mut d = digest_of(1000, 0);
        for item in &mut d.top {
            item.title = "_".repeat(300);
        }
        let out = digest(&d);
        assert!(out.chars().count() <= MESSAGE_MAX);
        let listed = out.lines().filter(|l| l.starts_with("[T-")).count();
        let more_line = format!("[+{} more](https://tocsin.example/tickets)", 1000 - listed);
        assert!(out.contains(&more_line), "{more_line}");
    }

    #[test]
    fn links_cannot_be_broken_out_of() {
        assert_eq!(
            link("https://x.test/a b)(c", "T-1"),
            "[T-1](https://x.test/a%20b%29%28c)"
        );
    }
}
