//! Email bodies and subjects for members who were mentioned while not online: one ticket per email, or a
//! digest of several. Pure: content in, strings out.
//!
//! Alert text is untrusted. The HTML part passes every alert string through [`escape_html`] and gives an
//! `href` only to links that parse as http(s) URLs (anything else is shown as text), so a title like
//! `<img src=x onerror=…>` or a link like `javascript:…` stays inert. The text part shows alert strings
//! as they are, minus control characters, so a title cannot forge lines or terminal escapes. Subjects
//! lose newlines and control characters too: a header value with a line break in it is an injection.

use reqwest::Url;

use crate::domain::mail::{MailContent, MailTicket};
use crate::domain::ticket::TicketState;
use crate::sinks::text::{escape_html, truncate};

/// Longest title a subject carries, in characters. Long enough to be read in any inbox list, short enough
/// that the header never needs more than a few folded lines.
const SUBJECT_TITLE_MAX: usize = 150;
/// Ticket references a digest's subject names before it says "and N more".
const SUBJECT_REFS_MAX: usize = 5;
/// Labels shown for one ticket; digests show fewer.
const LABELS_MAX: usize = 10;
const DIGEST_LABELS_MAX: usize = 3;
/// Longest label value, summary, and digest summary line, in characters. A sender can put megabytes in
/// a label; an email should still open quickly on a phone.
const LABEL_VALUE_MAX: usize = 200;
const SUMMARY_MAX: usize = 2000;
const DIGEST_SUMMARY_MAX: usize = 200;

/// Labels shown first, in this order, when present: the ones people use to tell alerts apart. The rest
/// follow alphabetically. (The domain's `Labels` is a sorted map, so the order is imposed here.)
const KEY_LABELS: [&str; 8] = [
    "alertname",
    "instance",
    "job",
    "service",
    "namespace",
    "cluster",
    "pod",
    "host",
];

/// The subject: `[tocsin T-42] disk full on db1` for one ticket (`Re: ` in front on follow-ups, so mail
/// clients thread the ticket's emails; Gmail wants the same subject as well as `References`), or
/// `[tocsin] 3 tickets need you: T-42, T-43, T-44` for a digest (digests are never follow-ups: they
/// belong to no ticket's thread, so `follow_up` is ignored for them).
pub fn subject(content: &MailContent, follow_up: bool) -> String {
    match content.tickets.as_slice() {
        [ticket] => {
            let title = defuse_encoded_words(&one_line(&ticket.title));
            let title = if title.is_empty() {
                "(no title)".to_string()
            } else {
                truncate(&title, SUBJECT_TITLE_MAX)
            };
            let re = if follow_up { "Re: " } else { "" };
            format!("{re}[tocsin {}] {title}", ticket.reference())
        }
        tickets => {
            let refs: Vec<String> = tickets
                .iter()
                .take(SUBJECT_REFS_MAX)
                .map(MailTicket::reference)
                .collect();
            let more = tickets.len().saturating_sub(SUBJECT_REFS_MAX);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            let noun = if tickets.len() == 1 {
                "ticket"
            } else {
                "tickets"
            };
            if refs.is_empty() {
                format!("[tocsin] {} {noun} need you", tickets.len())
            } else {
                format!(
                    "[tocsin] {} {noun} need you: {}{tail}",
                    tickets.len(),
                    refs.join(", ")
                )
            }
        }
    }
}

/// The text/plain part.
pub fn text(content: &MailContent) -> String {
    let mut out = String::new();
    out.push_str(&format!("Hello {},\n\n", one_line(&content.member)));
    if content.is_digest() {
        out.push_str(&format!(
            "{} tickets you were mentioned on still need you:\n\n",
            content.tickets.len()
        ));
        for (i, t) in content.tickets.iter().enumerate() {
            out.push_str(&format!("{}. ", i + 1));
            ticket_text_compact(&mut out, t);
            out.push('\n');
        }
    } else if let Some(t) = content.tickets.first() {
        out.push_str("You were mentioned on a ticket that still needs you:\n\n");
        ticket_text_full(&mut out, t);
    }
    // `-- ` (with the space) is the signature separator mail clients recognise and dim.
    out.push_str("\n-- \n");
    if let Some(reference) = reply_reference(content) {
        out.push_str(&format!(
            "Reply to this email to add a note to {reference}; a first line of `ack` or `resolve` does that.\n"
        ));
    }
    out.push_str(
        "You get this email because you were mentioned in tocsin while you were not online.\n",
    );
    out.push_str(&format!(
        "Unsubscribe: {}\n",
        clean_line(&content.unsubscribe_link)
    ));
    out
}

