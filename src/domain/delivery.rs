//! Delivery rules, free of IO: when to retry, when to give up, when a room is in a storm, and what a
//! storm digest says. The outbox worker (`outbox/`) asks; these answer.

use std::collections::BTreeMap;
use std::time::Duration;

use super::alert::Severity;
use super::message::{Content, Digest, DigestItem, Mention, TicketMessage};
use super::ticket::TicketState;
use super::time::Timestamp;

/// Waits between attempts: seconds, then minutes, then hourly.
const SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(2 * 60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(15 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
];

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    At(Timestamp),
    /// Too old: mark it dead.
    GiveUp,
}

/// When to try again after the `attempts`-th failure (1 for the first). `jitter` in `[0, 1)` spreads
/// retries by ±20 % so deliveries that failed together do not all come back together. A wait the
/// platform asked for (`Retry-After`) is a floor. A delivery older than `max_age` at its next attempt
/// is given up on.
pub fn next_attempt(
    attempts: u32,
    created_at: Timestamp,
    now: Timestamp,
    asked: Option<Duration>,
    jitter: f64,
    max_age: Duration,
) -> RetryDecision {
    let base = SCHEDULE[(attempts.max(1) as usize - 1).min(SCHEDULE.len() - 1)];
    let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
    let mut wait = base.mul_f64(factor);
    if let Some(a) = asked {
        wait = wait.max(a);
    }
    let at = now.plus(wait);
    if at.since(created_at) > max_age {
        RetryDecision::GiveUp
    } else {
        RetryDecision::At(at)
    }
}

/// Whether a room's backlog needs digests: more pending messages than its rate can send within
/// `after`, beyond its burst. Once in a storm, the room stays in it until the backlog is down to its
/// burst, so it does not flap in and out at the threshold.
pub fn in_storm(
    pending: u64,
    per_second: f64,
    burst: u32,
    after: Duration,
    storming: bool,
) -> bool {
    let budget = burst as f64 + per_second * after.as_secs_f64();
    if storming {
        pending > u64::from(burst)
    } else {
        pending as f64 > budget
    }
}

/// Due deliveries a room may have and still record each send before the next (see
/// [`sends_per_record`]).
pub const CALM_DUE: usize = 4;

/// The highest room rate (messages a second) at which each send is always recorded before the next:
/// a record takes about a millisecond, so at this rate recording never holds the room back.
pub const ONE_BY_ONE_RATE: f64 = 100.0;

/// The most sends a room's sender makes before recording them (see [`sends_per_record`]).
pub const RECORD_GROUP: usize = 16;

/// With other instances on the database, how many sends a room's sender makes before it records them
/// (one transaction), given how many deliveries are due in the room now and the room's rate.
///
/// One by one while the room is calm or its rate is at most [`ONE_BY_ONE_RATE`] (every chat
/// platform's): a sender that dies then leaves at most its one in-flight send to be sent again by the
/// instance that takes the room over. A group in a faster room's backlog: recorded one by one, a send
/// cost a transaction of its own (about 1 ms on PostgreSQL), which held a room to about as many sends
/// a second, and at 1,000 alerts/s to one webhook room the backlog grew for good (measured with
/// `benches/versus.rs`). A sender that dies there leaves at most a group to be sent again, each with
/// the same delivery id.
pub fn sends_per_record(due: usize, per_second: f64) -> usize {
    if due <= CALM_DUE || per_second <= ONE_BY_ONE_RATE {
        1
    } else {
        RECORD_GROUP
    }
}

/// Sums up many ticket messages into one digest. Each ticket counts once, by its latest state (the
/// input is in order, so later messages win). Firing tickets come before resolved ones, and more
/// severe before less; mentions from all messages are merged without repeats.
pub fn digest(
    room: &str,
    messages: &[&TicketMessage],
    top: usize,
    link: String,
    now: Timestamp,
) -> Digest {
    let mut latest: BTreeMap<&str, &TicketMessage> = BTreeMap::new();
    let mut mentions: Vec<Mention> = Vec::new();
    for m in messages {
        latest.insert(m.ticket_id.as_str(), m);
        for mention in &m.mentions {
            if !mentions.contains(mention) {
                mentions.push(mention.clone());
            }
        }
    }
    let (mut firing, mut acked, mut resolved) = (0, 0, 0);
    let mut severities: BTreeMap<Severity, u64> = BTreeMap::new();
    for m in latest.values() {
        match m.state {
            TicketState::Open => {
                firing += 1;
                *severities.entry(m.severity).or_default() += 1;
            }
            TicketState::Acked => acked += 1,
            TicketState::Resolved => resolved += 1,
        }
    }
    let mut items: Vec<&TicketMessage> = latest.values().copied().collect();
    items.sort_by_key(|m| {
        (
            state_rank(m.state),
            std::cmp::Reverse(m.severity),
            std::cmp::Reverse(m.number),
        )
    });
    let more = items.len().saturating_sub(top) as u64;
    Digest {
        room: room.to_string(),
        changes: messages.len() as u64,
        firing,
        acked,
        resolved,
        by_severity: severities.into_iter().rev().collect(),
        top: items
            .into_iter()
            .take(top)
            .map(|m| DigestItem {
                number: m.number,
                title: m.title.clone(),
                state: m.state,
                severity: m.severity,
                link: m.link.clone(),
            })
            .collect(),
        more,
        link,
        mentions,
        at: now,
    }
}

/// Firing first, then acked, then resolved.
fn state_rank(s: TicketState) -> u8 {
    match s {
        TicketState::Open => 0,
        TicketState::Acked => 1,
        TicketState::Resolved => 2,
    }
}

