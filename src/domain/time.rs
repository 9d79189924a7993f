//! Timestamps: milliseconds since the Unix epoch, parsed from and written as RFC 3339.
//!
//! Everything in tocsin that compares times (leases, reopen windows) works on this one type, so the
//! arithmetic is integer arithmetic and there is no time zone to get wrong.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in time with millisecond precision (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Builds a timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339. Go's zero time (`0001-01-01T00:00:00Z`), which amtool and Alertmanager send for
    /// "unset", is read as `None`: it means absent, never "two thousand years ago".
    pub fn parse_optional(text: &str) -> Result<Option<Self>, String> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?;
        if parsed.year() <= 1 {
            return Ok(None);
        }
        let ms = parsed.unix_timestamp_nanos() / 1_000_000;
        Ok(Some(Timestamp(ms as i64)))
    }

    /// This time moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T02:39:20.653Z`.
    pub fn to_rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let format = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        dt.format(&format).unwrap_or_else(|_| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse_optional(&text)
            .map_err(serde::de::Error::custom)?
            .ok_or_else(|| serde::de::Error::custom("zero timestamp where a time is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_zero_time_means_absent() {
        assert_eq!(
            Timestamp::parse_optional("0001-01-01T00:00:00Z").unwrap(),
            None
        );
        assert_eq!(
            Timestamp::parse_optional("0001-01-01T00:00:00.000Z").unwrap(),
            None
        );
    }

    #[test]
    fn round_trips_through_rfc3339() {
        let t = Timestamp::parse_optional("2026-11-22T02:39:20.653Z")
            .unwrap()
            .unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T02:39:20.653Z");
        let nanos = Timestamp::parse_optional("2026-11-22T02:40:23.806057587Z")
            .unwrap()
            .unwrap();
        assert_eq!(nanos.to_rfc3339(), "2026-11-22T02:40:23.806Z");
        let offset = Timestamp::parse_optional("2026-11-22T03:39:20+01:00")
            .unwrap()
            .unwrap();
        assert_eq!(offset.to_rfc3339(), "2026-11-22T02:39:20.000Z");
    }

    #[test]
    fn rejects_garbage() {
        assert!(Timestamp::parse_optional("yesterday").is_err());
    }
}
