//! What a member wrote when replying to one of tocsin's emails.
//!
//! A reply arrives as plain text (see `inbound::message`) carrying far more than the member typed: the
//! quoted original, the mail client's attribution line ("On …, tocsin wrote:"), a signature, a
//! "Sent from my iPhone" tag. [`parse`] keeps only what the member wrote and reads an optional command
//! from its first line (`ack`, `resolve`), the way Zulip's reply-by-email does.
//!
//! Pure: no IO, no clock. The rules are heuristics over what common clients produce (Gmail, Apple Mail,
//! Outlook, Thunderbird, in English, French and German); when in doubt they keep text rather than drop
//! it, except after a cut marker, where everything is quoted material by construction.

/// A command given on the first line of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyCommand {
    /// `ack` / `acknowledge`.
    Ack,
    /// `resolve` / `resolved`.
    Resolve,
}

/// What the member wrote: an optional first-line command and the remaining text (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub command: Option<ReplyCommand>,
    pub text: String,
}

/// Attribution lines longer than this are not attributions: a long line starting with "On " is prose.
const MAX_ATTRIBUTION: usize = 400;

/// Strips quoted text and signatures and reads a first-line command.
///
/// Removed: lines starting with `>` (after optional indentation); everything from an attribution line
/// ("On … wrote:", "Le … a écrit :", "Am … schrieb …:", possibly wrapped over two lines), an Outlook
/// "-----Original Message-----" separator or a "From:/Sent:" header block onwards; everything from a
/// signature separator (`-- ` or `--`) onwards; "Sent from my …" and "Get Outlook for …" lines. Line
/// endings become LF and the text is trimmed.
pub fn parse(body: &str) -> Reply {
    // Lone CRs (old Mac line endings) count as line breaks too, so no '>' line can hide behind one.
    let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let end = cut_point(&lines);
    let kept: Vec<&str> = lines[..end]
        .iter()
        .copied()
        .filter(|line| !is_quoted(line) && !is_device_tag(line))
        .collect();
    let text = kept.join("\n");
    split_command(text.trim())
}

/// Reads `ack` / `resolve` from the first line of already-stripped, trimmed text.
fn split_command(text: &str) -> Reply {
    // The text is trimmed, so its first line is the first non-empty one.
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    match command(first) {
        Some(command) => Reply {
            command: Some(command),
            text: rest.trim().to_string(),
        },
        None => Reply {
            command: None,
            text: text.to_string(),
        },
    }
}

fn command(line: &str) -> Option<ReplyCommand> {
    let word = line.trim();
    let word = word.strip_suffix(['.', '!']).unwrap_or(word).trim_end();
    let is = |candidate: &str| word.eq_ignore_ascii_case(candidate);
    if is("ack") || is("acknowledge") {
        Some(ReplyCommand::Ack)
    } else if is("resolve") || is("resolved") {
        Some(ReplyCommand::Resolve)
    } else {
        None
    }
}

/// The index of the first line that belongs to quoted material or the signature (or `lines.len()`).
fn cut_point(lines: &[&str]) -> usize {
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied();
        if is_signature_separator(line)
            || is_original_message(line)
            || is_attribution(line.trim())
            || next.is_some_and(|next| is_wrapped_attribution(line, next))
        {
            return i;
        }
        if next.is_some_and(|next| is_header_block(line, next)) {
            return before_underscore_rule(lines, i);
        }
    }
    lines.len()
}

/// Quoted lines, including ones a client indented.
fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// RFC 3676 §4.3: "-- " alone on a line starts the signature; many clients lose the space.
fn is_signature_separator(line: &str) -> bool {
    line == "-- " || line == "--"
}

/// Mobile clients' footers. Matched as whole short lines so prose mentioning them survives.
fn is_device_tag(line: &str) -> bool {
    let t = line.trim();
    t.len() <= 80
        && (t.starts_with("Sent from my ")
            || t.starts_with("Get Outlook for ")
            || t == "Sent from Outlook"
            || t.starts_with("Sent from Mail for "))
}

