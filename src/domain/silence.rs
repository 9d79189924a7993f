//! Silences: label matchers with a time window that keep matching tickets out of chat and email while
//! their changes are still recorded. Pure.
//!
//! Matchers read like Alertmanager's (`name=value`, `name!=value`, `name=~regex`, `name!~regex`, regexes
//! anchored at both ends, a missing label reads as the empty string). `severity` and `source` also match
//! the ticket's own severity and source, as routes do. What a silence does to a ticket change's planned
//! deliveries is [`keep_deliveries`]: while silenced nothing goes out, except that a resolution still
//! reaches the rooms that were told about the firing (Alertmanager's issue #226 is that it never does).

use std::collections::BTreeSet;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::alert::{Alert, Labels, Severity};
use super::routing::DeliveryDraft;
use super::ticket::Ticket;
use super::time::Timestamp;
use super::timeline::EntryKind;

/// The longest a silence may last.
pub const MAX_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);
/// At most this many matchers per silence.
pub const MAX_MATCHERS: usize = 32;
/// Longest matcher, as written (`name=~value`), in bytes.
pub const MAX_MATCHER_LEN: usize = 1024;
/// Longest comment, in bytes.
pub const MAX_COMMENT_LEN: usize = 2000;
/// At most this many silences in force or upcoming at once: each is checked on every ticket change.
pub const MAX_SILENCES: usize = 1000;

/// Why a silence (or a part of one) is not acceptable. [`SilenceError::code`] names the problem for the
/// API's error body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("a silence needs at least one matcher, like alertname=DiskFull")]
    NoMatchers,
    #[error("a silence takes at most {MAX_MATCHERS} matchers")]
    TooManyMatchers,
    #[error("matcher `{matcher}`: {reason}")]
    InvalidMatcher { matcher: String, reason: String },
    #[error("at least one matcher must not match an empty or missing label (`{0}` would silence nearly everything)")]
    MatchesEverything(String),
    #[error("duration: {0}")]
    InvalidDuration(String),
    #[error("{0}")]
    InvalidTime(String),
    #[error("a comment saying why is required")]
    MissingComment,
    #[error("the comment is longer than {MAX_COMMENT_LEN} bytes")]
    CommentTooLong,
    #[error("a silence needs an author")]
    MissingAuthor,
}

impl SilenceError {
    /// A short machine-readable name for the problem.
    pub fn code(&self) -> &'static str {
        match self {
            SilenceError::NoMatchers => "no_matchers",
            SilenceError::TooManyMatchers => "too_many_matchers",
            SilenceError::InvalidMatcher { .. } => "invalid_matcher",
            SilenceError::MatchesEverything(_) => "matches_everything",
            SilenceError::InvalidDuration(_) => "invalid_duration",
            SilenceError::InvalidTime(_) => "invalid_time",
            SilenceError::MissingComment => "missing_comment",
            SilenceError::CommentTooLong => "comment_too_long",
            SilenceError::MissingAuthor => "missing_author",
        }
    }
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

/// `name=value`, `name!=value`, `name=~regex` or `name!~regex`, as in Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = self.value.replace('\\', "\\\\").replace('"', "\\\"");
        write!(f, "{}{}\"{}\"", self.name, self.op.as_str(), quoted)
    }
}

fn label_name_char(c: char, first: bool) -> bool {
    c == '_' || c.is_ascii_alphabetic() || (!first && c.is_ascii_digit())
}

/// The anchored regex for a `=~`/`!~` value, size-limited (see [`super::pattern`]).
fn anchored(value: &str) -> Result<Regex, regex::Error> {
    super::pattern::anchored(value)
}

