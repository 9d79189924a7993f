//! Chat commands (`ack T-42`, `note T-42 text`, `silence alertname=X 2h why`, `status`, `help`): what a
//! line typed in chat asks for, or a friendly message saying how to type it. Pure.
//!
//! The platform modules strip their own prefix (`/tocsin`, `@tocsin`, `tocsin:`) before the text gets
//! here; this module reads the verb (in any case) and its arguments.

use std::time::Duration;

use super::silence::{self, Matcher};

/// What a chat line asks tocsin to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ack {
        ticket: i64,
    },
    Resolve {
        ticket: i64,
    },
    Note {
        ticket: i64,
        text: String,
    },
    /// `assign T-42 @bob`, `assign T-42 me`.
    Assign {
        ticket: i64,
        to: Assignee,
    },
    Unassign {
        ticket: i64,
    },
    /// `silence alertname=DiskFull instance=~"db.*" 2h disk swap`.
    Silence {
        matchers: Vec<Matcher>,
        duration: Duration,
        comment: String,
    },
    /// Open and acknowledged tickets of the room.
    Status,
    Help,
}

/// Whom `assign` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    /// The member typing the command.
    Me,
    /// A member name or a chat handle (a leading `@` is dropped; Slack's `<@U123|bob>` gives `U123`).
    Named(String),
}

/// Why a line is not a command, as a message to show in chat (with the usage).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("Type a command, for example `ack T-42`. Type `help` for the list.")]
    Empty,
    #[error("I do not know the command `{0}`. Type `help` for the list.")]
    Unknown(String),
    #[error("{problem} Usage: `{usage}`")]
    Usage {
        problem: String,
        usage: &'static str,
    },
}

/// The verbs and how to type them, as `help` shows them.
pub const COMMANDS: [(&str, &str); 8] = [
    ("ack T-42", "acknowledge a ticket"),
    ("resolve T-42", "resolve a ticket"),
    ("note T-42 text", "add a note to a ticket's timeline"),
    (
        "assign T-42 @member",
        "hand a ticket to a member (`assign T-42 me` takes it)",
    ),
    ("unassign T-42", "take a ticket away from whoever has it"),
    (
        "silence name=value [name=~regex ...] 2h [comment]",
        "keep matching alerts out of chat for a while (30m, 2h, 1d)",
    ),
    (
        "status",
        "list the open and acknowledged tickets of this room",
    ),
    ("help", "this list"),
];

/// The text `help` answers with.
pub fn help() -> String {
    let mut out = String::from("tocsin commands:");
    for (usage, what) in COMMANDS {
        out.push_str(&format!("\n`{usage}`: {what}"));
    }
    out.push_str("\nTickets can be written T-42, 42 or #42.");
    out
}

fn usage_of(verb: &str) -> &'static str {
    COMMANDS
        .iter()
        .find(|(usage, _)| usage.split(' ').next() == Some(verb))
        .map_or("help", |(usage, _)| usage)
}

fn usage(verb: &str, problem: impl Into<String>) -> CommandError {
    CommandError::Usage {
        problem: problem.into(),
        usage: usage_of(verb),
    }
}

/// Reads one chat line.
pub fn parse(text: &str) -> Result<Command, CommandError> {
    let text = text.trim();
    let (verb, rest) = split_word(text);
    if verb.is_empty() {
        return Err(CommandError::Empty);
    }
    let verb = verb.to_lowercase();
    match verb.as_str() {
        "help" | "?" => Ok(Command::Help),
        "status" | "list" => Ok(Command::Status),
        "ack" | "acknowledge" => Ok(Command::Ack {
            ticket: only_ticket("ack", rest)?,
        }),
        "resolve" => Ok(Command::Resolve {
            ticket: only_ticket("resolve", rest)?,
        }),
        "unassign" => Ok(Command::Unassign {
            ticket: only_ticket("unassign", rest)?,
        }),
        "note" => {
            let (ticket, text) = leading_ticket("note", rest)?;
            if text.is_empty() {
                return Err(usage("note", "The note has no text."));
            }
            Ok(Command::Note {
                ticket,
                text: text.to_string(),
            })
        }
        "assign" => {
            let (ticket, rest) = leading_ticket("assign", rest)?;
            let (who, extra) = split_word(rest);
            if who.is_empty() {
                return Err(usage("assign", "Say whom to assign it to."));
            }
            if !extra.is_empty() {
                return Err(usage("assign", "Name one member."));
            }
            Ok(Command::Assign {
                ticket,
                to: assignee(who).ok_or_else(|| {
                    usage("assign", format!("`{who}` is not a member name or handle."))
                })?,
            })
        }
        "silence" => silence(rest),
        _ => Err(CommandError::Unknown(shorten(&verb))),
    }
}

