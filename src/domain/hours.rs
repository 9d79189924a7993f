//! Business hours: when a room's people are there, in the room's time zone, and what happens to a
//! ticket change outside them (a notice, another room, or holding it until the hours start). Pure.
//!
//! Windows are civil times on listed weekdays in an IANA time zone (`jiff`, with its bundled tz
//! database), turned into instants day by day, so daylight-saving changes move them the way people
//! expect: 09:00 stays 09:00 local. A window whose end is not after its start runs overnight, into the
//! next day (`22:00`–`06:00` on `mon` is Monday 22:00 to Tuesday 06:00); `24:00` ends at midnight.
//! Local times that a clock change skips move forward by the gap, repeated ones take their first
//! occurrence (jiff's "compatible" rule, as RFC 5545 and Temporal do).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use super::time::Timestamp;

/// Minutes in a day; `24:00` is this.
const DAY_MINUTES: u16 = 24 * 60;
/// How far `next_open` and `period_start` look, in days. A window is at most a day long and at least one
/// weekday is listed, so two weeks always find one (even past a window a clock change swallowed).
const SEARCH_DAYS: i32 = 16;

const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// A day name (`mon`, `Monday`, case-insensitive) as 0 (Monday) to 6 (Sunday).
pub fn parse_day(name: &str) -> Option<usize> {
    let n = name.trim().to_ascii_lowercase();
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    FULL.iter()
        .position(|f| *f == n || (n.len() == 3 && f.starts_with(&n)))
}