impl Matcher {
    /// Parses `name=value`, `name!=value`, `name=~regex` or `name!~regex`. Spaces around the operator
    /// are allowed; the value may be double-quoted (with `\"`, `\\` and `\n` escapes). Regexes must
    /// compile.
    pub fn parse(text: &str) -> Result<Matcher, SilenceError> {
        let bad = |reason: &str| SilenceError::InvalidMatcher {
            matcher: text.chars().take(80).collect(),
            reason: reason.to_string(),
        };
        if text.len() > MAX_MATCHER_LEN {
            return Err(bad(&format!("longer than {MAX_MATCHER_LEN} bytes")));
        }
        let t = text.trim();
        let name_len = t
            .char_indices()
            .find(|&(i, c)| !label_name_char(c, i == 0))
            .map_or(t.len(), |(i, _)| i);
        let name = &t[..name_len];
        if name.is_empty() {
            return Err(bad(
                "must start with a label name (letters, digits and _), like alertname=DiskFull",
            ));
        }
        let rest = t[name_len..].trim_start();
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(bad("needs an operator: =, !=, =~ or !~"));
        };
        let value = unquote(value.trim()).map_err(|r| bad(&r))?;
        if matches!(op, MatchOp::Regex | MatchOp::NotRegex) {
            anchored(&value).map_err(|e| bad(&format!("is not a valid regex: {e}")))?;
        }
        Ok(Matcher {
            name: name.to_string(),
            op,
            value,
        })
    }

    /// Whether the matcher holds for a label that has these values (a missing label has none and reads
    /// as the empty string). Positive operators need one value to match; negative ones need none to.
    pub fn matches_values(&self, values: &[&str]) -> bool {
        let empty = [""];
        let values = if values.is_empty() {
            &empty[..]
        } else {
            values
        };
        match self.op {
            MatchOp::Equal => values.contains(&self.value.as_str()),
            MatchOp::NotEqual => !values.contains(&self.value.as_str()),
            MatchOp::Regex | MatchOp::NotRegex => {
                // Compiled once per pattern, not on every check.
                let hit = match super::pattern::cached(&self.value) {
                    Some(re) => values.iter().any(|v| re.is_match(v)),
                    // Never stored (parse checks), but a matcher that cannot be read matches nothing.
                    None => return false,
                };
                (self.op == MatchOp::Regex) == hit
            }
        }
    }

    /// Whether the matcher holds for a ticket: its labels, plus its own severity for `severity` and its
    /// source for `source`.
    pub fn matches(&self, ticket: &Ticket) -> bool {
        self.matches_parts(&ticket.labels, ticket.severity, &ticket.source)
    }

    /// [`Matcher::matches`] on the parts a ticket takes from its alert.
    pub fn matches_parts(&self, labels: &Labels, severity: Severity, source: &str) -> bool {
        let mut values: Vec<&str> = labels
            .get(&self.name)
            .map(String::as_str)
            .into_iter()
            .collect();
        match self.name.as_str() {
            "severity" => values.push(severity.as_str()),
            "source" => values.push(source),
            _ => {}
        }
        self.matches_values(&values)
    }

    /// Whether the matcher holds for an empty or missing label.
    pub fn matches_empty(&self) -> bool {
        self.matches_values(&[])
    }

    /// Whether the matcher lets (nearly) every ticket through. For most labels that is "matches a
    /// missing label"; `source` and `severity` are never missing (every ticket has both), so a matcher
    /// on them is broad when it matches every value they could take (`source=~".+"`, `severity!="x"`).
    pub fn is_broad(&self) -> bool {
        use super::alert::Severity;
        match self.name.as_str() {
            "severity" => [
                Severity::None,
                Severity::Info,
                Severity::Warning,
                Severity::Error,
                Severity::Critical,
            ]
            .iter()
            .all(|s| self.matches_values(&[s.as_str()])),
            // Source names are not known here: probe with a few unlike ones.
            "source" => ["tocsin", "prometheus", "a", "z-9_source"]
                .iter()
                .all(|v| self.matches_values(&[v])),
            _ => self.matches_empty(),
        }
    }
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        if v.contains('"') {
            return Err("a value with a quote in it must be written in double quotes".into());
        }
        return Ok(v.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    loop {
        match chars.next() {
            None => return Err("the closing quote is missing".into()),
            Some('"') => break,
            Some('\\') => match chars.next() {
                Some('n') => out.push('\n'),
                Some(c @ ('"' | '\\')) => out.push(c),
                Some(c) => {
                    // Regex escapes like `\d` pass through as written.
                    out.push('\\');
                    out.push(c);
                }
                None => return Err("the closing quote is missing".into()),
            },
            Some(c) => out.push(c),
        }
    }
    if !chars.as_str().trim().is_empty() {
        return Err("nothing may follow the closing quote".into());
    }
    Ok(out)
}

