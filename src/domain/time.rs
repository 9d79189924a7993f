//! Timestamps: milliseconds since the Unix epoch, parsed from and written as RFC 3339.
//!
//! Everything in tocsin that compares times (leases, reopen windows) works on this one type, so the
//! arithmetic is integer arithmetic and there is no time zone to get wrong.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `0002-01-01T00:00:00Z`: anything earlier is Go's zero time, give or take an offset.
const YEAR_TWO_MS: i128 = -62_104_060_800_000;

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

    /// The earliest time an alert may carry: the Unix epoch. Nothing that monitors anything fired before it,
    /// and every stored time then stays a four-digit RFC 3339 year.
    pub const MIN: Timestamp = Timestamp(0);
    /// The latest time RFC 3339 can write: `9999-12-31T23:59:59.999Z`.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// Parses RFC 3339 from outside (ingest, the API). Go's zero time (`0001-01-01T00:00:00Z`), which amtool
    /// and Alertmanager send for "unset", is read as `None`: it means absent, never "two thousand years
    /// ago", and so is anything in year 1 once converted to UTC (`0002-01-01T00:00:00+01:00` is year 1 in
    /// UTC). Any other time outside [`Timestamp::MIN`]..=[`Timestamp::MAX`] is an error: stored, it could
    /// not be written back as RFC 3339.
    pub fn parse_optional(text: &str) -> Result<Option<Self>, String> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("`{}` is not an RFC 3339 timestamp: {e}", clip(text)))?;
        // The year is checked in UTC: an offset can move a local year 2 into year 1 or 0 (and a
        // local year 9999 into 10000, which `unix_timestamp_nanos` still counts right).
        let ms = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        if parsed.year() <= 1 || ms < YEAR_TWO_MS {
            return Ok(None);
        }
        if ms < i128::from(Self::MIN.0) {
            return Err(format!("`{}` is before 1970-01-01T00:00:00Z", clip(text)));
        }
        if ms > i128::from(Self::MAX.0) {
            return Err(format!(
                "`{}` is after 9999-12-31T23:59:59.999Z",
                clip(text)
            ));
        }
        Ok(Some(Timestamp(ms as i64)))
    }

    /// This time clamped into [`Timestamp::MIN`]..=[`Timestamp::MAX`].
    pub fn clamped(self) -> Self {
        Timestamp(self.0.clamp(Self::MIN.0, Self::MAX.0))
    }

    /// This time moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(
            self.0
                .saturating_add(d.as_millis().min(i64::MAX as u128) as i64),
        )
        .clamped()
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-22T02:39:20.653Z`. A time outside
    /// [`Timestamp::MIN`]..=[`Timestamp::MAX`] is written clamped, so whatever is written can be read back.
    pub fn to_rfc3339(self) -> String {
        let dt = OffsetDateTime::from_unix_timestamp_nanos(self.clamped().0 as i128 * 1_000_000)
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

/// Reading back what tocsin wrote (journal rows, stored JSON) never fails on a time that parses: it is
/// clamped into range instead. Rows written before ingest refused out-of-range times (a year-1 time once
/// held up the whole journal) are read, not left to block everything behind them.
impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = OffsetDateTime::parse(&text, &Rfc3339).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{}` is not an RFC 3339 timestamp: {e}",
                clip(&text)
            ))
        })?;
        let ms = parsed.unix_timestamp_nanos().div_euclid(1_000_000);
        let ms = ms.clamp(i128::from(Self::MIN.0), i128::from(Self::MAX.0));
        Ok(Timestamp(ms as i64))
    }
}

/// At most 64 characters of a bad value, for error messages that go back to senders and into logs.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
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

    #[test]
    fn year_one_after_the_offset_is_absent_too() {
        // The poison alert: year 2 locally, year 1 in UTC.
        assert_eq!(
            Timestamp::parse_optional("0002-01-01T00:00:00+01:00").unwrap(),
            None
        );
        assert_eq!(
            Timestamp::parse_optional("0001-01-01T00:59:00-01:00").unwrap(),
            None
        );
    }

    #[test]
    fn times_outside_the_range_are_refused() {
        assert!(Timestamp::parse_optional("1969-12-31T23:59:59.999Z")
            .unwrap_err()
            .contains("before 1970"));
        assert!(Timestamp::parse_optional("0500-06-01T00:00:00Z").is_err());
        assert!(Timestamp::parse_optional("9999-12-31T23:59:59-01:00")
            .unwrap_err()
            .contains("after 9999"));
        assert_eq!(
            Timestamp::parse_optional("9999-12-31T23:59:59.999Z").unwrap(),
            Some(Timestamp::MAX)
        );
        assert_eq!(
            Timestamp::parse_optional("1970-01-01T00:00:00Z").unwrap(),
            Some(Timestamp::MIN)
        );
    }

    #[test]
    fn stored_out_of_range_times_are_read_clamped() {
        let read = |s: &str| serde_json::from_str::<Timestamp>(&format!("\"{s}\"")).unwrap();
        assert_eq!(read("0001-01-01T00:00:00Z"), Timestamp::MIN);
        assert_eq!(read("9999-12-31T23:59:59-01:00"), Timestamp::MAX);
        assert_eq!(Timestamp::MAX.plus(Duration::from_secs(60)), Timestamp::MAX);
    }

    proptest::proptest! {
        /// Whatever a timestamp holds, what is written is read back (clamped into range).
        #[test]
        fn every_timestamp_round_trips(ms in proptest::prelude::any::<i64>()) {
            let t = Timestamp::from_millis(ms);
            let json = serde_json::to_string(&t).unwrap();
            let back: Timestamp = serde_json::from_str(&json).unwrap();
            proptest::prop_assert_eq!(back, t.clamped());
        }

        /// Whatever ingest accepts, it reads back unchanged: accept ⇒ decode.
        #[test]
        fn accepted_times_round_trip(
            year in 0i32..10000, month in 1u8..13, day in 1u8..32, hour in 0u8..24, minute in 0u8..60,
            second in 0u8..61, frac in proptest::option::of(0u32..1_000_000_000),
            offset in proptest::option::of((-23i8..24, 0u8..60)),
        ) {
            let frac = frac.map(|f| format!(".{f:09}")).unwrap_or_default();
            let zone = match offset {
                None => "Z".to_string(),
                Some((h, m)) => format!("{}{:02}:{m:02}", if h < 0 { '-' } else { '+' }, h.unsigned_abs()),
            };
            let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{frac}{zone}");
            if let Ok(Some(t)) = Timestamp::parse_optional(&text) {
                let back: Timestamp = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
                proptest::prop_assert_eq!(back, t);
                proptest::prop_assert!((Timestamp::MIN..=Timestamp::MAX).contains(&t));
            }
        }
    }
}
