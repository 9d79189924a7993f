//! Alertmanager-style label matchers: `alertname="Watchdog"`, `env=~"dev|test"`, `team!=""`.

use std::fmt;

use crate::regex::Regex;
use crate::Event;

/// How a [`Matcher`] compares a label with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatcherOp {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    NotEq,
    /// `=~`: the regex matches the whole value.
    Re,
    /// `!~`: the regex does not match the whole value.
    NotRe,
}

impl MatcherOp {
    fn as_str(self) -> &'static str {
        match self {
            MatcherOp::Eq => "=",
            MatcherOp::NotEq => "!=",
            MatcherOp::Re => "=~",
            MatcherOp::NotRe => "!~",
        }
    }
}

/// One matcher on one label. As in Alertmanager, a missing label counts as `""`, so
/// `team=""` means "no team label" and `team!=""` means "has a team label".
///
/// Syntax: `name OP value` with OP one of `=`, `!=`, `=~`, `!~`, spaces allowed around OP.
/// The name is letters, digits, `_`, `.`, `:` or `-`. The value is normally double-quoted, with
/// `\"` for a quote and `\\` for a backslash (any other `\x` is kept as is, so `"db-\d+"` and
/// `"db-\\d+"` are the same regex); an unquoted value runs to the end. Regexes are fully
/// anchored and use tocsin's own dialect (the same as routes and silences), see [`crate::regex`].
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatcherOp,
    /// The value or regex source, unquoted.
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Parses one matcher, e.g. `env=~"dev|test"`.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let bad = |why: &str| format!("matcher {:?}: {why}", text.trim());
        let s = text.trim();
        let name_len = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
            .unwrap_or(s.len());
        let name = &s[..name_len];
        if name.is_empty() {
            return Err(bad("missing label name"));
        }
        let rest = s[name_len..].trim_start();
        let (op, rest) = [
            ("=~", MatcherOp::Re),
            ("!~", MatcherOp::NotRe),
            ("!=", MatcherOp::NotEq),
            ("=", MatcherOp::Eq),
        ]
        .into_iter()
        .find_map(|(tok, op)| rest.strip_prefix(tok).map(|r| (op, r.trim())))
        .ok_or_else(|| bad("expected =, !=, =~ or !~ after the label name"))?;
        let value = match rest.strip_prefix('"') {
            Some(quoted) => unquote(quoted)
                .ok_or_else(|| bad("unterminated or trailing text after quoted value"))?,
            None if rest.contains('"') => return Err(bad("stray `\"` in unquoted value")),
            None => rest.to_string(),
        };
        let regex = match op {
            MatcherOp::Re | MatcherOp::NotRe => Some(Regex::new(&value).map_err(|e| bad(&e))?),
            _ => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
            regex,
        })
    }

    /// Whether a label value (`None` = missing, treated as `""`) satisfies this matcher.
    pub fn matches_value(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match (&self.op, &self.regex) {
            (MatcherOp::Eq, _) => v == self.value,
            (MatcherOp::NotEq, _) => v != self.value,
            (MatcherOp::Re, Some(re)) => re.is_match(v),
            (MatcherOp::NotRe, Some(re)) => !re.is_match(v),
            (_, None) => unreachable!("regex ops always carry a compiled regex"),
        }
    }

    /// Whether the event's labels satisfy this matcher.
    pub fn matches(&self, ev: &Event) -> bool {
        self.matches_value(ev.label(&self.name))
    }
}

/// Reads the rest of a quoted value (after the opening `"`); `None` if the closing quote is
/// missing or followed by anything but spaces.
fn unquote(s: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            c => out.push(c),
        }
    }
    None
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), quoted)
    }
}

/// A list of matchers that must all match (an Alertmanager selector), written comma-separated,
/// optionally in braces: `{env=~"dev|test", severity="info"}`. An empty list matches everything.
#[derive(Clone, Debug, Default)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Parses a comma-separated list; commas inside quoted values do not split.
    pub fn parse(text: &str) -> Result<Matchers, String> {
        let mut s = text.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner;
        }
        let matchers = split_unquoted(s, ',')
            .into_iter()
            .filter(|p| !p.trim().is_empty()) // allows a trailing comma
            .map(Matcher::parse)
            .collect::<Result<_, _>>()?;
        Ok(Matchers(matchers))
    }

    /// Parses several lists separated by `;`, e.g. a config value such as
    /// `alertname="Watchdog"; env=~"dev|test",severity="info"`. Empty sets are skipped.
    pub fn parse_sets(text: &str) -> Result<Vec<Matchers>, String> {
        split_unquoted(text, ';')
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(Matchers::parse)
            .collect()
    }

    /// Whether every matcher matches the event.
    pub fn matches(&self, ev: &Event) -> bool {
        self.0.iter().all(|m| m.matches(ev))
    }
}

/// Splits `s` at `sep` where it is outside double quotes (honouring `\"` inside them).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev() -> Event {
        Event::default()
            .with_label("alertname", "Watchdog")
            .with_label("env", "dev")
    }

    // Regex ops (`=~`, `!~`) need tocsin's `regex-match`, so they are tested through the host:
    // tocsin's tests/plugin_regex.rs runs plugins/testdata/regex-table.json through a plugin.
    #[test]
    fn single_matchers() {
        let e = ev();
        assert!(Matcher::parse(r#"alertname="Watchdog""#)
            .unwrap()
            .matches(&e));
        assert!(Matcher::parse(r#"env!="prod""#).unwrap().matches(&e));
        assert!(Matcher::parse(r#"team="""#).unwrap().matches(&e)); // missing = ""
        assert!(!Matcher::parse(r#"team!="""#).unwrap().matches(&e));
        assert!(Matcher::parse("env=dev").unwrap().matches(&e));
        assert!(!Matcher::parse(r#"env="de""#).unwrap().matches(&e));
    }

    #[test]
    fn quoting() {
        let m = Matcher::parse(r#"msg="say \"hi\", \\o/""#).unwrap();
        assert_eq!(m.value, r#"say "hi", \o/"#);
        assert_eq!(m.to_string(), r#"msg="say \"hi\", \\o/""#);
        assert_eq!(Matcher::parse(r#"x="a\.b""#).unwrap().value, r"a\.b");
    }

    #[test]
    fn lists() {
        let e = ev();
        let ms = Matchers::parse(r#"{env="dev", alertname="Watchdog",}"#).unwrap();
        assert_eq!(ms.0.len(), 2);
        assert!(ms.matches(&e));
        assert_eq!(ms.to_string(), r#"env="dev",alertname="Watchdog""#);
        assert!(!Matchers::parse(r#"env="dev",x="a,b""#).unwrap().matches(&e));
        assert!(Matchers::parse("").unwrap().matches(&e));
        let sets = Matchers::parse_sets(r#"alertname="Watchdog"; env="a;b",x="1";"#).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[1].0[0].value, "a;b");
    }

    #[test]
    fn errors() {
        for bad in [
            r#"="x""#,
            r#"env"#,
            r#"env=="x""#,
            r#"env="x"#,
            r#"env="x" y"#,
            r#"env=a"b"#,
        ] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }
}
