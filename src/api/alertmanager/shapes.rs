//! Alertmanager API v2's shapes (the `definitions` of its OpenAPI document), and tocsin's tickets and
//! silences in them. Pure: the handlers in `mod.rs` read the store and call these.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::api::silences::time_field;
use crate::domain::alert::Labels;
use crate::domain::silence::{MatchOp, Matcher, Silence, SilenceDraft, SilenceState};
use crate::domain::ticket::Ticket;
use crate::domain::time::Timestamp;
use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receiver {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertStatus {
    /// `active`, or `suppressed` while a silence holds it.
    pub state: &'static str,
    pub silenced_by: Vec<String>,
    /// tocsin has no inhibition rules yet: always empty.
    pub inhibited_by: Vec<String>,
}

/// `gettableAlert`: an open ticket.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert {
    pub labels: Labels,
    pub annotations: Labels,
    pub receivers: Vec<Receiver>,
    pub fingerprint: String,
    pub starts_at: String,
    pub updated_at: String,
    pub ends_at: String,
    pub status: AlertStatus,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
}

/// `alertGroup`.
#[derive(Debug, Clone, Serialize)]
pub struct AlertGroup {
    pub labels: Labels,
    pub receiver: Receiver,
    pub alerts: Vec<GettableAlert>,
}

/// `matcher`, both ways. `isEqual` is always written (Karma reads it without a default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl From<&Matcher> for AmMatcher {
    fn from(m: &Matcher) -> Self {
        AmMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
        }
    }
}

impl From<&AmMatcher> for Matcher {
    fn from(m: &AmMatcher) -> Self {
        let op = match (m.is_regex, m.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher {
            name: m.name.clone(),
            op,
            value: m.value.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SilenceStatus {
    pub state: SilenceState,
}

/// `gettableSilence`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    pub id: String,
    pub status: SilenceStatus,
    pub updated_at: String,
    pub matchers: Vec<AmMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    pub created_by: String,
    pub comment: String,
}

/// `postableSilence`: a new silence, or (with `id`) one that replaces an existing one. `createdBy` is
/// not read: the author is the member whose credentials came with it. Fields other clients add (newer
/// Alertmanagers' `annotations`) are ignored, as Alertmanager 0.25 does.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<AmMatcher>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(default)]
    pub comment: String,
}

/// Silence ids are UUIDs in Alertmanager's API (and its clients pass them as such); tocsin's are
/// numbers. Silence 42 is `00000000-0000-4000-8000-00000000002a`, and both forms are read back.
const ID_PREFIX: &str = "00000000-0000-4000-8000-";

pub fn silence_uuid(id: i64) -> String {
    format!("{ID_PREFIX}{:012x}", id.max(0))
}

pub fn parse_silence_id(text: &str) -> Option<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return (n > 0).then_some(n);
    }
    let hex = text.to_ascii_lowercase();
    let hex = hex.strip_prefix(ID_PREFIX)?;
    if hex.len() != 12 {
        return None;
    }
    i64::from_str_radix(hex, 16).ok().filter(|n| *n > 0)
}

/// Alertmanager writes times as RFC 3339 in UTC with milliseconds.
fn time(t: Timestamp) -> String {
    t.to_rfc3339()
}

pub fn silence(s: &Silence, now: Timestamp) -> GettableSilence {
    // Ended early: changed when it was expired; otherwise when it was made.
    let updated = if s.expired_by.is_some() {
        s.ends_at
    } else {
        s.created_at
    };
    GettableSilence {
        id: silence_uuid(s.id),
        status: SilenceStatus {
            state: s.state(now),
        },
        updated_at: time(updated),
        matchers: s.matchers.iter().map(AmMatcher::from).collect(),
        starts_at: time(s.starts_at),
        ends_at: time(s.ends_at),
        created_by: s.author.clone(),
        comment: s.comment.clone(),
    }
}

/// A posted silence as tocsin's draft. The author is the member whose credentials came with it,
/// not `createdBy` (which any client can write); a start in the past means now, as in Alertmanager.
pub fn draft(p: &PostableSilence, author: &str, now: Timestamp) -> Result<SilenceDraft, ApiError> {
    let starts_at = time_field("startsAt", &p.starts_at)?.max(now);
    let ends_at = time_field("endsAt", &p.ends_at)?;
    let draft = SilenceDraft {
        matchers: p.matchers.iter().map(Matcher::from).collect(),
        starts_at,
        ends_at,
        comment: p.comment.trim().to_string(),
        author: author.to_string(),
    };
    draft
        .validate(now)
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    Ok(draft)
}