/// A silence as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    /// The member who made it.
    pub author: String,
    pub created_at: Timestamp,
    /// Set when a member ended it early.
    pub expired_by: Option<String>,
}

/// Where a silence is in its life at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    Active,
    Expired,
}

impl Silence {
    /// In force at `now`: started, not yet ended (the end is exclusive).
    pub fn active(&self, now: Timestamp) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    pub fn state(&self, now: Timestamp) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Every matcher holds for the ticket (a silence without matchers matches nothing).
    pub fn matches(&self, ticket: &Ticket) -> bool {
        !self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(ticket))
    }

    /// Whether the silence could apply to the ticket changes `alert` makes: in force at its time and
    /// matching what its ticket takes from it (labels, severity, source). The processor asks this off
    /// the store's writer, so the writer only re-checks the few that matched.
    pub fn may_silence(&self, alert: &Alert) -> bool {
        self.active(alert.received_at)
            && !self.matchers.is_empty()
            && self
                .matchers
                .iter()
                .all(|m| m.matches_parts(&alert.labels, alert.severity, &alert.source))
    }
}

/// The silence that applies to a ticket at `now`, if any: of those in force that match, the one that
/// lasts longest (then the oldest), so the timeline names the one that will keep it quiet.
pub fn silencing<'a>(
    silences: &'a [Silence],
    ticket: &Ticket,
    now: Timestamp,
) -> Option<&'a Silence> {
    silences
        .iter()
        .filter(|s| s.active(now) && s.matches(ticket))
        .max_by(|a, b| a.ends_at.cmp(&b.ends_at).then(b.id.cmp(&a.id)))
}

/// A silence before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceDraft {
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    pub author: String,
}

impl SilenceDraft {
    /// Checks a silence before it is stored: matchers (at least one, one of which does not match an
    /// empty label, so `job=~".*"` alone cannot silence everything), a window that ends after `now`,
    /// after its start and at most [`MAX_DURATION`] after it, a comment and an author.
    pub fn validate(&self, now: Timestamp) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(SilenceError::TooManyMatchers);
        }
        for m in &self.matchers {
            let bad = |reason: String| SilenceError::InvalidMatcher {
                matcher: m.to_string(),
                reason,
            };
            if m.name.is_empty()
                || !m
                    .name
                    .char_indices()
                    .all(|(i, c)| label_name_char(c, i == 0))
            {
                return Err(bad(
                    "the label name may use only letters, digits and _".into()
                ));
            }
            if m.name.len() + m.value.len() + 2 > MAX_MATCHER_LEN {
                return Err(bad(format!("longer than {MAX_MATCHER_LEN} bytes")));
            }
            if matches!(m.op, MatchOp::Regex | MatchOp::NotRegex) {
                anchored(&m.value).map_err(|e| bad(format!("is not a valid regex: {e}")))?;
            }
        }
        if self.matchers.iter().all(Matcher::is_broad) {
            let all: Vec<String> = self.matchers.iter().map(Matcher::to_string).collect();
            return Err(SilenceError::MatchesEverything(all.join(", ")));
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::InvalidDuration(
                "the silence must end after it starts".into(),
            ));
        }
        if self.ends_at.since(self.starts_at) > MAX_DURATION {
            return Err(SilenceError::InvalidDuration(
                "a silence may last at most 90 days".into(),
            ));
        }
        if self.ends_at <= now {
            return Err(SilenceError::InvalidTime(
                "ends_at is in the past: the silence would never be in force".into(),
            ));
        }
        if self.comment.trim().is_empty() {
            return Err(SilenceError::MissingComment);
        }
        if self.comment.len() > MAX_COMMENT_LEN {
            return Err(SilenceError::CommentTooLong);
        }
        if self.author.trim().is_empty() {
            return Err(SilenceError::MissingAuthor);
        }
        Ok(())
    }
}

