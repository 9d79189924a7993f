//! Slack rendering: a ticket change or a storm digest as Block Kit `blocks` in mrkdwn, plus the plain
//! `text` Slack shows in notifications and in clients that cannot draw blocks. Root messages (Web API
//! mode) also get Acknowledge/Resolve buttons ([`render_root`]), answered by `chatops::slack`.
//!
//! Every string that came from an alert goes through [`text::escape_slack`] (blocks) or [`fallback`]
//! (the `text` field), cut to fit with [`fit`] so no block goes past Slack's limits. Pings are only
//! ever added here, from the [`Mention`]s routing decided.

use serde_json::{json, Value};

use crate::domain::alert::Labels;
use crate::domain::message::{Change, Content, Digest, Mention, TicketMessage};
use crate::domain::ticket::TicketState;
use crate::sinks::text;

/// Slack rejects a section (or a context element) whose text is longer than this.
pub const SECTION_MAX: usize = 3000;
/// Slack rejects a message with more blocks than this.
pub const BLOCKS_MAX: usize = 50;
/// The notification text only needs to say what happened; Slack cuts it far later (40 000), but a
/// phone banner shows a line or two.
const FALLBACK_MAX: usize = 600;
/// Labels shown on the context line: enough to tell alerts apart without burying the title.
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

/// What Slack gets for one message: `text` and `blocks` for `chat.postMessage`, `chat.update` and
/// incoming webhooks alike.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    pub blocks: Vec<Value>,
}

/// Renders a ticket change or a digest.
pub fn render(content: &Content) -> Rendered {
    match content {
        Content::Ticket(t) => ticket(t),
        Content::Digest(d) => digest(d),
    }
}

/// Renders a ticket's root message (the first post, and the edits that keep it current): like
/// [`render`], plus the buttons of [`actions`] for what can still be done to the ticket.
pub fn render_root(content: &Content) -> Rendered {
    let mut r = render(content);
    if let Content::Ticket(t) = content {
        if let Some(buttons) = actions(t) {
            r.blocks.push(buttons);
        }
    }
    r
}

/// The buttons on a root message: Acknowledge and Resolve while the ticket is open, Resolve once it
/// is acked, none once it is resolved. Pressing one sends `block_actions` to
/// `/chat/slack/interactive` with the `action_id` and a `value` like `ack:T-42`.
pub fn actions(t: &TicketMessage) -> Option<Value> {
    let reference = t.reference();
    let button = |label: &str, action: &str, verb: &str| {
        json!({
            "type": "button",
            "action_id": action,
            "text": {"type": "plain_text", "text": label},
            "value": format!("{verb}:{reference}"),
        })
    };
    let mut ack = button("Acknowledge", "tocsin_ack", "ack");
    ack["style"] = json!("primary");
    let resolve = button("Resolve", "tocsin_resolve", "resolve");
    let elements = match t.state {
        TicketState::Open => vec![ack, resolve],
        TicketState::Acked => vec![resolve],
        TicketState::Resolved => return None,
    };
    Some(json!({"type": "actions", "block_id": "tocsin_actions", "elements": elements}))
}

/// Escapes `raw` with `escape` and, if the result is longer than `max` characters, keeps the longest
/// prefix of `raw` whose escaped form plus `…` fits. Cutting the raw text (not the escaped text) means
/// a cut never lands inside `&amp;` or between a marker and the zero-width space that disarms it.
pub fn fit(raw: &str, max: usize, escape: fn(&str) -> String) -> String {
    let full = escape(raw);
    if full.chars().count() <= max {
        return full;
    }
    if max == 0 {
        return String::new();
    }
    let ends: Vec<usize> = raw
        .char_indices()
        .map(|(i, _)| i)
        .chain([raw.len()])
        .collect();
    let fits = |n: usize| escape(&raw[..ends[n]]).chars().count() < max;
    // Escaped length grows with the prefix, so a binary search finds the longest prefix that fits.
    let (mut lo, mut hi) = (0usize, ends.len() - 1);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    format!("{}…", escape(&raw[..ends[lo]]))
}