/// `HH:MM` (24-hour) as minutes after midnight; `24:00` only when `allow_midnight_end`.
pub fn parse_time(text: &str, allow_midnight_end: bool) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    match (h, m) {
        (24, 0) if allow_midnight_end => Some(DAY_MINUTES),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Whether `name` is an IANA time zone tocsin knows (from the bundled database).
pub fn known_timezone(name: &str) -> bool {
    TimeZone::get(name).is_ok()
}

fn hhmm(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// A room's business hours.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    /// Monday first.
    days: [bool; 7],
    /// Minutes after local midnight.
    start: u16,
    /// Minutes after local midnight, `1..=1440`; not after `start` means the next day.
    end: u16,
    tz: TimeZone,
    tz_name: String,
}

impl Hours {
    /// Hours on `days` (0 = Monday), from `start` to `end` (minutes after midnight, `end` may be 1440
    /// for midnight; an `end` not after `start` runs overnight) in the IANA zone `timezone`.
    pub fn new(days: &[usize], start: u16, end: u16, timezone: &str) -> Result<Hours, String> {
        if days.is_empty() {
            return Err("at least one day is needed".into());
        }
        let mut set = [false; 7];
        for &d in days {
            *set.get_mut(d)
                .ok_or_else(|| format!("day {d} is not 0 to 6"))? = true;
        }
        if start >= DAY_MINUTES {
            return Err("start must be before 24:00".into());
        }
        if end == 0 || end > DAY_MINUTES {
            return Err("end must be after 00:00 and at most 24:00".into());
        }
        if start == end {
            return Err("start and end are the same time: the window would be empty".into());
        }
        let tz = TimeZone::get(timezone).map_err(|_| {
            format!("`{timezone}` is not a known time zone (use an IANA name like Europe/Berlin)")
        })?;
        Ok(Hours {
            days: set,
            start,
            end,
            tz,
            tz_name: timezone.to_string(),
        })
    }

    /// `Mon–Fri 09:00–17:30 Europe/Berlin`.
    pub fn describe(&self) -> String {
        let listed: Vec<usize> = (0..7).filter(|&d| self.days[d]).collect();
        let contiguous = listed.windows(2).all(|w| w[1] == w[0] + 1);
        let days = match listed.as_slice() {
            [one] => DAY_NAMES[*one].to_string(),
            [first, .., last] if contiguous => {
                format!("{}–{}", DAY_NAMES[*first], DAY_NAMES[*last])
            }
            _ => listed
                .iter()
                .map(|&d| DAY_NAMES[d])
                .collect::<Vec<_>>()
                .join(", "),
        };
        let end = if self.end == DAY_MINUTES {
            "24:00".to_string()
        } else {
            hhmm(self.end)
        };
        format!("{days} {}–{end} {}", hhmm(self.start), self.tz_name)
    }

    /// A time as people in the room read it: `Mon 2026-11-23 09:00`.
    pub fn local(&self, at: Timestamp) -> String {
        let dt = self.civil(at);
        let day = DAY_NAMES[dt.date().weekday().to_monday_zero_offset() as usize];
        format!(
            "{day} {:04}-{:02}-{:02} {:02}:{:02}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute()
        )
    }

    pub fn timezone(&self) -> &str {
        &self.tz_name
    }

    fn civil(&self, at: Timestamp) -> DateTime {
        let ts = jiff::Timestamp::from_millisecond(at.as_millis())
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        self.tz.to_datetime(ts)
    }

    fn instant(&self, dt: DateTime) -> Option<i64> {
        self.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .ok()
            .map(|t| t.as_millisecond())
    }

    fn at_minutes(date: Date, minutes: u16) -> Option<DateTime> {
        if minutes >= DAY_MINUTES {
            return date.tomorrow().ok().map(|d| d.at(0, 0, 0, 0));
        }
        Some(date.at((minutes / 60) as i8, (minutes % 60) as i8, 0, 0))
    }

    /// The window that starts on `date`, as `[start, end)` in Unix milliseconds: `None` when the day
    /// is not listed or a clock change left the window empty.
    fn window(&self, date: Date) -> Option<(i64, i64)> {
        if !self.days[date.weekday().to_monday_zero_offset() as usize] {
            return None;
        }
        let start = self.instant(Self::at_minutes(date, self.start)?)?;
        let end_date = if self.end > self.start {
            date
        } else {
            date.tomorrow().ok()?
        };
        let end = self.instant(Self::at_minutes(end_date, self.end)?)?;
        (end > start).then_some((start, end))
    }

    fn day(date: Date, offset: i32) -> Option<Date> {
        date.checked_add(jiff::Span::new().days(offset)).ok()
    }

    /// Whether the room is inside its hours at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        let t = now.as_millis();
        let today = self.civil(now).date();
        // Only yesterday's window (overnight) or today's can hold `now`.
        [-1, 0]
            .into_iter()
            .filter_map(|o| Self::day(today, o))
            .filter_map(|d| self.window(d))
            .any(|(s, e)| s <= t && t < e)
    }

    /// When the room is next inside its hours: `now` if it is now.
    pub fn next_open(&self, now: Timestamp) -> Timestamp {
        if self.is_open(now) {
            return now;
        }
        let t = now.as_millis();
        let today = self.civil(now).date();
        (-1..=SEARCH_DAYS)
            .filter_map(|o| Self::day(today, o))
            .filter_map(|d| self.window(d))
            .map(|(s, _)| s)
            .find(|&s| s > t)
            .map(Timestamp::from_millis)
            // Unreachable with a listed day; a week later is a safe answer all the same.
            .unwrap_or_else(|| now.plus(std::time::Duration::from_secs(7 * 86_400)))
    }

    /// The start of the off-hours period `now` is in: when the last window ended (or `now` itself when
    /// the room is open). Two times in the same period give the same answer, so the store can post a
    /// room's off-hours notice once per period.
    pub fn period_start(&self, now: Timestamp) -> Timestamp {
        if self.is_open(now) {
            return now;
        }
        let t = now.as_millis();
        let today = self.civil(now).date();
        (-SEARCH_DAYS..=0)
            .rev()
            .filter_map(|o| Self::day(today, o))
            .filter_map(|d| self.window(d))
            .map(|(_, e)| e)
            .find(|&e| e <= t)
            .map(Timestamp::from_millis)
            // Unreachable with a listed day.
            .unwrap_or_else(|| Timestamp::from_millis(t - SEARCH_DAYS as i64 * 86_400_000))
    }
}