/// The text/html part: one centred card, inline styles only (mail clients drop `<style>` blocks and
/// many mangle tables' widths on phones), every alert string escaped.
pub fn html(content: &MailContent) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    out.push_str(&format!(
        "<title>{}</title></head>\n",
        escape_html(&subject(content, false))
    ));
    out.push_str(
        "<body style=\"margin:0;padding:16px;background:#f6f8fa;color:#1f2328;\
         font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;line-height:1.5\">\n\
         <div style=\"max-width:640px;margin:0 auto;background:#ffffff;border:1px solid #d0d7de;\
         border-radius:6px;padding:20px\">\n",
    );
    out.push_str(&format!(
        "<p style=\"margin:0 0 12px\">Hello {},</p>\n",
        escape_html(&one_line(&content.member))
    ));
    if content.is_digest() {
        out.push_str(&format!(
            "<p style=\"margin:0 0 12px\">{} tickets you were mentioned on still need you:</p>\n",
            content.tickets.len()
        ));
        for t in &content.tickets {
            ticket_html(&mut out, t, true);
        }
    } else if let Some(t) = content.tickets.first() {
        out.push_str(
            "<p style=\"margin:0 0 12px\">You were mentioned on a ticket that still needs you:</p>\n",
        );
        ticket_html(&mut out, t, false);
    }
    out.push_str(
        "<div style=\"margin-top:20px;padding-top:12px;border-top:1px solid #d0d7de;\
         font-size:12px;color:#57606a\">\n",
    );
    if let Some(reference) = reply_reference(content) {
        out.push_str(&format!(
            "<p style=\"margin:0 0 8px\">Reply to this email to add a note to {}; a first line of \
             <code>ack</code> or <code>resolve</code> does that.</p>\n",
            escape_html(&reference)
        ));
    }
    out.push_str(&format!(
        "<p style=\"margin:0\">You get this email because you were mentioned in tocsin while you were \
         not online. {}</p>\n",
        link_html(&content.unsubscribe_link, "Unsubscribe")
    ));
    out.push_str("</div>\n</div>\n</body></html>\n");
    out
}

/// The reply hint names one ticket, so it only goes on single-ticket emails with replies switched on.
fn reply_reference(content: &MailContent) -> Option<String> {
    match content.tickets.as_slice() {
        [t] if content.reply_enabled => Some(t.reference()),
        _ => None,
    }
}