/// Keeps an echoed unknown verb short (whatever was typed is shown back).
fn shorten(word: &str) -> String {
    let mut out: String = word.chars().take(40).collect();
    if word.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// The first whitespace-separated word and the rest (trimmed).
fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    }
}

/// `T-42`, `t-42`, `42`, `#42`, `T42` → 42.
pub fn ticket_number(word: &str) -> Option<i64> {
    let digits = word
        .strip_prefix('#')
        .or_else(|| word.strip_prefix("T-"))
        .or_else(|| word.strip_prefix("t-"))
        .or_else(|| word.strip_prefix('T'))
        .or_else(|| word.strip_prefix('t'))
        .unwrap_or(word);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok().filter(|n| *n > 0)
}

fn leading_ticket<'a>(verb: &str, rest: &'a str) -> Result<(i64, &'a str), CommandError> {
    let (word, rest) = split_word(rest);
    if word.is_empty() {
        return Err(usage(verb, "Say which ticket."));
    }
    let n = ticket_number(word).ok_or_else(|| {
        usage(
            verb,
            format!("`{}` is not a ticket like T-42.", shorten(word)),
        )
    })?;
    Ok((n, rest))
}

fn only_ticket(verb: &str, rest: &str) -> Result<i64, CommandError> {
    let (n, extra) = leading_ticket(verb, rest)?;
    if !extra.is_empty() {
        return Err(usage(verb, "One ticket at a time, with nothing after it."));
    }
    Ok(n)
}

fn assignee(word: &str) -> Option<Assignee> {
    if word.eq_ignore_ascii_case("me") || word.eq_ignore_ascii_case("@me") {
        return Some(Assignee::Me);
    }
    // Slack escapes user mentions in slash commands as `<@U123|name>` (or `<@U123>`).
    let name = match word.strip_prefix("<@").and_then(|w| w.strip_suffix('>')) {
        Some(inner) => inner.split('|').next().unwrap_or(inner),
        None => word.strip_prefix('@').unwrap_or(word),
    };
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'));
    ok.then(|| Assignee::Named(name.to_string()))
}

fn silence(rest: &str) -> Result<Command, CommandError> {
    let mut matchers = Vec::new();
    let mut remaining = rest;
    loop {
        let (word, after) = split_token(remaining);
        if word.is_empty() {
            return Err(usage(
                "silence",
                if matchers.is_empty() {
                    "Give at least one matcher and a duration."
                } else {
                    "Say how long, like 30m, 2h or 1d."
                },
            ));
        }
        // Label names never start with a digit, so a word that does is the duration.
        if word.starts_with(|c: char| c.is_ascii_digit()) {
            if matchers.is_empty() {
                return Err(usage(
                    "silence",
                    "Give at least one matcher (like alertname=DiskFull) before the duration.",
                ));
            }
            let duration =
                silence::parse_duration(word).map_err(|e| usage("silence", sentence(&e)))?;
            return Ok(Command::Silence {
                matchers,
                duration,
                comment: after.to_string(),
            });
        }
        let m = Matcher::parse(word).map_err(|e| usage("silence", sentence(&e)))?;
        matchers.push(m);
        remaining = after;
    }
}