/// Parses a duration like `30m`, `2h`, `1d`, `1w` or `1h30m` (units `s`, `m`, `h`, `d`, `w`). Zero,
/// negative and unit-less durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, SilenceError> {
    let bad = |why: &str| SilenceError::InvalidDuration(format!("`{text}` {why}"));
    let t = text.trim();
    if t.starts_with('-') {
        return Err(bad("is negative; a silence must last more than zero"));
    }
    if t.is_empty() {
        return Err(bad("is empty; write a duration like 30m, 2h or 1d"));
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("is not a duration like 30m, 2h or 1d"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad("is too large"))?;
        rest = rest[digits..].trim_start();
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "" => return Err(bad("needs a unit: s, m, h, d or w")),
            _ => return Err(bad("has an unknown unit; use s, m, h, d or w")),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("is too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    if total == 0 {
        return Err(bad("is zero; a silence must last more than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// Whether a silence applies to a ticket change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silencing {
    /// No silence: everything routing planned goes out.
    Off,
    /// A silence in force matches the ticket.
    Active,
    /// No silence is in force, but the ticket's latest firing was silenced: rooms that never heard of
    /// this firing are not told about its acks, notes or resolution either (only a new firing, or a
    /// refire, speaks up again).
    Ended,
}

/// Which of an entry's planned deliveries go out. Unsilenced, all of them. While a silence is in force,
/// none, except that a resolution goes to the rooms in `fired` (where the ticket's firing was delivered
/// or is queued), so a room that saw a ticket fire also sees it end, and a room that never saw it hears
/// nothing. After the silence ended, follow-ups of a silenced firing go only to the rooms in `fired`.
pub fn keep_deliveries(
    planned: Vec<DeliveryDraft>,
    kind: EntryKind,
    silencing: Silencing,
    fired: &BTreeSet<String>,
) -> Vec<DeliveryDraft> {
    let to_fired = |planned: Vec<DeliveryDraft>| {
        planned
            .into_iter()
            .filter(|d| fired.contains(&d.room))
            .collect()
    };
    match (silencing, kind) {
        (Silencing::Off, _) => planned,
        (Silencing::Active, EntryKind::Resolved) => to_fired(planned),
        (Silencing::Active, _) => Vec::new(),
        // A firing is news of its own: the store never asks with `Ended` for one, but if it did, the
        // firing would go out as planned.
        (Silencing::Ended, k) if is_firing(k) => planned,
        (Silencing::Ended, _) => to_fired(planned),
    }
}

/// Whether an entry may schedule emails: never while a silence is in force.
pub fn may_email(silencing: Silencing) -> bool {
    silencing != Silencing::Active
}

/// Entries that report a ticket firing (opening, refiring, reopening): a silenced one gets a
/// `silenced` entry on the timeline.
pub fn is_firing(kind: EntryKind) -> bool {
    matches!(
        kind,
        EntryKind::Opened | EntryKind::Refired | EntryKind::Reopened
    )
}

/// The timeline text for a silenced firing.
pub fn silenced_text(s: &Silence) -> String {
    format!(
        "Silenced by {} until {}: \"{}\" (silence {}); nothing sent to chat or email.",
        s.author,
        s.ends_at.to_rfc3339(),
        s.comment,
        s.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
    use crate::domain::message::{Change, Content, TicketMessage};
    use crate::domain::routing::DeliveryKind;
    use crate::domain::ticket::TicketState;
    use proptest::prelude::*;

    fn ticket(labels: &[(&str, &str)], severity: Severity) -> Ticket {
        let alert = Alert {
            source: "hooks".into(),
            fingerprint: "f".into(),
            status: Status::Firing,
            title: "Disk full".into(),
            severity,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Labels>(),
            annotations: Labels::new(),
            description: None,
            url: None,
            starts_at: None,
            ends_at: None,
            received_at: Timestamp::from_millis(1_000_000),
            routing: Routing::default(),
            raw: None,
        };
        crate::domain::ticket::open("t".into(), 1, &alert, None).0
    }

    fn m(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    #[test]
    fn parses_the_four_operators_and_quoted_values() {
        assert_eq!(
            m("alertname=DiskFull"),
            Matcher {
                name: "alertname".into(),
                op: MatchOp::Equal,
                value: "DiskFull".into()
            }
        );
        assert_eq!(m("env != prod").op, MatchOp::NotEqual);
        assert_eq!(m("instance=~db.*").op, MatchOp::Regex);
        assert_eq!(m("instance!~\"db[0-9]+\"").value, "db[0-9]+");
        assert_eq!(m(r#"msg="say \"hi\", ok""#).value, "say \"hi\", ok");
        assert_eq!(m("x=").value, "");
        for bad in [
            "",
            "=x",
            "alertname",
            "alert name=x",
            "a=~(",
            "a=\"open",
            "a=\"x\" y",
            "1a=b",
        ] {
            let e = Matcher::parse(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_matcher", "{bad}: {e}");
        }
    }

    #[test]
    fn matching_follows_alertmanager() {
        let t = ticket(
            &[("instance", "db1:9100"), ("env", "prod")],
            Severity::Critical,
        );
        assert!(m("instance=~db.*").matches(&t));
        // Anchored: a partial match is not a match.
        assert!(!m("instance=~db").matches(&t));
        assert!(m("instance!~web.*").matches(&t));
        assert!(m("env!=staging").matches(&t));
        assert!(!m("env!=prod").matches(&t));
        // A missing label reads as empty.
        assert!(m("team=").matches(&t));
        assert!(m("team!=infra").matches(&t));
        assert!(!m("team=infra").matches(&t));
        // severity and source are the ticket's own.
        assert!(m("severity=critical").matches(&t));
        assert!(m("source=hooks").matches(&t));
        assert!(!m("severity=~warn.*").matches(&t));
    }

    fn silence(matchers: &[&str], starts: i64, ends: i64) -> Silence {
        Silence {
            id: 1,
            matchers: matchers.iter().map(|s| m(s)).collect(),
            starts_at: Timestamp::from_millis(starts),
            ends_at: Timestamp::from_millis(ends),
            comment: "maintenance".into(),
            author: "alice".into(),
            created_at: Timestamp::from_millis(0),
            expired_by: None,
        }
    }

    proptest! {
        /// What the processor finds off the writer agrees with what the writer would decide on the
        /// ticket the alert makes: a silence that applies is never missed.
        #[test]
        fn may_silence_agrees_with_matching_the_ticket(
            env in prop_oneof![Just("prod"), Just("staging"), Just("")],
            host in "[a-z]{0,3}[0-9]?",
            sev in 0usize..5,
            at in 0i64..300,
            matcher_set in 0usize..4,
        ) {
            let severity = [Severity::None, Severity::Info, Severity::Warning, Severity::Error, Severity::Critical][sev];
            let mut labels = vec![("host", host.as_str())];
            if !env.is_empty() {
                labels.push(("env", env));
            }
            let mut t = ticket(&labels, severity);
            t.last_seen = Timestamp::from_millis(at);
            let matchers: &[&str] = [
                &["env=prod"][..],
                &["host=~[a-c].*", "severity=~critical|error"],
                &["source=hooks", "env!=staging"],
                &["host!~z.*"],
            ][matcher_set];
            let s = silence(matchers, 100, 200);
            let alert = Alert {
                source: t.source.clone(),
                fingerprint: "f".into(),
                status: Status::Firing,
                title: t.title.clone(),
                severity,
                labels: t.labels.clone(),
                annotations: Labels::new(),
                description: None,
                url: None,
                starts_at: None,
                ends_at: None,
                received_at: Timestamp::from_millis(at),
                routing: Routing::default(),
                raw: None,
            };
            let at = Timestamp::from_millis(at);
            prop_assert_eq!(s.may_silence(&alert), s.active(at) && s.matches(&t));
        }
    }

    #[test]
    fn a_silence_is_active_in_its_window_and_matches_with_all_matchers() {
        let s = silence(&["env=prod", "instance=~db.*"], 100, 200);
        assert!(!s.active(Timestamp::from_millis(99)));
        assert!(s.active(Timestamp::from_millis(100)));
        assert!(!s.active(Timestamp::from_millis(200)));
        assert_eq!(s.state(Timestamp::from_millis(50)), SilenceState::Pending);
        assert_eq!(s.state(Timestamp::from_millis(250)), SilenceState::Expired);
        assert!(s.matches(&ticket(
            &[("instance", "db1"), ("env", "prod")],
            Severity::Info
        )));
        assert!(!s.matches(&ticket(&[("instance", "db1")], Severity::Info)));
        let longer = Silence {
            id: 2,
            ends_at: Timestamp::from_millis(300),
            ..s.clone()
        };
        let all = [s, longer];
        let t = ticket(&[("instance", "db1"), ("env", "prod")], Severity::Info);
        assert_eq!(
            silencing(&all, &t, Timestamp::from_millis(150)).map(|s| s.id),
            Some(2)
        );
        assert_eq!(
            silencing(&all, &t, Timestamp::from_millis(250)).map(|s| s.id),
            Some(2)
        );
        assert!(silencing(&all, &t, Timestamp::from_millis(300)).is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        for bad in [
            "",
            "0m",
            "-1h",
            "5",
            "h",
            "2x",
            "soon",
            "99999999999999999999d",
        ] {
            assert_eq!(
                parse_duration(bad).unwrap_err().code(),
                "invalid_duration",
                "{bad}"
            );
        }
    }

    fn draft(matchers: &[&str], hours: u64, comment: &str) -> SilenceDraft {
        let start = Timestamp::from_millis(1_000_000);
        SilenceDraft {
            matchers: matchers.iter().map(|s| m(s)).collect(),
            starts_at: start,
            ends_at: start.plus(Duration::from_secs(hours * 3600)),
            comment: comment.into(),
            author: "alice".into(),
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let now = Timestamp::from_millis(1_000_000);
        assert!(draft(&["alertname=DiskFull"], 2, "swap")
            .validate(now)
            .is_ok());
        let code = |d: SilenceDraft| d.validate(now).unwrap_err().code();
        assert_eq!(code(draft(&[], 2, "swap")), "no_matchers");
        assert_eq!(code(draft(&["job=~.*"], 2, "swap")), "matches_everything");
        assert_eq!(
            code(draft(&["job!=x", "a="], 2, "swap")),
            "matches_everything"
        );
        assert!(draft(&["job=~.*", "a=b"], 2, "swap").validate(now).is_ok());
        // Every ticket has a source and a severity: matchers that take any of them are broad too.
        for broad in [
            &["source=~.+"][..],
            &["source!=nothing"],
            &["severity=~.+", "source=~[a-z].*"],
            &["severity!=unknown"],
        ] {
            assert_eq!(
                code(draft(broad, 2, "swap")),
                "matches_everything",
                "{broad:?}"
            );
        }
        assert!(draft(&["source=prom"], 2, "swap").validate(now).is_ok());
        assert!(draft(&["severity=~critical|error"], 2, "swap")
            .validate(now)
            .is_ok());
        assert_eq!(code(draft(&["a=b"], 0, "swap")), "invalid_duration");
        assert_eq!(code(draft(&["a=b"], 91 * 24, "swap")), "invalid_duration");
        assert_eq!(code(draft(&["a=b"], 2, "  ")), "missing_comment");
        assert_eq!(
            code(draft(&["a=b"], 2, &"x".repeat(MAX_COMMENT_LEN + 1))),
            "comment_too_long"
        );
        let later = now.plus(Duration::from_secs(3 * 3600));
        assert_eq!(
            draft(&["a=b"], 2, "swap")
                .validate(later)
                .unwrap_err()
                .code(),
            "invalid_time"
        );
    }

    const ROOMS: [&str; 4] = ["ops", "db", "audit", "web"];
    const KINDS: [EntryKind; 7] = [
        EntryKind::Opened,
        EntryKind::Refired,
        EntryKind::Reopened,
        EntryKind::Acked,
        EntryKind::Resolved,
        EntryKind::Note,
        EntryKind::Assigned,
    ];

    fn drafts(rooms: &[usize]) -> Vec<DeliveryDraft> {
        let t = ticket(&[], Severity::Warning);
        rooms
            .iter()
            .map(|&r| DeliveryDraft {
                room: ROOMS[r].to_string(),
                kind: DeliveryKind::Reply,
                content: Content::Ticket(TicketMessage {
                    ticket_id: t.id.clone(),
                    number: 1,
                    title: t.title.clone(),
                    state: TicketState::Open,
                    severity: t.severity,
                    source: t.source.clone(),
                    labels: Labels::new(),
                    summary: None,
                    link: String::new(),
                    change: Change::Refired,
                    mentions: Vec::new(),
                    at: Timestamp::from_millis(0),
                }),
                hold_until: None,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn a_silenced_change_reaches_only_rooms_that_saw_the_firing(
            planned in proptest::collection::vec(0usize..4, 0..8),
            fired in proptest::collection::btree_set(0usize..4, 0..4),
            kind in 0usize..KINDS.len(),
        ) {
            let fired: BTreeSet<String> = fired.into_iter().map(|r| ROOMS[r].to_string()).collect();
            let kind = KINDS[kind];
            let kept = keep_deliveries(drafts(&planned), kind, Silencing::Active, &fired);
            for d in &kept {
                prop_assert!(fired.contains(&d.room), "{} never saw the firing", d.room);
                prop_assert_eq!(kind, EntryKind::Resolved, "only resolutions go out while silenced");
            }
            let to_fired = drafts(&planned).into_iter().filter(|d| fired.contains(&d.room)).count();
            if kind == EntryKind::Resolved {
                // Every planned delivery to a room that saw the firing still goes.
                prop_assert_eq!(kept.len(), to_fired);
            }
            prop_assert!(!may_email(Silencing::Active));

            // After the silence, follow-ups of its firing still skip the rooms that never saw it.
            if !is_firing(kind) {
                let kept = keep_deliveries(drafts(&planned), kind, Silencing::Ended, &fired);
                prop_assert!(kept.iter().all(|d| fired.contains(&d.room)));
                prop_assert_eq!(kept.len(), to_fired);
            }
        }

        #[test]
        fn unsilenced_plans_are_untouched(
            planned in proptest::collection::vec(0usize..4, 0..8),
            fired in proptest::collection::btree_set(0usize..4, 0..4),
            kind in 0usize..KINDS.len(),
        ) {
            let fired: BTreeSet<String> = fired.into_iter().map(|r| ROOMS[r].to_string()).collect();
            let kept = keep_deliveries(drafts(&planned), KINDS[kind], Silencing::Off, &fired);
            prop_assert_eq!(kept, drafts(&planned));
            prop_assert!(may_email(Silencing::Off));
        }

        #[test]
        fn parse_round_trips_through_display(
            name in "[a-z_][a-z0-9_]{0,10}",
            op in 0usize..4,
            value in "[ -~]{0,20}",
        ) {
            let op = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex][op];
            let regexy = matches!(op, MatchOp::Regex | MatchOp::NotRegex);
            prop_assume!(!regexy || anchored(&value).is_ok());
            // Backslashes before other characters are kept as written (regex escapes), so only values
            // whose escapes survive a round trip are compared.
            prop_assume!(!value.contains('\\'));
            let matcher = Matcher { name, op, value };
            prop_assert_eq!(Matcher::parse(&matcher.to_string()).unwrap(), matcher);
        }
    }
}
