//! The plugin breaker: which alerts a failing plugin skips for a while, and when it is switched off.
//!
//! Pure: the host asks [`Breaker::admit`] before calling a plugin on an alert and tells
//! [`Breaker::record`] how the call went, passing `now` each time. Two levels:
//!
//! - **Per key** (the alert's ticket key, i.e. its label set or fingerprint): after
//!   [`BreakerPolicy::key_after`] failures in a row on one key, the plugin skips alerts with that key
//!   for [`BreakerPolicy::cooldown`] (they go on without it, as any failure does). After the cooldown
//!   the next alert with that key is tried once: a success closes the key, a failure skips it again for
//!   another cooldown. So one alert that makes a plugin loop (`chaos=loop`) costs one deadline per
//!   cooldown instead of switching the plugin off for every other alert.
//! - **Whole plugin**: switched off (until a reload) once [`BreakerPolicy::disable_after`] *different*
//!   keys have failed with no success in between: the plugin fails on everything, not on one alert.
//!   `disable_after: 0` never switches it off.
//!
//! Why the state is in memory, per instance: it is a cache of recent failures, cheap to lose; after a
//! restart, or on another instance, a bad key costs `key_after` failures again before it is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::time::Timestamp;

/// Keys remembered at most (the ones with failures); the oldest failing key is forgotten past this,
/// so alerts with ever-new label sets cannot grow the breaker without bound.
pub const MAX_KEYS: usize = 1024;

/// When the breaker opens, for how long, and when the whole plugin is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures in a row on one key before that key is skipped; 0 never skips.
    pub key_after: u32,
    /// How long a key is skipped.
    pub cooldown: Duration,
    /// Different keys failing with no success in between before the plugin is switched off; 0 never.
    pub disable_after: u32,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            key_after: 3,
            cooldown: Duration::from_secs(600),
            disable_after: 10,
        }
    }
}

/// What the breaker says about calling the plugin on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Run,
    /// This key is skipped until `until`, after `failures` failures in a row.
    Skip {
        until: Timestamp,
        failures: u32,
    },
    /// The plugin is switched off.
    Disabled,
}

/// What a recorded call changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tripped {
    /// The key is now skipped until then.
    pub key_until: Option<Timestamp>,
    /// This call switched the plugin off.
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyState {
    /// Failures in a row.
    failures: u32,
    open_until: Option<Timestamp>,
    /// When the key last failed, to forget the oldest first.
    last_failure: Timestamp,
}

/// One plugin's breaker state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaker {
    keys: BTreeMap<String, KeyState>,
    /// Different keys that failed since the last success.
    failing: BTreeSet<String>,
    disabled: bool,
}

impl Breaker {
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Different keys that failed since the plugin last succeeded.
    pub fn failing_keys(&self) -> usize {
        self.failing.len()
    }

    /// Keys skipped at `now`, with until when.
    pub fn open_keys(&self, now: Timestamp) -> Vec<(String, Timestamp)> {
        self.keys
            .iter()
            .filter_map(|(k, s)| s.open_until.filter(|u| *u > now).map(|u| (k.clone(), u)))
            .collect()
    }

    /// Whether to call the plugin on an alert with `key` at `now`.
    pub fn admit(&self, key: &str, now: Timestamp) -> Admit {
        if self.disabled {
            return Admit::Disabled;
        }
        match self.keys.get(key) {
            Some(KeyState {
                open_until: Some(until),
                failures,
                ..
            }) if *until > now => Admit::Skip {
                until: *until,
                failures: *failures,
            },
            _ => Admit::Run,
        }
    }

    /// Records a call on `key` at `now`: a success closes the key and resets the count of failing
    /// keys; a failure may open the key, and may switch the plugin off.
    pub fn record(
        &mut self,
        key: &str,
        ok: bool,
        now: Timestamp,
        policy: BreakerPolicy,
    ) -> Tripped {
        if ok {
            self.keys.remove(key);
            self.failing.clear();
            return Tripped::default();
        }
        let state = self.keys.entry(key.to_string()).or_insert(KeyState {
            failures: 0,
            open_until: None,
            last_failure: now,
        });
        state.failures = state.failures.saturating_add(1);
        state.last_failure = now;
        let mut out = Tripped::default();
        if policy.key_after > 0 && state.failures >= policy.key_after {
            let until = now.plus(policy.cooldown.max(Duration::from_millis(1)));
            state.open_until = Some(until);
            out.key_until = Some(until);
        }
        self.failing.insert(key.to_string());
        if policy.disable_after > 0
            && self.failing.len() >= policy.disable_after as usize
            && !self.disabled
        {
            self.disabled = true;
            out.disabled = true;
        }
        self.forget_oldest();
        out
    }