/// An error message as a sentence: capitalised, ending with a full stop.
fn sentence(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return text,
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// The first token (whitespace outside double quotes ends it) and the rest (trimmed).
fn split_token(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], text[i..].trim()),
            _ => {}
        }
    }
    (text, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::silence::MatchOp;
    use proptest::prelude::*;

    #[test]
    fn ticket_refs_in_every_spelling() {
        for text in [
            "ack T-42",
            "ack t-42",
            "ack 42",
            "ack #42",
            "  ACK   T-42  ",
            "Ack T42",
        ] {
            assert_eq!(parse(text), Ok(Command::Ack { ticket: 42 }), "{text}");
        }
        assert_eq!(parse("resolve 7"), Ok(Command::Resolve { ticket: 7 }));
        assert_eq!(parse("unassign #3"), Ok(Command::Unassign { ticket: 3 }));
        for bad in [
            "ack T-0",
            "ack T-x",
            "ack -1",
            "ack T-",
            "ack #",
            "ack 99999999999999999999",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.to_string().contains("Usage: `ack T-42`"), "{bad}: {e}");
        }
    }

    #[test]
    fn notes_keep_their_text() {
        assert_eq!(
            parse("note T-42 rebooting db1,  back in 5\nmore"),
            Ok(Command::Note {
                ticket: 42,
                text: "rebooting db1,  back in 5\nmore".into()
            })
        );
        let e = parse("note T-42   ").unwrap_err();
        assert_eq!(
            e.to_string(),
            "The note has no text. Usage: `note T-42 text`"
        );
    }

    #[test]
    fn assign_to_a_member_a_handle_or_me() {
        let named = |s: &str| Assignee::Named(s.into());
        let cases = [
            ("assign T-1 @bob", named("bob")),
            ("assign T-1 bob", named("bob")),
            ("assign T-1 me", Assignee::Me),
            ("assign T-1 ME", Assignee::Me),
            ("assign T-1 <@U024BE7LH|bob>", named("U024BE7LH")),
            ("assign T-1 <@U024BE7LH>", named("U024BE7LH")),
            ("assign T-1 @bob:example.org", named("bob:example.org")),
        ];
        for (text, to) in cases {
            assert_eq!(parse(text), Ok(Command::Assign { ticket: 1, to }), "{text}");
        }
        assert!(parse("assign T-1").is_err());
        assert!(parse("assign T-1 bob carol").is_err());
        assert!(parse("assign T-1 <!channel>").is_err());
    }

    #[test]
    fn silences_read_matchers_duration_and_comment() {
        let got = parse(
            r#"silence alertname=DiskFull instance=~"db[0-9]+" env!=dev 2h disk swap tonight"#,
        )
        .unwrap();
        assert_eq!(
            got,
            Command::Silence {
                matchers: vec![
                    Matcher {
                        name: "alertname".into(),
                        op: MatchOp::Equal,
                        value: "DiskFull".into()
                    },
                    Matcher {
                        name: "instance".into(),
                        op: MatchOp::Regex,
                        value: "db[0-9]+".into()
                    },
                    Matcher {
                        name: "env".into(),
                        op: MatchOp::NotEqual,
                        value: "dev".into()
                    },
                ],
                duration: Duration::from_secs(7200),
                comment: "disk swap tonight".into(),
            }
        );
        let Command::Silence {
            matchers, comment, ..
        } = parse(r#"silence job="node exporter" 30m"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(matchers[0].value, "node exporter");
        assert_eq!(comment, "");
        for (bad, says) in [
            ("silence", "at least one matcher"),
            ("silence 2h", "before the duration"),
            ("silence alertname=X", "how long"),
            ("silence alertname 2h", "needs an operator"),
            ("silence =x 2h", "label name"),
            ("silence a=~( 2h", "regex"),
            ("silence a=\"x 2h", "closing quote"),
            ("silence a=x 0m", "zero"),
            ("silence a=x 2y", "unit"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("Usage: `silence "), "{bad}: {e}");
        }
        let Command::Silence { duration, .. } = parse("silence a=x 1h30m").unwrap() else {
            panic!()
        };
        assert_eq!(duration, Duration::from_secs(5400));
    }

    #[test]
    fn unknown_and_empty_lines_say_what_to_do() {
        assert_eq!(parse("   "), Err(CommandError::Empty));
        assert_eq!(parse("HELP"), Ok(Command::Help));
        assert_eq!(parse(" status "), Ok(Command::Status));
        let e = parse("reboot db1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "I do not know the command `reboot`. Type `help` for the list."
        );
        assert!(help().contains("`ack T-42`"));
        assert!(help().contains("`silence "));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn parse_never_panics_on_command_like_text(
            verb in prop::sample::select(vec!["ack", "note", "assign", "silence", "resolve", "unassign", "status"]),
            rest in "[ -~\\t\\n\"é]{0,60}",
        ) {
            let _ = parse(&format!("{verb} {rest}"));
        }

        #[test]
        fn any_positive_ticket_number_round_trips(n in 1i64..i64::MAX, style in 0usize..4) {
            let word = match style {
                0 => format!("T-{n}"),
                1 => format!("t-{n}"),
                2 => format!("#{n}"),
                _ => n.to_string(),
            };
            prop_assert_eq!(parse(&format!("ack {word}")), Ok(Command::Ack { ticket: n }));
        }
    }
}
