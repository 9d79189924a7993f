//! Making untrusted alert text safe for each message format.
//!
//! Two dangers: markup (an alert title with `<b>` or `*bold*` or a link) and pings (an alert that says
//! `@here`, `<!channel>`, `@everyone` or `@room`, or names a user). Every string from an alert passes
//! through one of the `escape_*` functions, which escape the format's markup and then
//! [`defuse_mentions`]. Only mentions routing decided are added afterwards, by the sink itself.

/// Breaks every `@word` (at the start of a word) with a zero-width space after the `@`, so no platform
/// reads it as a mention. The text still reads the same to people.
pub fn defuse_mentions(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        out.push(c);
        if c != '@' {
            continue;
        }
        let next_is_word = chars
            .get(i + 1)
            .is_some_and(|n| n.is_alphanumeric() || matches!(n, '_' | '&' | '!' | '-'));
        // `ops@example.org` is an address, not a mention: something before the `@` and a dot after.
        let word_after: String = chars[i + 1..]
            .iter()
            .take_while(|c| !c.is_whitespace())
            .collect();
        let looks_like_address =
            i > 0 && chars[i - 1].is_alphanumeric() && word_after.contains('.');
        if next_is_word && !looks_like_address {
            out.push('\u{200B}');
        }
    }
    out
}

/// HTML (Matrix `formatted_body`, emails): escapes `& < > " '` and defuses mentions.
pub fn escape_html(text: &str) -> String {
    defuse_mentions(&escape_markup(text))
}

/// Escapes `& < > " '` for HTML element content and quoted attribute values, and nothing else (no
/// mention defusing: attribute values such as URLs must stay intact). The web UI uses it too.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
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

/// Slack mrkdwn: `& < >` become entities (which also disarms `<!channel>` and `<@U…>`), and the
/// formatting characters `* _ ~ \``are shown as look-alikes so alert text cannot bold or strike.
pub fn escape_slack(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // Slack mrkdwn has no escape character; a zero-width space after the marker stops it.
            '*' | '_' | '~' | '`' => {
                out.push(c);
                out.push('\u{200B}');
            }
            c => out.push(c),
        }
    }
    defuse_mentions(&out)
}

/// CommonMark-style Markdown (Mattermost, Discord, Teams text blocks): backslash-escapes every ASCII
/// punctuation character Markdown could read as syntax, and `<` so no raw HTML or `<@id>` survives.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.'
            | '!' | '|' | '~' | '>' | '<' | ':' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    defuse_mentions(&out)
}

/// Plain text (fallback bodies, notification text): no markup to escape, but pings are still defused.
pub fn plain(text: &str) -> String {
    defuse_mentions(text)
}

/// Cuts `text` to at most `max` characters, ending with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.chars().count() > max => format!("{}…", &text[..i]),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MASS: [&str; 6] = ["@here", "@channel", "@everyone", "@room", "@all", "@alice"];

    #[test]
    fn mass_mentions_are_defused() {
        for m in MASS {
            let out = defuse_mentions(&format!("disk full {m}!"));
            assert!(!out.contains(m), "{out}");
        }
        // Email addresses are left alone.
        assert_eq!(defuse_mentions("ops@example.org"), "ops@example.org");
    }

    #[test]
    fn slack_cannot_be_told_to_ping() {
        let out = escape_slack("<!channel> <@U123> <!here|here> *bold*");
        assert!(!out.contains("<!"));
        assert!(!out.contains("<@"));
        assert!(!out.contains("*bold*"));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo world", 5), "héll…");
    }

    proptest! {
        #[test]
        fn no_escaped_text_keeps_a_mass_mention(s in "[ -~]{0,40}", i in 0usize..6) {
            let text = format!("{s} {}{s}", MASS[i]);
            for out in [escape_html(&text), escape_slack(&text), escape_markdown(&text), plain(&text)] {
                for m in MASS {
                    prop_assert!(!out.contains(m), "{out:?} contains {m}");
                }
            }
            for out in [escape_html(&text), escape_slack(&text)] {
                prop_assert!(!out.contains("<!") && !out.contains("<@"));
            }
        }
    }
}