    fn forget_oldest(&mut self) {
        while self.keys.len() > MAX_KEYS {
            let oldest = self
                .keys
                .iter()
                .min_by_key(|(_, s)| s.last_failure)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.keys.remove(&k);
                }
                None => return,
            }
        }
        // The failing set only counts towards `disable_after`; it needs no more than that many.
        while self.failing.len() > MAX_KEYS {
            let first = self.failing.iter().next().cloned();
            match first {
                Some(k) => {
                    self.failing.remove(&k);
                }
                None => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: u64 = 60_000;

    fn policy(key_after: u32, disable_after: u32) -> BreakerPolicy {
        BreakerPolicy {
            key_after,
            cooldown: Duration::from_millis(10 * MIN),
            disable_after,
        }
    }

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms as i64)
    }

    #[test]
    fn one_bad_key_is_skipped_for_a_while_and_the_others_run() {
        let p = policy(3, 10);
        let mut b = Breaker::default();
        for i in 0..2 {
            assert_eq!(b.record("chaos", false, at(i), p), Tripped::default());
        }
        let t = b.record("chaos", false, at(2), p);
        assert_eq!(t.key_until, Some(at(2 + 10 * MIN)));
        assert!(!t.disabled);
        assert_eq!(
            b.admit("chaos", at(3)),
            Admit::Skip {
                until: at(2 + 10 * MIN),
                failures: 3
            }
        );
        assert_eq!(b.admit("staging", at(3)), Admit::Run);
        // After the cooldown it is tried again; one more failure skips it again, a success closes it.
        assert_eq!(b.admit("chaos", at(2 + 10 * MIN)), Admit::Run);
        let again = b.record("chaos", false, at(20 * MIN), p);
        assert_eq!(again.key_until, Some(at(30 * MIN)));
        b.record("chaos", true, at(31 * MIN), p);
        assert_eq!(b.admit("chaos", at(31 * MIN)), Admit::Run);
        assert!(b.open_keys(at(31 * MIN)).is_empty());
    }

    #[test]
    fn many_different_failing_keys_switch_the_plugin_off_unless_never() {
        let mut b = Breaker::default();
        for i in 0..9 {
            assert!(
                !b.record(&format!("k{i}"), false, at(i), policy(3, 10))
                    .disabled
            );
        }
        assert!(b.record("k9", false, at(9), policy(3, 10)).disabled);
        assert_eq!(b.admit("other", at(10)), Admit::Disabled);

        let mut never = Breaker::default();
        for i in 0..5000 {
            never.record(&format!("k{i}"), false, at(i), policy(3, 0));
        }
        assert!(!never.is_disabled());
        assert!(never.keys.len() <= MAX_KEYS);
    }

    #[derive(Debug, Clone)]
    enum Step {
        Call { key: u8, ok: bool },
        Wait(u64),
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            prop_oneof![
                4 => (0u8..4, any::<bool>()).prop_map(|(key, ok)| Step::Call { key, ok }),
                1 => (0u64..(30 * MIN)).prop_map(Step::Wait),
            ],
            0..80,
        )
    }

    proptest! {
        /// Against a plain model: a key is skipped exactly when it has failed `key_after` times in a
        /// row and its last failure is less than a cooldown ago; the plugin is off exactly once
        /// `disable_after` different keys failed since the last success; a skipped or switched-off
        /// call is never made (so never recorded).
        #[test]
        fn the_breaker_follows_its_rules(key_after in 0u32..5, disable_after in 0u32..5, steps in steps()) {
            let p = policy(key_after, disable_after);
            let mut b = Breaker::default();
            let mut now = 0u64;
            let mut streak: BTreeMap<u8, (u32, u64)> = BTreeMap::new();
            let mut failing: BTreeSet<u8> = BTreeSet::new();
            let mut off = false;
            for step in steps {
                match step {
                    Step::Wait(ms) => now += ms,
                    Step::Call { key, ok } => {
                        let k = format!("k{key}");
                        let skipped = key_after > 0 && streak.get(&key).is_some_and(|(n, last)| {
                            *n >= key_after && now < last + 10 * MIN
                        });
                        let expected = if off {
                            Admit::Disabled
                        } else if skipped {
                            Admit::Skip { until: at(streak[&key].1 + 10 * MIN), failures: streak[&key].0 }
                        } else {
                            Admit::Run
                        };
                        prop_assert_eq!(b.admit(&k, at(now)), expected);
                        if expected != Admit::Run {
                            continue;
                        }
                        let t = b.record(&k, ok, at(now), p);
                        if ok {
                            streak.remove(&key);
                            failing.clear();
                            prop_assert_eq!(t, Tripped::default());
                        } else {
                            let e = streak.entry(key).or_insert((0, now));
                            e.0 += 1;
                            e.1 = now;
                            let opens = key_after > 0 && e.0 >= key_after;
                            prop_assert_eq!(t.key_until, opens.then(|| at(now + 10 * MIN)));
                            failing.insert(key);
                            let switch = disable_after > 0 && failing.len() >= disable_after as usize && !off;
                            prop_assert_eq!(t.disabled, switch);
                            off |= switch;
                        }
                        prop_assert_eq!(b.is_disabled(), off);
                    }
                }
            }
        }

        /// Failures on one key alone never switch the plugin off when it takes two keys or more.
        #[test]
        fn one_key_never_switches_the_plugin_off(disable_after in 2u32..20, n in 0usize..200) {
            let mut b = Breaker::default();
            for i in 0..n {
                b.record("chaos", false, at(i as u64 * MIN), policy(3, disable_after));
            }
            prop_assert!(!b.is_disabled());
        }
    }
}
