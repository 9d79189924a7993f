//! Silences: label matchers with a time window that keep matching tickets out of chat and email while
//! their changes are still recorded. Pure.

use serde::{Deserialize, Serialize};

use super::time::Timestamp;

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

/// `name=value`, `name!=value`, `name=~regex` or `name!~regex`, as in Alertmanager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
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

/// A silence before the store gives it an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceDraft {
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub comment: String,
    pub author: String,
}