/// The ticket messages inside a batch of contents (digests of digests are not made).
pub fn ticket_messages(contents: &[Content]) -> Vec<&TicketMessage> {
    contents
        .iter()
        .filter_map(|c| match c {
            Content::Ticket(t) => Some(t),
            Content::Digest(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::message::Change;
    use proptest::prelude::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn waits_grow_from_seconds_to_hours() {
        let at = |n| match next_attempt(n, t(0), t(0), None, 0.5, DAY) {
            RetryDecision::At(a) => a.since(t(0)),
            RetryDecision::GiveUp => panic!("gave up"),
        };
        assert_eq!(at(1), Duration::from_secs(5));
        assert_eq!(at(4), Duration::from_secs(60));
        assert_eq!(at(9), Duration::from_secs(3600));
        assert_eq!(at(50), Duration::from_secs(3600));
    }

    #[test]
    fn retry_after_is_a_floor_and_age_ends_it() {
        let asked = Some(Duration::from_secs(120));
        assert_eq!(
            next_attempt(1, t(0), t(0), asked, 0.0, DAY),
            RetryDecision::At(t(120_000))
        );
        let late = t(DAY.as_millis() as i64 - 1_000);
        assert_eq!(
            next_attempt(1, t(0), late, None, 0.0, DAY),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn storms_start_past_the_budget_and_end_at_the_burst() {
        let after = Duration::from_secs(30);
        assert!(!in_storm(35, 1.0, 5, after, false));
        assert!(in_storm(36, 1.0, 5, after, false));
        assert!(in_storm(6, 1.0, 5, after, true));
        assert!(!in_storm(5, 1.0, 5, after, true));
    }

    fn msg(id: &str, number: i64, state: TicketState, severity: Severity) -> TicketMessage {
        TicketMessage {
            ticket_id: id.into(),
            number,
            title: format!("t{number}"),
            state,
            severity,
            source: "s".into(),
            labels: Default::default(),
            summary: None,
            link: format!("http://x/tickets/T-{number}"),
            change: Change::Opened,
            mentions: vec![Mention::Here],
            at: t(0),
        }
    }

    #[test]
    fn a_digest_counts_each_ticket_once_by_its_latest_state() {
        let a1 = msg("a", 1, TicketState::Open, Severity::Warning);
        let b = msg("b", 2, TicketState::Open, Severity::Critical);
        let a2 = msg("a", 1, TicketState::Resolved, Severity::Warning);
        let c = msg("c", 3, TicketState::Open, Severity::Info);
        let d = digest("ops", &[&a1, &b, &a2, &c], 2, "l".into(), t(0));
        assert_eq!((d.changes, d.firing, d.resolved), (4, 2, 1));
        assert_eq!(d.top.iter().map(|i| i.number).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(d.more, 1);
        assert_eq!(
            d.by_severity,
            vec![(Severity::Critical, 1), (Severity::Info, 1)]
        );
        assert_eq!(d.mentions, vec![Mention::Here]);
    }

    proptest! {
        #[test]
        fn a_calm_or_slow_room_records_each_send_and_a_fast_backlog_a_bounded_group(due in 0usize..10_000, per_second in 0.1f64..100_000.0) {
            let group = sends_per_record(due, per_second);
            prop_assert!((1..=RECORD_GROUP).contains(&group));
            prop_assert_eq!(group == 1, due <= CALM_DUE || per_second <= ONE_BY_ONE_RATE);
            prop_assert!(sends_per_record(due + 1, per_second) >= group);
        }

        #[test]
        fn every_ticket_is_accounted_for(states in proptest::collection::vec((0usize..20, 0u8..3, 0u8..5), 1..200), top in 1usize..15) {
            let sev = [Severity::None, Severity::Info, Severity::Warning, Severity::Error, Severity::Critical];
            let st = [TicketState::Open, TicketState::Acked, TicketState::Resolved];
            let msgs: Vec<TicketMessage> = states.iter().map(|(id, s, v)| msg(&id.to_string(), *id as i64 + 1, st[*s as usize], sev[*v as usize])).collect();
            let refs: Vec<&TicketMessage> = msgs.iter().collect();
            let d = digest("r", &refs, top, "l".into(), t(0));
            let distinct = states.iter().map(|s| s.0).collect::<std::collections::BTreeSet<_>>().len() as u64;
            prop_assert_eq!(d.firing + d.acked + d.resolved, distinct);
            prop_assert_eq!(d.top.len() as u64 + d.more, distinct);
            prop_assert_eq!(d.changes, msgs.len() as u64);
            prop_assert_eq!(d.by_severity.iter().map(|(_, n)| n).sum::<u64>(), d.firing);
            // Firing tickets are listed before any other.
            let ranks: Vec<u8> = d.top.iter().map(|i| state_rank(i.state)).collect();
            prop_assert!(ranks.windows(2).all(|w| w[0] <= w[1]));
        }

        #[test]
        fn retries_never_go_back_in_time_and_respect_retry_after(n in 1u32..40, now in 0i64..1_000_000_000, asked in proptest::option::of(0u64..100_000), j in 0.0f64..1.0) {
            let asked = asked.map(Duration::from_millis);
            match next_attempt(n, t(0), t(now), asked, j, Duration::from_secs(u64::MAX / 4_000)) {
                RetryDecision::At(at) => {
                    prop_assert!(at > t(now));
                    if let Some(a) = asked { prop_assert!(at.since(t(now)) >= a); }
                }
                RetryDecision::GiveUp => prop_assert!(false, "gave up"),
            }
        }
    }
}