/// Alert text for the `text` field. Slack reads `<!channel>` and `<@U…>` there too, so besides
/// [`text::plain`] (which defuses `@here` words) the three characters Slack parses become entities,
/// which notifications show as the characters themselves.
pub fn fallback(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for c in text::plain(raw).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Titles, label values, sources and names are shown on one line: a newline in them would break the
/// layout (and in a context block, start what looks like a new fact).
pub fn one_line(raw: &str) -> String {
    raw.replace(['\r', '\n'], " ")
}

/// `<url|label>`. Links are tocsin's own (`public_url` based), but a `|` or `>` in one would end the
/// link early and let the rest be read as markup, so those are percent-encoded.
pub fn link(url: &str, label: &str) -> String {
    let mut safe = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            '&' => safe.push_str("&amp;"),
            '<' => safe.push_str("%3C"),
            '>' => safe.push_str("%3E"),
            '|' => safe.push_str("%7C"),
            c if c.is_whitespace() => safe.push_str("%20"),
            c => safe.push(c),
        }
    }
    format!("<{safe}|{label}>")
}

/// Slack member IDs are letters and digits (`U024BE7LH`, `W…`); anything else in a configured handle
/// would be spliced into `<@…>` and could close it, so such a handle is shown as the name instead.
fn is_member_id(handle: &str) -> bool {
    !handle.is_empty()
        && handle
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One mention as (mrkdwn, notification text). A member without a usable handle is named, not pinged.
fn mention(m: &Mention) -> (String, String) {
    match m {
        Mention::Member {
            handle: Some(h), ..
        } if is_member_id(h) => (format!("<@{h}>"), format!("<@{h}>")),
        Mention::Member { name, .. } => (
            fit(&one_line(name), 100, text::escape_slack),
            fit(&one_line(name), 100, fallback),
        ),
        Mention::Here => ("<!here>".into(), "<!here>".into()),
        Mention::All => ("<!channel>".into(), "<!channel>".into()),
    }
}

/// The mentions as a section (at most [`SECTION_MAX`] long: the rest are dropped rather than
/// breaking the message) and as notification text.
fn mentions(list: &[Mention]) -> Option<(String, String)> {
    if list.is_empty() {
        return None;
    }
    let mut rich = String::new();
    let mut plain = String::new();
    for m in list {
        let (r, p) = mention(m);
        if rich.chars().count() + r.chars().count() + 1 > SECTION_MAX {
            break;
        }
        for (out, part) in [(&mut rich, r), (&mut plain, p)] {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&part);
        }
    }
    Some((rich, plain))
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn context(text: String) -> Value {
    json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
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

/// "Acked by alice", "Note by bob: …": what this message reports, as (verb-phrase, actor, note).
fn change_parts(change: &Change) -> Option<(&'static str, Option<&str>, Option<&str>)> {
    match change {
        Change::Opened => None,
        Change::Refired => Some(("Firing again", None, None)),
        Change::Reopened => Some(("Reopened", None, None)),
        Change::Acked { by } => Some(("Acked by", Some(by), None)),
        Change::Resolved { by } => Some(("Resolved by", Some(by), None)),
        Change::Note { author, text } => Some(("Note by", Some(author), Some(text))),
    }
}

/// The change line, escaped with `escape` and at most `max` long.
fn change_line(change: &Change, max: usize, escape: fn(&str) -> String) -> Option<String> {
    let (verb, actor, note) = change_parts(change)?;
    let mut line = verb.to_string();
    if let Some(a) = actor {
        line.push(' ');
        line.push_str(&fit(&one_line(a), 200, escape));
    }
    if let Some(n) = note {
        line.push_str(": ");
        let room = max.saturating_sub(line.chars().count());
        line.push_str(&fit(n, room, escape));
    }
    Some(line)
}

fn ticket(t: &TicketMessage) -> Rendered {
    let tag = state_tag(t.state);
    let reference = t.reference();
    let mut blocks = Vec::new();

    let head = format!("*[{tag}]* {} ", link(&t.link, &reference));
    let room = SECTION_MAX.saturating_sub(head.chars().count());
    blocks.push(section(format!(
        "{head}{}",
        fit(&one_line(&t.title), room, text::escape_slack)
    )));

    // Severity is ours (an enum); source and labels came with the alert. The budgets below add up
    // to well under SECTION_MAX, so the line never needs a second cut.
    let mut facts = vec![
        format!("*{}*", t.severity.as_str()),
        format!(
            "source {}",
            fit(&one_line(&t.source), 200, text::escape_slack)
        ),
    ];
    for (k, v) in key_labels(&t.labels) {
        facts.push(format!(
            "{}={}",
            fit(&one_line(k), 60, text::escape_slack),
            fit(&one_line(v), 300, text::escape_slack)
        ));
    }
    blocks.push(context(facts.join(" · ")));

    if let Some(summary) = t.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        blocks.push(section(fit(summary, SECTION_MAX, text::escape_slack)));
    }
    let change = change_line(&t.change, SECTION_MAX, text::escape_slack);
    if let Some(line) = &change {
        blocks.push(section(line.clone()));
    }
    let pings = mentions(&t.mentions);
    if let Some((rich, _)) = &pings {
        blocks.push(section(rich.clone()));
    }

    let mut plain = format!(
        "[{tag}] {reference} {}",
        fit(&one_line(&t.title), 300, fallback)
    );
    if let Some(line) = change_line(&t.change, 300, fallback) {
        plain.push_str(" — ");
        plain.push_str(&line);
    }
    finish(plain, pings, blocks)
}

/// Cuts the notification text (keeping the pings, which are what notifies) and assembles.
fn finish(mut plain: String, pings: Option<(String, String)>, blocks: Vec<Value>) -> Rendered {
    if plain.chars().count() > FALLBACK_MAX {
        // Only our own separators and already-escaped pieces are in here; cutting can at worst leave
        // a partial entity like `&am…`, which shows as text and pings nobody.
        plain = text::truncate(&plain, FALLBACK_MAX);
    }
    if let Some((_, p)) = pings {
        plain.push(' ');
        plain.push_str(&p);
    }
    Rendered {
        text: plain,
        blocks,
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn digest(d: &Digest) -> Rendered {
    let counts = format!(
        "{} — {} firing, {} acked, {} resolved",
        plural(d.changes, "change", "changes"),
        d.firing,
        d.acked,
        d.resolved
    );
    let mut blocks = vec![section(format!(
        "*Alert storm in #{}*: {counts}",
        fit(&one_line(&d.room), 200, text::escape_slack)
    ))];
    if !d.by_severity.is_empty() {
        let parts: Vec<String> = d
            .by_severity
            .iter()
            .map(|(s, n)| format!("{} {n}", s.as_str()))
            .collect();
        blocks.push(context(parts.join(" · ")));
    }

    // Items go into as many sections as they need, leaving room for the "+N more" and mention blocks;
    // items that do not fit into the block budget are counted as more instead.
    let budget = BLOCKS_MAX.saturating_sub(blocks.len() + 2);
    let mut sections = 0;
    let mut more = d.more;
    let mut current = String::new();
    for (i, item) in d.top.iter().enumerate() {
        let line = format!(
            "{} [{}] {} {}",
            link(&item.link, &format!("T-{}", item.number)),
            state_tag(item.state),
            item.severity.as_str(),
            fit(&one_line(&item.title), 200, text::escape_slack)
        );
        if !current.is_empty() && current.chars().count() + 1 + line.chars().count() > SECTION_MAX {
            // `current` still has to go out as the last item section.
            if sections + 1 >= budget {
                more += (d.top.len() - i) as u64;
                break;
            }
            blocks.push(section(std::mem::take(&mut current)));
            sections += 1;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(&line);
    }
    if !current.is_empty() {
        blocks.push(section(current));
    }
    if more > 0 {
        blocks.push(section(link(&d.link, &format!("+{more} more"))));
    }
    let pings = mentions(&d.mentions);
    if let Some((rich, _)) = &pings {
        blocks.push(section(rich.clone()));
    }
    let plain = format!(
        "Alert storm in #{}: {counts}",
        fit(&one_line(&d.room), 200, fallback)
    );
    finish(plain, pings, blocks)
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
            state: TicketState::Open,
            severity: Severity::Critical,
            source: "prom".into(),
            labels: Labels::from([
                ("alertname".into(), "DiskFull".into()),
                ("instance".into(), "db1:9100".into()),
            ]),
            summary: Some("Only 2% left on /var".into()),
            link: "https://tocsin.example/tickets/T-42".into(),
            change,
            mentions,
            at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    fn block_texts(r: &Rendered) -> Vec<String> {
        r.blocks
            .iter()
            .map(|b| {
                b["text"]["text"]
                    .as_str()
                    .or_else(|| b["elements"][0]["text"].as_str())
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn ticket_has_headline_context_summary_and_mentions() {
        let t = message(
            Change::Opened,
            vec![
                Mention::Member {
                    name: "alice".into(),
                    handle: Some("U024BE7LH".into()),
                },
                Mention::Member {
                    name: "bob".into(),
                    handle: None,
                },
                Mention::Here,
                Mention::All,
            ],
        );
        let r = ticket(&t);
        let texts = block_texts(&r);
        assert_eq!(
            texts[0],
            "*[FIRING]* <https://tocsin.example/tickets/T-42|T-42> Disk full on db1"
        );
        assert_eq!(
            texts[1],
            "*critical* · source prom · alertname=DiskFull · instance=db1:9100"
        );
        assert_eq!(texts[2], "Only 2% left on /var");
        assert_eq!(texts[3], "<@U024BE7LH> bob <!here> <!channel>");
        assert_eq!(
            r.text,
            "[FIRING] T-42 Disk full on db1 <@U024BE7LH> bob <!here> <!channel>"
        );
    }

    #[test]
    fn change_lines_name_the_actor() {
        let cases = [
            (Change::Acked { by: "alice".into() }, "Acked by alice"),
            (
                Change::Resolved {
                    by: "source:prom".into(),
                },
                "Resolved by source:prom",
            ),
            (
                Change::Note {
                    author: "bob".into(),
                    text: "rebooting *now*".into(),
                },
                "Note by bob: rebooting *\u{200B}now*\u{200B}",
            ),
            (Change::Reopened, "Reopened"),
        ];
        for (change, want) in cases {
            let r = ticket(&message(change, vec![]));
            assert!(block_texts(&r).contains(&want.to_string()), "{r:?}");
            assert!(r.text.contains(" — "), "{}", r.text);
        }
    }

    #[test]
    fn alert_text_cannot_ping_or_format() {
        let mut t = message(Change::Opened, vec![]);
        t.title = "<!channel> @here <@U999> *bold* <https://evil|click>".into();
        t.summary = Some("<!here|here> & more".into());
        let r = ticket(&t);
        let blocks = serde_json::to_string(&r.blocks).unwrap();
        let all = format!("{} {blocks}", r.text);
        for bad in ["<!channel>", "<!here", "<@U999>", "@here", "<https://evil"] {
            assert!(!all.contains(bad), "{bad} in {all}");
        }
        // Formatting only matters where Slack draws it; notification text is shown as typed.
        assert!(!blocks.contains("*bold*"), "{blocks}");
        assert!(r.text.contains("&lt;!channel&gt;"), "{}", r.text);
    }

    #[test]
    fn odd_handles_are_named_not_spliced() {
        let (rich, plain) = mention(&Mention::Member {
            name: "eve".into(),
            handle: Some("U1>|<!channel".into()),
        });
        assert_eq!(rich, "eve");
        assert_eq!(plain, "eve");
    }

    #[test]
    fn at_most_six_labels_and_known_ones_first() {
        let labels: Labels = [
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "job",
            "alertname",
            "instance",
        ]
        .iter()
        .map(|k| (k.to_string(), "v".to_string()))
        .collect();
        let keys: Vec<&str> = key_labels(&labels).iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["alertname", "instance", "job", "a", "b", "c"]);
    }

    #[test]
    fn fit_cuts_raw_text_so_escapes_stay_whole() {
        assert_eq!(fit("a&b", 10, text::escape_slack), "a&amp;b");
        let cut = fit(&"&".repeat(100), 12, text::escape_slack);
        assert_eq!(cut, "&amp;&amp;…");
        assert!(cut.chars().count() <= 12);
        let cut = fit(&"*".repeat(10), 5, text::escape_slack);
        assert_eq!(cut, "*\u{200B}*\u{200B}…");
        assert_eq!(fit("abc", 0, text::escape_slack), "");
    }

    #[test]
    fn long_text_stays_within_slack_limits() {
        let mut t = message(
            Change::Note {
                author: "bob".into(),
                text: "<".repeat(5000),
            },
            vec![],
        );
        t.title = "&".repeat(5000);
        t.summary = Some(">".repeat(5000));
        t.labels = (0..20)
            .map(|i| (format!("k{i}{}", "&".repeat(100)), "<".repeat(1000)))
            .collect();
        let r = ticket(&t);
        for text in block_texts(&r) {
            assert!(text.chars().count() <= SECTION_MAX, "{}", text.len());
        }
        assert!(r.text.chars().count() <= FALLBACK_MAX + 1);
    }

    fn digest_of(top: usize, more: u64) -> Digest {
        Digest {
            room: "ops".into(),
            changes: 40,
            firing: 30,
            acked: 6,
            resolved: 4,
            by_severity: vec![(Severity::Critical, 12), (Severity::Warning, 18)],
            top: (1..=top as i64)
                .map(|n| DigestItem {
                    number: n,
                    title: format!("<b>Disk</b> {n} @here"),
                    state: TicketState::Open,
                    severity: Severity::Critical,
                    link: format!("https://tocsin.example/tickets/T-{n}"),
                })
                .collect(),
            more,
            link: "https://tocsin.example/tickets?state=open".into(),
            mentions: vec![Mention::Here],
            at: Timestamp::from_millis(1_700_000_000_000),
        }
    }

    #[test]
    fn digest_lists_counts_items_more_and_mentions() {
        let r = digest(&digest_of(2, 28));
        let texts = block_texts(&r);
        assert_eq!(
            texts[0],
            "*Alert storm in #ops*: 40 changes — 30 firing, 6 acked, 4 resolved"
        );
        assert_eq!(texts[1], "critical 12 · warning 18");
        assert_eq!(
            texts[2],
            "<https://tocsin.example/tickets/T-1|T-1> [FIRING] critical &lt;b&gt;Disk&lt;/b&gt; 1 @\u{200B}here\n\
             <https://tocsin.example/tickets/T-2|T-2> [FIRING] critical &lt;b&gt;Disk&lt;/b&gt; 2 @\u{200B}here"
        );
        assert_eq!(
            texts[3],
            "<https://tocsin.example/tickets?state=open|+28 more>"
        );
        assert_eq!(texts[4], "<!here>");
        assert_eq!(
            r.text,
            "Alert storm in #ops: 40 changes — 30 firing, 6 acked, 4 resolved <!here>"
        );
    }

    #[test]
    fn huge_digest_stays_within_block_limits() {
        let mut d = digest_of(2000, 5);
        for item in &mut d.top {
            item.title = "&".repeat(400);
        }
        let r = digest(&d);
        assert!(r.blocks.len() <= BLOCKS_MAX, "{}", r.blocks.len());
        for text in block_texts(&r) {
            assert!(text.chars().count() <= SECTION_MAX);
        }
        // What did not fit is still counted.
        let more = block_texts(&r)
            .into_iter()
            .find(|t| t.contains(" more>"))
            .unwrap();
        assert!(!more.contains("|+5 more>"), "{more}");
    }

    #[test]
    fn root_messages_carry_the_buttons_that_still_apply() {
        let buttons = |state, change| {
            let mut t = message(change, vec![]);
            t.state = state;
            let r = render_root(&Content::Ticket(t.clone()));
            // A plain render (thread replies) never has buttons.
            assert!(render(&Content::Ticket(t))
                .blocks
                .iter()
                .all(|b| b["type"] != "actions"));
            r.blocks
                .iter()
                .filter(|b| b["type"] == "actions")
                .flat_map(|b| b["elements"].as_array().unwrap().clone())
                .map(|e| {
                    format!(
                        "{} {} {}",
                        e["action_id"].as_str().unwrap(),
                        e["value"].as_str().unwrap(),
                        e["text"]["text"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            buttons(TicketState::Open, Change::Opened),
            [
                "tocsin_ack ack:T-42 Acknowledge",
                "tocsin_resolve resolve:T-42 Resolve"
            ]
        );
        assert_eq!(
            buttons(TicketState::Acked, Change::Acked { by: "bob".into() }),
            ["tocsin_resolve resolve:T-42 Resolve"]
        );
        assert!(buttons(TicketState::Resolved, Change::Resolved { by: "bob".into() }).is_empty());
        let digest = render_root(&Content::Digest(digest_of(1, 0)));
        assert!(digest.blocks.iter().all(|b| b["type"] != "actions"));
    }

    #[test]
    fn links_cannot_be_broken_out_of() {
        assert_eq!(
            link("https://x.test/a?b=1&c=2|<!channel>", "T-1"),
            "<https://x.test/a?b=1&amp;c=2%7C%3C!channel%3E|T-1>"
        );
    }
}