/// Outlook's "-----Original Message-----" (and its French and German forms).
fn is_original_message(line: &str) -> bool {
    let t = line.trim();
    if !t.starts_with("---") {
        return false;
    }
    let inner = t.trim_matches('-').trim().to_lowercase();
    matches!(
        inner.as_str(),
        "original message" | "message d'origine" | "ursprüngliche nachricht"
    )
}

/// "On <date>, <name> wrote:" and its French and German forms, on one (trimmed) line.
///
/// A digit is required: every client puts the date in the attribution, and it keeps a sentence such as
/// "On the db host, here is what I wrote:" from cutting the reply.
fn is_attribution(t: &str) -> bool {
    if t.len() > MAX_ATTRIBUTION || !t.chars().any(|c| c.is_ascii_digit()) {
        return false;
    }
    let lower = t.to_lowercase();
    (t.starts_with("On ") && lower.ends_with("wrote:"))
        || (t.starts_with("Le ")
            && (lower.ends_with("a écrit :")
                || lower.ends_with("a écrit:")
                || lower.ends_with("a écrit\u{a0}:")))
        || (t.starts_with("Am ") && lower.contains(" schrieb") && t.ends_with(':'))
}

/// An attribution that the client wrapped over two lines (Gmail wraps plain text near 78 columns).
fn is_wrapped_attribution(line: &str, next: &str) -> bool {
    let first = line.trim();
    let second = next.trim();
    if second.is_empty()
        || is_quoted(next)
        || !(first.starts_with("On ") || first.starts_with("Le ") || first.starts_with("Am "))
    {
        return false;
    }
    is_attribution(&format!("{first} {second}"))
}

/// Outlook's header block of the original: "From: …" followed by "Sent: …" (or "Date: …"), in English,
/// German or French.
fn is_header_block(line: &str, next: &str) -> bool {
    let t = line.trim_start();
    let n = next.trim_start();
    let from = ["From:", "Von:", "De :", "De:", "De\u{a0}:"]
        .iter()
        .any(|p| t.starts_with(p));
    let sent = [
        "Sent:",
        "Date:",
        "Gesendet:",
        "Envoyé :",
        "Envoyé:",
        "Envoyé\u{a0}:",
    ]
    .iter()
    .any(|p| n.starts_with(p));
    from && sent
}

/// Outlook puts a rule of underscores above the header block; it goes with the block.
fn before_underscore_rule(lines: &[&str], i: usize) -> usize {
    let mut j = i;
    while j > 0 && lines[j - 1].trim().is_empty() {
        j -= 1;
    }
    match j.checked_sub(1) {
        Some(k) if is_underscore_rule(lines[k]) => k,
        _ => i,
    }
}