/// A ticket as an Alertmanager alert. Tickets from sources without an `alertname` label get their
/// title as one (Alertmanager's clients group and show by it). An open ticket whose sender gave no
/// lease ends `lease` from now, as Alertmanager's `resolve_timeout` would have it.
pub fn alert(
    t: &Ticket,
    receivers: Vec<String>,
    silenced_by: Vec<String>,
    now: Timestamp,
    lease: Duration,
    ticket_link: String,
) -> GettableAlert {
    let mut labels = t.labels.clone();
    labels
        .entry("alertname".to_string())
        .or_insert_with(|| t.title.clone());
    let generator_url = t
        .url
        .clone()
        .filter(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
        .unwrap_or(ticket_link);
    GettableAlert {
        labels,
        annotations: t.annotations.clone(),
        receivers: receivers
            .into_iter()
            .map(|name| Receiver { name })
            .collect(),
        fingerprint: t.fingerprint.clone(),
        starts_at: time(t.starts_at.unwrap_or(t.created_at)),
        updated_at: time(t.updated_at.max(t.last_seen)),
        ends_at: time(t.ends_at.unwrap_or_else(|| now.plus(lease))),
        status: AlertStatus {
            state: if silenced_by.is_empty() {
                "active"
            } else {
                "suppressed"
            },
            silenced_by,
            inhibited_by: Vec::new(),
        },
        generator_url,
    }
}

/// The query of `GET /api/v2/alerts` and `/api/v2/alerts/groups`.
#[derive(Debug)]
pub struct AlertQuery {
    pub active: bool,
    pub silenced: bool,
    pub inhibited: bool,
    pub unprocessed: bool,
    pub filter: Vec<Matcher>,
    /// Anchored, as Alertmanager anchors it.
    pub receiver: Option<Regex>,
}

/// The query of `GET /api/v2/silences`.
#[derive(Debug, Default)]
pub struct SilenceQuery {
    pub filter: Vec<Matcher>,
    pub creator: Vec<String>,
}

fn flag(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(ApiError::bad_request(
            "invalid_query",
            format!("{name}: `{other}` is not true or false"),
        )),
    }
}

/// A `filter` value: one matcher as amtool sends it (`alertname="Disk full"`), braces allowed.
fn filter(value: &str) -> Result<Matcher, ApiError> {
    let v = value.trim();
    let v = v
        .strip_prefix('{')
        .and_then(|v| v.strip_suffix('}'))
        .unwrap_or(v);
    Matcher::parse(v).map_err(|e| ApiError::bad_request("invalid_filter", e.to_string()))
}

/// At most this many `filter` and `creator` values in one query.
const MAX_PARAMS: usize = 64;

fn pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.len() > MAX_PARAMS {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("at most {MAX_PARAMS} query parameters"),
        ));
    }
    Ok(pairs)
}

pub fn alert_query(query: Option<&str>) -> Result<AlertQuery, ApiError> {
    let mut q = AlertQuery {
        active: true,
        silenced: true,
        inhibited: true,
        unprocessed: true,
        filter: Vec::new(),
        receiver: None,
    };
    for (k, v) in pairs(query)? {
        match k.as_str() {
            "active" => q.active = flag(&k, &v)?,
            "silenced" => q.silenced = flag(&k, &v)?,
            "inhibited" => q.inhibited = flag(&k, &v)?,
            "unprocessed" => q.unprocessed = flag(&k, &v)?,
            "filter" => q.filter.push(filter(&v)?),
            "receiver" if v.is_empty() => {}
            "receiver" => {
                let re = crate::domain::pattern::anchored(&v).map_err(|e| {
                    ApiError::bad_request("invalid_query", format!("receiver: {e}"))
                })?;
                q.receiver = Some(re);
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown parameter `{other}`"),
                ))
            }
        }
    }
    Ok(q)
}

pub fn silence_query(query: Option<&str>) -> Result<SilenceQuery, ApiError> {
    let mut q = SilenceQuery::default();
    for (k, v) in pairs(query)? {
        match k.as_str() {
            "filter" => q.filter.push(filter(&v)?),
            "creator" => q.creator.push(v),
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("unknown parameter `{other}`"),
                ))
            }
        }
    }
    Ok(q)
}