fn ticket_text_full(out: &mut String, t: &MailTicket) {
    out.push_str(&format!("{}\n", heading_line(t)));
    out.push_str(&format!("{}\n", title_line(t)));
    out.push_str(&format!("Source: {}\n", one_line(&t.source)));
    if let Some(summary) = summary_text(t, SUMMARY_MAX) {
        out.push('\n');
        for line in summary.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    let (labels, more) = shown_labels(t, LABELS_MAX);
    if !labels.is_empty() {
        out.push_str("\nLabels:\n");
        for (k, v) in labels {
            out.push_str(&format!("  {k}: {v}\n"));
        }
        if more > 0 {
            out.push_str(&format!("  (and {more} more)\n"));
        }
    }
    out.push_str(&format!(
        "\nOpen {}: {}\n",
        t.reference(),
        clean_line(&t.link)
    ));
    out.push_str(&format!("Why you get this: {}\n", why(t)));
}

fn ticket_text_compact(out: &mut String, t: &MailTicket) {
    out.push_str(&format!("{}: {}\n", heading_line(t), title_line(t)));
    let (labels, more) = shown_labels(t, DIGEST_LABELS_MAX);
    if !labels.is_empty() {
        let mut line: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if more > 0 {
            line.push(format!("+{more}"));
        }
        out.push_str(&format!("   {}\n", line.join(", ")));
    }
    if let Some(summary) = summary_text(t, DIGEST_SUMMARY_MAX) {
        out.push_str(&format!("   {}\n", one_line(&summary)));
    }
    out.push_str(&format!("   {}\n", clean_line(&t.link)));
    out.push_str(&format!("   Why: {}\n", why(t)));
}

fn ticket_html(out: &mut String, t: &MailTicket, compact: bool) {
    out.push_str(&format!(
        "<div style=\"border-left:4px solid {};padding:8px 12px;margin:0 0 12px;background:#f6f8fa\">\n",
        severity_colour(t)
    ));
    out.push_str(&format!(
        "<div style=\"font-size:12px;color:#57606a\">{} &middot; <strong>{}</strong> &middot; {} &middot; {}</div>\n",
        escape_html(&t.reference()),
        t.state.as_str().to_ascii_uppercase(),
        t.severity.as_str(),
        escape_html(&one_line(&t.source))
    ));
    let size = if compact { 14 } else { 16 };
    out.push_str(&format!(
        "<div style=\"font-size:{size}px;font-weight:600;margin:4px 0\">{}</div>\n",
        escape_html(&title_line(t))
    ));
    let summary_max = if compact {
        DIGEST_SUMMARY_MAX
    } else {
        SUMMARY_MAX
    };
    if let Some(summary) = summary_text(t, summary_max) {
        let summary = if compact { one_line(&summary) } else { summary };
        // Newlines become <br> after escaping, so the only markup in it is ours.
        out.push_str(&format!(
            "<p style=\"margin:8px 0\">{}</p>\n",
            escape_html(&summary).replace('\n', "<br>\n")
        ));
    }
    let (labels, more) = shown_labels(
        t,
        if compact {
            DIGEST_LABELS_MAX
        } else {
            LABELS_MAX
        },
    );
    if !labels.is_empty() {
        out.push_str("<div style=\"margin:8px 0;font-size:12px;color:#57606a\">");
        let items: Vec<String> = labels
            .iter()
            .map(|(k, v)| {
                format!(
                    "<span style=\"display:inline-block;margin:0 8px 2px 0\"><code>{}</code>: {}</span>",
                    escape_html(k),
                    escape_html(v)
                )
            })
            .collect();
        out.push_str(&items.join(" "));
        if more > 0 {
            out.push_str(&format!(" <span>(and {more} more)</span>"));
        }
        out.push_str("</div>\n");
    }
    out.push_str(&format!(
        "<p style=\"margin:8px 0\">{}</p>\n",
        link_html(&t.link, &format!("Open {}", t.reference()))
    ));
    out.push_str(&format!(
        "<div style=\"font-size:12px;color:#57606a\">Why you get this: {}</div>\n",
        escape_html(&why(t))
    ));
    out.push_str("</div>\n");
}

/// `T-42 [OPEN, critical]`.
fn heading_line(t: &MailTicket) -> String {
    format!(
        "{} [{}, {}]",
        t.reference(),
        t.state.as_str().to_ascii_uppercase(),
        t.severity.as_str()
    )
}

fn title_line(t: &MailTicket) -> String {
    let title = one_line(&t.title);
    if title.is_empty() {
        "(no title)".into()
    } else {
        title
    }
}

/// `mentioned through group oncall at 2026-11-22 02:39:20 UTC`.
fn why(t: &MailTicket) -> String {
    let stamp = t.mentioned_at.to_rfc3339();
    // `2026-11-22T02:39:20.653Z` reads better as `2026-11-22 02:39:20 UTC`; milliseconds are noise here.
    let when = match stamp.get(..19) {
        Some(head) if stamp.ends_with('Z') => format!("{} UTC", head.replacen('T', " ", 1)),
        _ => stamp,
    };
    format!("{} at {when}", t.reason.describe())
}

/// The summary without control characters (newlines kept, at most `max` characters), or `None` when
/// there is nothing to show.
fn summary_text(t: &MailTicket, max: usize) -> Option<String> {
    let summary = clean_multiline(t.summary.as_deref()?);
    let summary = summary.trim();
    (!summary.is_empty()).then(|| truncate(summary, max))
}

/// Key labels first, then the rest alphabetically, at most `max`; values one line and capped. Also
/// returns how many were left out.
fn shown_labels(t: &MailTicket, max: usize) -> (Vec<(String, String)>, usize) {
    let mut keys: Vec<&String> = KEY_LABELS
        .iter()
        .filter_map(|k| t.labels.get_key_value(*k).map(|(k, _)| k))
        .collect();
    keys.extend(
        t.labels
            .keys()
            .filter(|k| !KEY_LABELS.contains(&k.as_str())),
    );
    let more = keys.len().saturating_sub(max);
    let shown = keys
        .into_iter()
        .take(max)
        .map(|k| {
            (
                truncate(&one_line(k), LABEL_VALUE_MAX),
                truncate(&one_line(&t.labels[k]), LABEL_VALUE_MAX),
            )
        })
        .collect();
    (shown, more)
}

fn severity_colour(t: &MailTicket) -> &'static str {
    use crate::domain::alert::Severity;
    if t.state == TicketState::Resolved {
        return "#1a7f37";
    }
    match t.severity {
        Severity::Critical => "#cf222e",
        Severity::Error => "#bc4c00",
        Severity::Warning => "#9a6700",
        Severity::Info => "#0969da",
        Severity::None => "#57606a",
    }
}