/// What a room does with a ticket change outside its hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffHours {
    /// Deliver as usual, and post one notice per off-hours period saying when the team is back.
    Notice,
    /// Critical tickets go out now; the others wait until the hours start.
    Hold,
    /// Deliver to this other room instead.
    Route(String),
}

/// A room's hours and what it does outside them.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomHours {
    pub hours: Hours,
    pub off_hours: OffHours,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(text: &str) -> Timestamp {
        Timestamp::parse_optional(text).unwrap().unwrap()
    }

    fn berlin() -> Hours {
        Hours::new(&[0, 1, 2, 3, 4], 9 * 60, 17 * 60 + 30, "Europe/Berlin").unwrap()
    }

    #[test]
    fn parses_days_and_times() {
        assert_eq!(parse_day("mon"), Some(0));
        assert_eq!(parse_day("Sunday"), Some(6));
        assert_eq!(parse_day("SAT"), Some(5));
        assert_eq!(parse_day("mo"), None);
        assert_eq!(parse_day("funday"), None);
        assert_eq!(parse_time("09:00", false), Some(540));
        assert_eq!(parse_time("9:05", false), Some(545));
        assert_eq!(parse_time("23:59", false), Some(1439));
        assert_eq!(parse_time("24:00", true), Some(1440));
        for bad in ["24:00", "9", "09:60", "25:00", "09:5", "-1:00", "aa:bb", ""] {
            assert_eq!(parse_time(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(Hours::new(&[], 540, 600, "UTC").is_err());
        assert!(Hours::new(&[0], 540, 540, "UTC").is_err());
        assert!(Hours::new(&[0], 540, 600, "Mars/Olympus").is_err());
        assert!(Hours::new(&[0], 540, 0, "UTC").is_err());
    }

    #[test]
    fn weekdays_in_berlin() {
        let h = berlin();
        assert_eq!(h.describe(), "Mon–Fri 09:00–17:30 Europe/Berlin");
        // 2026-11-23 is a Monday; Berlin is UTC+1 in winter.
        assert!(!h.is_open(ts("2026-11-23T07:59:59Z")));
        assert!(h.is_open(ts("2026-11-23T08:00:00Z")));
        assert!(h.is_open(ts("2026-11-23T16:29:59Z")));
        assert!(!h.is_open(ts("2026-11-23T16:30:00Z")));
        // Saturday noon: back on Monday at 09:00 local; off since Friday 17:30 local.
        let sat = ts("2026-11-21T12:00:00Z");
        assert!(!h.is_open(sat));
        assert_eq!(h.next_open(sat), ts("2026-11-23T08:00:00Z"));
        assert_eq!(h.period_start(sat), ts("2026-11-20T16:30:00Z"));
        assert_eq!(h.local(h.next_open(sat)), "Mon 2026-11-23 09:00");
        // Open: next_open and period_start are now.
        let mon = ts("2026-11-23T10:00:00Z");
        assert_eq!(h.next_open(mon), mon);
        assert_eq!(h.period_start(mon), mon);
    }

    #[test]
    fn daylight_saving_keeps_local_times() {
        let h = berlin();
        // Summer time: 09:00 in Berlin is 07:00 UTC (2026-06-01 is a Monday).
        assert!(h.is_open(ts("2026-06-01T07:00:00Z")));
        assert!(!h.is_open(ts("2026-06-01T06:59:59Z")));
        // Friday 2026-03-27 17:30 CET (UTC+1) → Monday 2026-03-30 09:00 CEST (UTC+2).
        let weekend = ts("2026-03-28T12:00:00Z");
        assert_eq!(h.next_open(weekend), ts("2026-03-30T07:00:00Z"));
        assert_eq!(h.period_start(weekend), ts("2026-03-27T16:30:00Z"));
        // A window inside the skipped hour: Sunday 2026-03-29 02:00–03:00 does not exist in Berlin.
        let gap = Hours::new(&[6], 120, 180, "Europe/Berlin").unwrap();
        assert!(!gap.is_open(ts("2026-03-29T01:00:00Z")));
        assert_eq!(
            gap.next_open(ts("2026-03-29T00:00:00Z")),
            ts("2026-04-05T00:00:00Z")
        );
        // The repeated hour in autumn: 02:00–03:00 on 2026-10-25 lasts from the first 02:00 (00:00 UTC)
        // to 03:00 CET (02:00 UTC): two hours.
        let fold = Hours::new(&[6], 120, 180, "Europe/Berlin").unwrap();
        assert!(fold.is_open(ts("2026-10-25T00:00:00Z")));
        assert!(fold.is_open(ts("2026-10-25T01:30:00Z")));
        assert!(!fold.is_open(ts("2026-10-25T02:00:00Z")));
    }

    #[test]
    fn overnight_windows_run_into_the_next_day() {
        // Fridays 22:00 to Saturday 06:00, in UTC.
        let h = Hours::new(&[4], 22 * 60, 6 * 60, "UTC").unwrap();
        assert_eq!(h.describe(), "Fri 22:00–06:00 UTC");
        assert!(h.is_open(ts("2026-11-20T22:00:00Z")));
        assert!(h.is_open(ts("2026-11-21T05:59:00Z")));
        assert!(!h.is_open(ts("2026-11-21T06:00:00Z")));
        assert!(!h.is_open(ts("2026-11-20T21:59:00Z")));
        assert_eq!(
            h.next_open(ts("2026-11-21T06:00:00Z")),
            ts("2026-11-27T22:00:00Z")
        );
        let midnight = Hours::new(&[0, 2], 20 * 60, DAY_MINUTES, "UTC").unwrap();
        assert_eq!(midnight.describe(), "Mon, Wed 20:00–24:00 UTC");
        assert!(midnight.is_open(ts("2026-11-23T23:59:59Z")));
        assert!(!midnight.is_open(ts("2026-11-24T00:00:00Z")));
    }

    const ZONES: [&str; 5] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "UTC",
    ];

    fn hours_strategy() -> impl Strategy<Value = Hours> {
        (
            proptest::collection::btree_set(0usize..7, 1..=7),
            0u16..1440,
            1u16..=1440,
            0usize..ZONES.len(),
        )
            .prop_filter("non-empty window", |(_, s, e, _)| s != e)
            .prop_map(|(days, s, e, z)| {
                let days: Vec<usize> = days.into_iter().collect();
                Hours::new(&days, s, e, ZONES[z]).unwrap()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// `next_open` is open, and no minute between now and it is.
        #[test]
        fn next_open_is_the_first_open_minute(
            h in hours_strategy(),
            // Around 2026, including both daylight-saving changes.
            minute in 29_450_000i64..29_990_000i64,
        ) {
            let now = Timestamp::from_millis(minute * 60_000);
            let next = h.next_open(now);
            prop_assert!(next >= now);
            prop_assert!(h.is_open(next), "{} not open at {}", h.describe(), next);
            let mut t = now;
            while t < next {
                prop_assert!(!h.is_open(t), "{} open at {} before {}", h.describe(), t, next);
                t = t.plus(std::time::Duration::from_secs(60));
            }
        }

        /// `period_start` is the same across an off-hours period and closed after it, and the minute
        /// before it was open.
        #[test]
        fn period_start_is_when_the_hours_ended(
            h in hours_strategy(),
            minute in 29_450_000i64..29_990_000i64,
            later in 0i64..600,
        ) {
            let now = Timestamp::from_millis(minute * 60_000);
            prop_assume!(!h.is_open(now));
            let start = h.period_start(now);
            prop_assert!(start <= now);
            prop_assert!(!h.is_open(start));
            prop_assert!(h.is_open(Timestamp::from_millis(start.as_millis() - 60_000)));
            let then = Timestamp::from_millis(now.as_millis() + later * 60_000);
            if then < h.next_open(now) {
                prop_assert_eq!(h.period_start(then), start);
            }
        }
    }
}