impl AlertQuery {
    /// Whether `a` (of a ticket with this severity and source) is shown: its state is asked for,
    /// every filter matcher holds (on its labels, and `severity`/`source` as tocsin's silences and
    /// routes read them), and a receiver matches.
    pub fn keeps(&self, a: &GettableAlert, t: &Ticket) -> bool {
        let silenced = !a.status.silenced_by.is_empty();
        let state_ok = if silenced { self.silenced } else { self.active };
        state_ok
            && self
                .filter
                .iter()
                .all(|m| m.matches_parts(&a.labels, t.severity, &t.source))
            && self.receiver_ok(a.receivers.iter().map(|r| r.name.as_str()))
    }

    pub fn receiver_ok<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> bool {
        match &self.receiver {
            None => true,
            Some(re) => names.any(|n| re.is_match(n)),
        }
    }
}

impl SilenceQuery {
    /// As Alertmanager filters silences: each filter matcher holds on the labels the silence's own
    /// matchers name (name → value), and the author is among `creator` when given.
    pub fn keeps(&self, s: &Silence) -> bool {
        let labels: BTreeMap<&str, &str> = s
            .matchers
            .iter()
            .map(|m| (m.name.as_str(), m.value.as_str()))
            .collect();
        self.filter.iter().all(|m| {
            let values: Vec<&str> = labels.get(m.name.as_str()).copied().into_iter().collect();
            m.matches_values(&values)
        }) && (self.creator.is_empty() || self.creator.contains(&s.author))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_ids_read_back_in_both_forms() {
        for id in [1, 42, 0xffff_ffff] {
            let uuid = silence_uuid(id);
            assert_eq!(uuid.len(), 36);
            assert_eq!(parse_silence_id(&uuid), Some(id));
            assert_eq!(parse_silence_id(&uuid.to_uppercase()), Some(id));
            assert_eq!(parse_silence_id(&id.to_string()), Some(id));
        }
        assert_eq!(silence_uuid(42), "00000000-0000-4000-8000-00000000002a");
        for bad in [
            "",
            "0",
            "-3",
            "x",
            "00000000-0000-4000-8000-zz",
            "3f2b9a70-1111-4000-8000-00000000002a",
        ] {
            assert_eq!(parse_silence_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn matchers_convert_both_ways_for_every_operator() {
        for op in [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Regex,
            MatchOp::NotRegex,
        ] {
            let m = Matcher {
                name: "job".into(),
                op,
                value: "api.*".into(),
            };
            assert_eq!(Matcher::from(&AmMatcher::from(&m)), m);
        }
        let legacy: AmMatcher =
            serde_json::from_str(r#"{"name":"a","value":"b","isRegex":false}"#).unwrap();
        assert_eq!(Matcher::from(&legacy).op, MatchOp::Equal);
    }

    #[test]
    fn queries_take_repeated_filters_and_refuse_what_they_do_not_know() {
        let q = alert_query(Some(
            "filter=alertname%3D%22Disk%20full%22&filter=%7Bjob%3D~%22a.*%22%7D&silenced=false&receiver=ops",
        ))
        .unwrap();
        assert_eq!(q.filter.len(), 2);
        assert_eq!(q.filter[0].value, "Disk full");
        assert_eq!(q.filter[1].op, MatchOp::Regex);
        assert!(!q.silenced && q.active);
        assert!(q.receiver_ok(["ops"].into_iter()));
        assert!(!q.receiver_ok(["ops2"].into_iter()));
        for bad in ["active=maybe", "filter=%3D%3D", "receiver=(", "limit=3"] {
            assert!(alert_query(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(silence_query(Some("creator=bob")).unwrap().creator, ["bob"]);
    }

    #[test]
    fn silences_filter_on_the_labels_their_matchers_name() {
        let s = Silence {
            id: 1,
            matchers: vec![Matcher::parse("alertname=DiskFull").unwrap()],
            starts_at: Timestamp::from_millis(0),
            ends_at: Timestamp::from_millis(1),
            comment: "c".into(),
            author: "bob".into(),
            created_at: Timestamp::from_millis(0),
            expired_by: None,
        };
        let q = |text: &str| silence_query(Some(text)).unwrap().keeps(&s);
        assert!(q(""));
        assert!(q("filter=alertname%3DDiskFull"));
        assert!(!q("filter=alertname%3DOther"));
        assert!(!q("filter=job%3Dapi"));
        assert!(q("filter=job!%3Dapi"));
        assert!(!q("creator=alice"));
    }
}