/// An anchor when `url` is an http(s) URL, else the URL as escaped text (a `javascript:` or `data:` link
/// from an alert must never become clickable).
fn link_html(url: &str, label: &str) -> String {
    match http_url(url) {
        Some(href) => format!(
            "<a href=\"{}\" style=\"color:#0969da\">{}</a>",
            escape_attr(&href),
            escape_html(label)
        ),
        None => format!("{}: {}", escape_html(label), escape_html(&clean_line(url))),
    }
}

/// The URL re-serialised by the URL parser (which percent-encodes spaces, quotes and angle brackets)
/// when it is absolute http(s) with a host.
fn http_url(url: &str) -> Option<String> {
    let url = url.trim();
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let parsed = Url::parse(url).ok()?;
    (matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some())
        .then(|| parsed.to_string())
}

/// Escaping for a double-quoted attribute value. Not [`escape_html`]: that also defuses `@word`
/// mentions with a zero-width space, which would break a URL with an `@` in it.
fn escape_attr(text: &str) -> String {
    crate::sinks::text::escape_markup(text)
}

/// Characters that are never shown: C0/C1 controls, and the bidirectional overrides and isolates, with
/// which a title could make text display in an order other than the one it has ("Trojan Source").
fn hidden(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// One line: every control character (newlines and tabs too) becomes a space, runs of whitespace
/// collapse, ends trimmed. For subjects, titles, names and labels.
fn one_line(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if hidden(c) { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Alert text that looks like an RFC 2047 encoded-word (`=?utf-8?b?...?=`) would be decoded by mail
/// clients when sent as plain ASCII in a header, showing whatever the sender encoded instead of the
/// title. A zero-width space after each `=` before `?` keeps it literal: the subject is then not plain
/// ASCII, so it is sent encoded as a whole, and clients show the text as written.
fn defuse_encoded_words(text: &str) -> String {
    text.replace("=?", "=\u{200B}?")
}

/// Like [`one_line`] but only strips: for links, where a space would change the meaning.
fn clean_line(text: &str) -> String {
    text.chars().filter(|c| !hidden(*c)).collect()
}

/// Keeps line breaks (normalised to `\n`), turns tabs into spaces and drops other control characters.
fn clean_multiline(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            '\t' => Some(' '),
            c if hidden(c) => None,
            c => Some(c),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Labels, Severity};
    use crate::domain::mail::MailReason;
    use crate::domain::time::Timestamp;

    fn ticket(number: i64, title: &str) -> MailTicket {
        let mut labels = Labels::new();
        labels.insert("zone".into(), "eu-1".into());
        labels.insert("instance".into(), "db1:9100".into());
        labels.insert("alertname".into(), "DiskFull".into());
        MailTicket {
            number,
            title: title.into(),
            state: TicketState::Open,
            severity: Severity::Critical,
            source: "prom".into(),
            labels,
            summary: Some("Disk /var is 97% full.\nIt grows 1%/h.".into()),
            link: format!("https://tocsin.example/tickets/{number}"),
            reason: MailReason::Group {
                group: "oncall".into(),
            },
            // 2026-11-22T02:39:20.653Z
            mentioned_at: Timestamp::from_millis(1_795_315_160_653),
        }
    }

    fn single(t: MailTicket, reply: bool) -> MailContent {
        MailContent {
            member: "alice".into(),
            tickets: vec![t],
            unsubscribe_link: "https://tocsin.example/u/tok123".into(),
            reply_enabled: reply,
        }
    }

    fn digest(n: i64) -> MailContent {
        MailContent {
            member: "bob".into(),
            tickets: (0..n).map(|i| ticket(42 + i, "disk full")).collect(),
            unsubscribe_link: "https://tocsin.example/u/tok456".into(),
            reply_enabled: true,
        }
    }

    const HOSTILE: &str =
        "<script>alert(1)</script> <img src=x onerror=alert(1)> \"quoted' @channel";

    fn hostile_ticket() -> MailTicket {
        let mut t = ticket(7, HOSTILE);
        t.labels
            .insert("<b>k</b>".into(), "<img src=x onerror=alert(2)>".into());
        t.labels
            .insert("alertname".into(), "</code><script>x</script>".into());
        t.summary = Some("<iframe src=javascript:alert(3)></iframe>\n\"'&".into());
        t.source = "<svg onload=alert(4)>".into();
        t.link = "javascript:alert(5)".into();
        t
    }

    #[test]
    fn encoded_words_in_titles_stay_literal_in_the_subject() {
        let c = single(ticket(7, "=?utf-8?b?UGFzc3dvcmQgcmVzZXQ=?= now"), false);
        let s = subject(&c, false);
        // No `=?` is left to start an encoded-word; the text reads the same.
        assert!(!s.contains("=?"), "{s}");
        assert_eq!(
            s.replace('\u{200B}', ""),
            "[tocsin T-7] =?utf-8?b?UGFzc3dvcmQgcmVzZXQ=?= now"
        );
    }

    #[test]
    fn single_subject_and_follow_up() {
        let c = single(ticket(42, "disk full on db1"), false);
        assert_eq!(subject(&c, false), "[tocsin T-42] disk full on db1");
        assert_eq!(subject(&c, true), "Re: [tocsin T-42] disk full on db1");
    }

    #[test]
    fn subject_strips_control_characters_and_caps_length() {
        let c = single(
            ticket(
                1,
                "line one\r\nBcc: evil@example.com\t\u{1b}[31m\u{202E}red",
            ),
            false,
        );
        let s = subject(&c, false);
        assert!(!s.chars().any(hidden), "{s:?}");
        assert_eq!(s, "[tocsin T-1] line one Bcc: evil@example.com [31m red");

        let long = "x".repeat(1000);
        let s = subject(&single(ticket(1, &long), false), false);
        assert!(
            s.chars().count() <= "[tocsin T-1] ".len() + SUBJECT_TITLE_MAX,
            "{s}"
        );
        assert!(s.ends_with('…'));

        assert_eq!(
            subject(&single(ticket(9, " \n "), false), false),
            "[tocsin T-9] (no title)"
        );
    }

    #[test]
    fn digest_subject_lists_references_and_caps_them() {
        assert_eq!(
            subject(&digest(3), false),
            "[tocsin] 3 tickets need you: T-42, T-43, T-44"
        );
        // Digests have no thread: follow_up changes nothing.
        assert_eq!(subject(&digest(3), true), subject(&digest(3), false));
        assert_eq!(
            subject(&digest(8), false),
            "[tocsin] 8 tickets need you: T-42, T-43, T-44, T-45, T-46 and 3 more"
        );
    }

    #[test]
    fn single_text_has_every_part_in_order() {
        let t = text(&single(ticket(42, "disk full on db1"), true));
        let expected = [
            "Hello alice,",
            "T-42 [OPEN, critical]",
            "disk full on db1",
            "Source: prom",
            "  Disk /var is 97% full.",
            "  It grows 1%/h.",
            "Labels:",
            "  alertname: DiskFull",
            "  instance: db1:9100",
            "  zone: eu-1",
            "Open T-42: https://tocsin.example/tickets/42",
            "Why you get this: mentioned through group oncall at 2026-11-22 02:39:20 UTC",
            "\n-- \n",
            "Reply to this email to add a note to T-42; a first line of `ack` or `resolve` does that.",
            "Unsubscribe: https://tocsin.example/u/tok123",
        ];
        let mut at = 0;
        for part in expected {
            let found = t[at..]
                .find(part)
                .unwrap_or_else(|| panic!("{part:?} missing after byte {at} in:\n{t}"));
            at += found + part.len();
        }
    }

    #[test]
    fn reply_hint_only_when_enabled_and_single() {
        assert!(!text(&single(ticket(42, "x"), false)).contains("Reply to this email"));
        assert!(!html(&single(ticket(42, "x"), false)).contains("Reply to this email"));
        assert!(html(&single(ticket(42, "x"), true)).contains(
            "add a note to T-42; a first line of <code>ack</code> or <code>resolve</code>"
        ));
        // A digest names several tickets: a reply could not say which one it is about.
        assert!(!text(&digest(3)).contains("Reply to this email"));
    }

    #[test]
    fn digest_lists_each_ticket_compactly() {
        let t = text(&digest(3));
        assert!(t.starts_with("Hello bob,\n\n3 tickets you were mentioned on still need you:"));
        for (i, n) in [42, 43, 44].iter().enumerate() {
            assert!(
                t.contains(&format!("{}. T-{n} [OPEN, critical]: disk full\n", i + 1)),
                "{t}"
            );
            assert!(t.contains(&format!("   https://tocsin.example/tickets/{n}\n")));
        }
        assert!(t.contains("   alertname=DiskFull, instance=db1:9100, zone=eu-1\n"));
        assert!(t.contains("   Disk /var is 97% full. It grows 1%/h.\n"));
        assert!(t.contains("   Why: mentioned through group oncall at 2026-11-22 02:39:20 UTC\n"));
        assert!(t.contains("Unsubscribe: https://tocsin.example/u/tok456"));

        let h = html(&digest(3));
        assert_eq!(h.matches("border-left:4px solid").count(), 3);
        assert!(h.contains("<a href=\"https://tocsin.example/tickets/44\""));
    }

    #[test]
    fn labels_put_key_ones_first_and_are_capped() {
        let mut t = ticket(1, "x");
        for i in 0..20 {
            t.labels.insert(format!("a{i:02}"), "v".into());
        }
        let (shown, more) = shown_labels(&t, LABELS_MAX);
        assert_eq!(shown[0].0, "alertname");
        assert_eq!(shown[1].0, "instance");
        assert_eq!(shown[2].0, "a00");
        assert_eq!(shown.len(), LABELS_MAX);
        assert_eq!(more, 23 - LABELS_MAX);
        assert!(text(&single(t, false)).contains(&format!("(and {} more)", 23 - LABELS_MAX)));
    }

    #[test]
    fn html_structure() {
        let h = html(&single(ticket(42, "disk full on db1"), true));
        assert!(h.starts_with("<!DOCTYPE html>\n<html>"));
        assert!(h.ends_with("</body></html>\n"));
        assert!(!h.contains("<table"), "table-free layout");
        assert!(!h.contains("<style"), "inline styles only");
        assert!(h.contains("<title>[tocsin T-42] disk full on db1</title>"));
        assert!(h.contains("<p style=\"margin:0 0 12px\">Hello alice,</p>"));
        assert!(h.contains("T-42 &middot; <strong>OPEN</strong> &middot; critical &middot; prom"));
        assert!(h.contains(">disk full on db1</div>"));
        assert!(h.contains("Disk /var is 97% full.<br>\nIt grows 1%/h."));
        assert!(h.contains("<code>alertname</code>: DiskFull"));
        assert!(h.contains(
            "<a href=\"https://tocsin.example/tickets/42\" style=\"color:#0969da\">Open T-42</a>"
        ));
        assert!(h.contains(
            "Why you get this: mentioned through group oncall at 2026-11-22 02:39:20 UTC"
        ));
        assert!(h.contains(
            "<a href=\"https://tocsin.example/u/tok123\" style=\"color:#0969da\">Unsubscribe</a>"
        ));
        // Every tag we open, we close.
        for tag in ["div", "p", "code", "strong", "a", "span"] {
            assert_eq!(
                h.matches(&format!("<{tag} ")).count() + h.matches(&format!("<{tag}>")).count(),
                h.matches(&format!("</{tag}>")).count(),
                "<{tag}> balance in\n{h}"
            );
        }
    }

    #[test]
    fn hostile_alert_content_is_inert_in_html() {
        let h = html(&single(hostile_ticket(), true));
        for bad in [
            "<script",
            "<img",
            "<iframe",
            "<svg",
            "<b>",
            "</code><script",
            "onerror=alert(1)>",
            "href=\"javascript",
            "@channel",
        ] {
            assert!(!h.contains(bad), "{bad:?} survived in\n{h}");
        }
        assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("&quot;quoted&#39;"));
        // The javascript: link is shown as text, not linked.
        assert!(h.contains("Open T-7: javascript:alert(5)"));
        // No `<` anywhere except our own tags: strip the tags we write and look for leftovers.
        let ours = [
            "<!DOCTYPE html>",
            "<html>",
            "</html>",
            "<head>",
            "</head>",
            "<meta ",
            "<title>",
            "</title>",
            "<body ",
            "</body>",
            "<div ",
            "</div>",
            "<p ",
            "</p>",
            "<strong>",
            "</strong>",
            "<code>",
            "</code>",
            "<span ",
            "</span>",
            "<span>",
            "<a ",
            "</a>",
            "<br>",
        ];
        let mut rest = h.clone();
        for tag in ours {
            rest = rest.replace(tag, "");
        }
        assert!(!rest.contains('<'), "stray `<` in\n{rest}");
    }

    #[test]
    fn hostile_digest_is_inert_too() {
        let mut c = digest(2);
        c.tickets.push(hostile_ticket());
        let h = html(&c);
        assert!(!h.contains("<script") && !h.contains("<img") && !h.contains("<iframe"));
        assert!(h.contains("<title>[tocsin] 3 tickets need you: T-42, T-43, T-7</title>"));
    }

    #[test]
    fn text_part_keeps_alert_text_but_no_control_characters() {
        let mut t = hostile_ticket();
        t.title.push_str("\u{1b}[2J\u{7}");
        t.summary = Some("a\r\nb\u{0}c\td".into());
        let out = text(&single(t, false));
        assert!(
            out.contains("<script>alert(1)</script>"),
            "text is not HTML-escaped"
        );
        assert!(out.contains("@channel"));
        assert!(out.contains("  a\n  bc d\n"), "{out}");
        assert!(
            !out.chars().any(|c| c != '\n' && hidden(c)),
            "control characters in {out:?}"
        );
    }

    #[test]
    fn links_in_attributes() {
        assert_eq!(
            link_html("https://x.example/a\"b<c>", "go"),
            "<a href=\"https://x.example/a%22b%3Cc%3E\" style=\"color:#0969da\">go</a>"
        );
        // `@` in a URL is kept intact (no zero-width space) inside the href.
        assert!(
            link_html("https://x.example/@ops", "go").contains("href=\"https://x.example/@ops\"")
        );
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<b>",
            "//x.example",
            "https://x.example/a b",
            "mailto:a@b.c",
        ] {
            assert!(!link_html(bad, "go").contains("href"), "{bad} linked");
        }
    }

    #[test]
    fn acked_and_resolved_tickets_say_so() {
        let mut t = ticket(5, "x");
        t.state = TicketState::Resolved;
        assert!(text(&single(t.clone(), false)).contains("T-5 [RESOLVED, critical]"));
        t.state = TicketState::Acked;
        t.reason = MailReason::All { room: "ops".into() };
        assert!(html(&single(t.clone(), false)).contains("<strong>ACKED</strong>"));
        assert_eq!(why(&t), "@all in room ops at 2026-11-22 02:39:20 UTC");
    }
}