fn is_underscore_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 8 && t.chars().all(|c| c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(body: &str) -> String {
        parse(body).text
    }

    #[test]
    fn plain_text_without_command() {
        let r = parse("Looking into it now.\n");
        assert_eq!(r.command, None);
        assert_eq!(r.text, "Looking into it now.");
    }

    #[test]
    fn commands_on_the_first_line() {
        for (body, command) in [
            ("ack", ReplyCommand::Ack),
            ("ACK.", ReplyCommand::Ack),
            ("  Acknowledge!  ", ReplyCommand::Ack),
            ("resolve", ReplyCommand::Resolve),
            ("Resolved.", ReplyCommand::Resolve),
            ("\n\nresolved!\n", ReplyCommand::Resolve),
        ] {
            let r = parse(body);
            assert_eq!(r.command, Some(command), "{body:?}");
            assert_eq!(r.text, "", "{body:?}");
        }
    }

    #[test]
    fn command_then_text() {
        let r = parse("ack\r\n\r\nRestarting the exporter, back in 10 min.\r\n");
        assert_eq!(r.command, Some(ReplyCommand::Ack));
        assert_eq!(r.text, "Restarting the exporter, back in 10 min.");
    }

    #[test]
    fn not_commands() {
        for body in [
            "ack it later",
            "acked",
            "resolve?",
            "I will ack",
            "ack..",
            "text\nack",
        ] {
            assert_eq!(parse(body).command, None, "{body:?}");
        }
        assert_eq!(text("text\nack"), "text\nack");
    }

    #[test]
    fn gmail_reply_with_attribution_and_quote() {
        let body = "resolve\r\n\r\nFixed by rotating the logs.\r\n\r\n\
            On Tue, Mar 5, 2024 at 10:02 AM tocsin <reply+abc.def@in.tocsin.example> wrote:\r\n\r\n\
            > [tocsin T-42] disk full on db1\r\n> Severity: critical\r\n";
        let r = parse(body);
        assert_eq!(r.command, Some(ReplyCommand::Resolve));
        assert_eq!(r.text, "Fixed by rotating the logs.");
    }

    #[test]
    fn wrapped_attribution() {
        let body = "On it.\n\nOn Tue, Mar 5, 2024 at 10:02 AM tocsin <\nreply+abc.def@in.tocsin.example> wrote:\n\n> quoted\n";
        assert_eq!(text(body), "On it.");
        let body = "Seen.\n\nOn Tue, 5 Mar 2024 at 10:02, Someone With A Long Name\n<someone@example.org> wrote:\nunquoted original\n";
        assert_eq!(text(body), "Seen.");
    }

    #[test]
    fn attribution_without_quote_markers_cuts_everything_after() {
        // HTML-only clients: the blockquote is dropped but the attribution stays.
        let body = "Checking.\n\nOn 5 Mar 2024, at 10:02, tocsin <reply+x@in.tocsin.example> wrote:\n\nthe original alert text\n";
        assert_eq!(text(body), "Checking.");
    }

    #[test]
    fn french_and_german_attributions() {
        let fr = "Je regarde.\n\nLe mar. 5 mars 2024 à 10:02, tocsin <reply+x@in.tocsin.example> a écrit :\n> original\n";
        assert_eq!(text(fr), "Je regarde.");
        let de = "Schaue ich mir an.\n\nAm 05.03.2024 um 10:02 schrieb tocsin <reply+x@in.tocsin.example>:\n> original\n";
        assert_eq!(text(de), "Schaue ich mir an.");
        let de_wrapped =
            "ack\n\nAm Di., 5. März 2024 um 10:02 Uhr schrieb tocsin <\nreply+x@in.tocsin.example>:\n";
        let r = parse(de_wrapped);
        assert_eq!(r.command, Some(ReplyCommand::Ack));
        assert_eq!(r.text, "");
    }

    #[test]
    fn prose_that_looks_like_an_attribution_is_kept() {
        let body = "On the db host, here is what I wrote:\nsudo systemctl restart exporter";
        assert_eq!(text(body), body);
    }

    #[test]
    fn outlook_original_message() {
        let body = "ack\r\nWorking on it\r\n\r\n-----Original Message-----\r\nFrom: tocsin\r\nSent: Tuesday\r\nSubject: x\r\n\r\nalert\r\n";
        let r = parse(body);
        assert_eq!(r.command, Some(ReplyCommand::Ack));
        assert_eq!(r.text, "Working on it");
    }

    #[test]
    fn outlook_header_block() {
        let body = "Resolved!\n\nDisk replaced.\n\nGet Outlook for iOS\n________________________________\n\
            From: tocsin <reply+x@in.tocsin.example>\nSent: Tuesday, March 5, 2024 10:02 AM\n\
            To: Bob <bob@example.org>\nSubject: [tocsin T-42] disk full on db1\n\nDisk full.\n";
        let r = parse(body);
        assert_eq!(r.command, Some(ReplyCommand::Resolve));
        assert_eq!(r.text, "Disk replaced.");
        let de = "Erledigt.\n\nVon: tocsin <reply+x@in.tocsin.example>\nGesendet: Dienstag, 5. März 2024 10:02\n";
        assert_eq!(text(de), "Erledigt.");
    }

    #[test]
    fn from_line_alone_is_kept() {
        let body = "From: the logs it looks like a full disk.\nRotating now.";
        assert_eq!(text(body), body);
    }

    #[test]
    fn signatures() {
        assert_eq!(
            text("Rebooting.\n\n-- \nBob Smith\nSRE, Example Corp\n"),
            "Rebooting."
        );
        assert_eq!(text("Rebooting.\n--\nBob\n"), "Rebooting.");
        assert_eq!(text("Rebooting.\n\nSent from my iPhone\n"), "Rebooting.");
        assert_eq!(
            text("Rebooting.\n\nGet Outlook for Android\n\n"),
            "Rebooting."
        );
        // A line of more dashes is not a signature separator.
        assert_eq!(text("a\n---\nb"), "a\n---\nb");
    }

    #[test]
    fn quoted_lines_are_dropped_anywhere() {
        let body = "> what about db2?\nAlso fine.\n  > indented quote\n>> deeper\nDone.";
        assert_eq!(text(body), "Also fine.\nDone.");
    }

    #[test]
    fn command_below_quote_is_read() {
        // Interleaved style: a quote first, then the command.
        let r = parse("> [tocsin T-42] disk full\n\nack\nlooking");
        assert_eq!(r.command, Some(ReplyCommand::Ack));
        assert_eq!(r.text, "looking");
    }

    #[test]
    fn empty_and_only_quotes() {
        assert_eq!(
            parse(""),
            Reply {
                command: None,
                text: String::new()
            }
        );
        assert_eq!(text("\r\n\r\n"), "");
        assert_eq!(text("> a\n> b\n"), "");
        assert_eq!(text("-- \nsig"), "");
    }

    #[test]
    fn lone_cr_is_a_line_break() {
        assert_eq!(text("one\r> quoted\rtwo"), "one\ntwo");
    }

    /// A line with no quote, attribution, signature or command in it: lowercase words only.
    fn plain_line() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            4 => "[a-z0-9][a-z0-9 ,.?]{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn never_panics(body in any::<String>()) {
            let _ = parse(&body);
        }

        #[test]
        fn never_panics_on_mail_like_input(
            lines in prop::collection::vec(
                prop_oneof![
                    Just("> quoted".to_string()),
                    Just("-- ".to_string()),
                    Just("On Tue, 5 Mar 2024, a b wrote:".to_string()),
                    Just("On Tue, 5 Mar 2024, a <".to_string()),
                    Just("From: x".to_string()),
                    Just("Sent: y".to_string()),
                    Just("________".to_string()),
                    Just("ack".to_string()),
                    Just(String::new()),
                    "\\PC{0,20}",
                ],
                0..20,
            ),
            sep in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
        ) {
            let body = lines.join(sep);
            let r = parse(&body);
            prop_assert!(r.text.lines().all(|l| !l.starts_with('>')));
        }

        #[test]
        fn result_never_has_a_quoted_line(body in any::<String>()) {
            let r = parse(&body);
            prop_assert!(r.text.split('\n').all(|l| !l.starts_with('>')), "{:?}", r.text);
            prop_assert!(!r.text.contains('\r'));
        }

        #[test]
        fn plain_bodies_come_back_trimmed(
            lines in prop::collection::vec(plain_line(), 0..12),
            lead in "[ \n]{0,3}",
            trail in "[ \n]{0,3}",
            crlf in any::<bool>(),
        ) {
            let joined = lines.join("\n");
            prop_assume!(command(joined.trim().split('\n').next().unwrap_or("")).is_none());
            let raw = format!("{lead}{joined}{trail}");
            let body = if crlf { raw.replace('\n', "\r\n") } else { raw.clone() };
            let r = parse(&body);
            prop_assert_eq!(r.command, None);
            prop_assert_eq!(r.text, raw.trim());
        }

        #[test]
        fn command_then_plain_text(
            cmd in prop_oneof![Just("ack"), Just("Acknowledge."), Just("RESOLVE!"), Just("resolved")],
            lines in prop::collection::vec(plain_line(), 0..8),
        ) {
            let rest = lines.join("\n");
            let r = parse(&format!("{cmd}\n{rest}\n\n> quoted\n"));
            prop_assert!(r.command.is_some());
            prop_assert_eq!(r.text, rest.trim());
        }
    }
}
