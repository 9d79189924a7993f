//! Leases: who does a piece of shared work (the journal, a room's outbox, ...) when several tocsin
//! instances share one database. Pure: the store reads the current lease in a transaction, asks
//! [`claim`], and writes the answer.
//!
//! A lease names its holder and when it expires; the holder renews it well before then. Its `token`
//! grows every time the lease changes hands (never on a renewal), so work done under an old token can be
//! refused (fencing): an instance that was paused past its lease and wakes up holds a token that is no
//! longer the current one.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::time::Timestamp;

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub name: String,
    /// Empty when nobody holds it.
    pub holder: String,
    /// Grows whenever the lease changes hands.
    pub token: i64,
    pub expires_at: Timestamp,
}

impl Lease {
    /// Whether `holder` may act under this lease at `now`.
    pub fn held_by(&self, holder: &str, now: Timestamp) -> bool {
        !holder.is_empty() && self.holder == holder && now < self.expires_at
    }

    fn free_at(&self, now: Timestamp) -> bool {
        self.holder.is_empty() || now >= self.expires_at
    }
}

/// What `holder` asking for lease `name` at `now`, for `ttl_ms`, comes to: `Some(lease)` to store (taken
/// or renewed), `None` when someone else holds it.
pub fn claim(
    current: Option<&Lease>,
    name: &str,
    holder: &str,
    now: Timestamp,
    ttl_ms: i64,
) -> Option<Lease> {
    let expires_at = Timestamp::from_millis(now.as_millis().saturating_add(ttl_ms.max(1)));
    match current {
        Some(l) if l.held_by(holder, now) => Some(Lease {
            expires_at,
            ..l.clone()
        }),
        Some(l) if !l.free_at(now) => None,
        _ => Some(Lease {
            name: name.to_string(),
            holder: holder.to_string(),
            token: current.map_or(0, |l| l.token) + 1,
            expires_at,
        }),
    }
}

/// The lease after `holder` lets it go (unchanged when someone else holds it).
pub fn release(current: &Lease, holder: &str) -> Lease {
    if current.holder == holder {
        Lease {
            holder: String::new(),
            ..current.clone()
        }
    } else {
        current.clone()
    }
}

/// Proof of holding a lease, carried by work done under it: the store refuses a write whose fence is no
/// longer the lease's current holder and token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub token: i64,
}

/// What one round of an instance's lease keeping does with a lease it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// It holds the lease and keeps it.
    Renew,
    /// The lease is free and this instance takes it.
    Take,
    /// It holds more than its share: it lets this one go for an instance with fewer.
    Release,
    /// Someone else holds it, or this instance has its share already.
    Leave,
}

/// An instance's share of `wanted` leases when `live` instances (itself included) share them: the
/// quotient rounded up, so every lease has a taker.
pub fn share(wanted: usize, live: usize) -> usize {
    wanted.div_ceil(live.max(1))
}

/// One round of lease keeping for instance `me`: for each wanted lease (by name), whether it renews,
/// takes, releases or leaves it, given the leases as stored (`current`), how many instances are live,
/// and which leases were free at its previous round (`free_before`).
///
/// Work is shared fairly: an instance takes a free lease only while it holds fewer than its share, and
/// gives up one lease per round while it holds more (the others take it). A lease still free a round
/// later is taken by whoever sees it, share or not, so no work waits for the shares to settle.
pub fn plan(
    wanted: &[String],
    current: &BTreeMap<String, Lease>,
    me: &str,
    live: usize,
    free_before: &BTreeSet<String>,
    now: Timestamp,
) -> Vec<(String, Move)> {
    let share = share(wanted.len(), live);
    let mine: Vec<&String> = wanted
        .iter()
        .filter(|n| current.get(*n).is_some_and(|l| l.held_by(me, now)))
        .collect();
    // The lease to give up this round, if over the share: the last by name, so it is predictable.
    let give_up = (mine.len() > share).then(|| mine[mine.len() - 1].clone());
    let mut held = mine.len() - usize::from(give_up.is_some());
    wanted
        .iter()
        .map(|name| {
            let lease = current.get(name);
            let m = match lease {
                Some(l) if l.held_by(me, now) => {
                    if give_up.as_ref() == Some(name) {
                        Move::Release
                    } else {
                        Move::Renew
                    }
                }
                Some(l) if !l.free_at(now) => Move::Leave,
                _ if held < share || free_before.contains(name) => {
                    held += 1;
                    Move::Take
                }
                _ => Move::Leave,
            };
            (name.clone(), m)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TTL: i64 = 10_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn taken_renewed_refused_then_taken_over_after_expiry() {
        let a = claim(None, "journal", "a", at(0), TTL).unwrap();
        assert_eq!(
            (a.holder.as_str(), a.token, a.expires_at),
            ("a", 1, at(TTL))
        );
        let renewed = claim(Some(&a), "journal", "a", at(5_000), TTL).unwrap();
        assert_eq!((renewed.token, renewed.expires_at), (1, at(15_000)));
        assert_eq!(claim(Some(&renewed), "journal", "b", at(14_999), TTL), None);
        let b = claim(Some(&renewed), "journal", "b", at(15_000), TTL).unwrap();
        assert_eq!((b.holder.as_str(), b.token), ("b", 2));
        // a woke up late: its renewal is a new claim, refused while b holds it.
        assert_eq!(claim(Some(&b), "journal", "a", at(15_001), TTL), None);
        let freed = release(&b, "b");
        assert_eq!(release(&b, "a"), b);
        let a2 = claim(Some(&freed), "journal", "a", at(15_002), TTL).unwrap();
        assert_eq!((a2.holder.as_str(), a2.token), ("a", 3));
    }

    fn held(name: &str, holder: &str, until: i64) -> (String, Lease) {
        (
            name.to_string(),
            Lease {
                name: name.to_string(),
                holder: holder.to_string(),
                token: 1,
                expires_at: at(until),
            },
        )
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("l{i}")).collect()
    }

    #[test]
    fn a_lone_instance_takes_everything_then_gives_up_one_per_round_to_a_newcomer() {
        let wanted = names(4);
        let none = BTreeSet::new();
        let first = plan(&wanted, &BTreeMap::new(), "a", 1, &none, at(0));
        assert!(first.iter().all(|(_, m)| *m == Move::Take));
        let all_a: BTreeMap<_, _> = wanted.iter().map(|n| held(n, "a", TTL)).collect();
        // b arrived: a's share is 2 of 4; it lets the last one go, keeps the rest.
        let moves = plan(&wanted, &all_a, "a", 2, &none, at(1));
        let releases: Vec<_> = moves.iter().filter(|(_, m)| *m == Move::Release).collect();
        assert_eq!(releases, [&("l3".to_string(), Move::Release)]);
        // b takes free leases up to its share, and not the ones a holds.
        let mut half: BTreeMap<_, _> = all_a.clone();
        half.remove("l3");
        half.remove("l2");
        let b = plan(&wanted, &half, "b", 2, &none, at(1));
        assert_eq!(
            b.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
            [Move::Leave, Move::Leave, Move::Take, Move::Take]
        );
    }

    #[test]
    fn a_lease_left_free_for_a_round_is_taken_beyond_the_share() {
        let wanted = names(3);
        let current: BTreeMap<_, _> = [held("l0", "a", TTL), held("l1", "a", TTL)]
            .into_iter()
            .collect();
        // a holds 2 of 3 with 2 live: its share is 2, so l2 waits for the other instance...
        let first = plan(&wanted, &current, "a", 2, &BTreeSet::new(), at(1));
        assert_eq!(first[2], ("l2".to_string(), Move::Leave));
        // ...unless it was free at a's previous round too (the other instance is slow or stuck).
        let free: BTreeSet<String> = ["l2".to_string()].into();
        let second = plan(&wanted, &current, "a", 2, &free, at(2));
        assert_eq!(second[2], ("l2".to_string(), Move::Take));
        // An expired lease is free.
        let expired: BTreeMap<_, _> = [held("l0", "c", 5)].into_iter().collect();
        let c = plan(&names(1), &expired, "a", 3, &BTreeSet::new(), at(5));
        assert_eq!(c[0].1, Move::Take);
    }

    proptest! {
        /// Rounds of every live instance, in any order, until nothing moves: every lease has one holder,
        /// and no instance holds more than its share.
        #[test]
        fn rounds_settle_on_fair_shares(
            n_leases in 1usize..12,
            order in proptest::collection::vec(0usize..3, 30..80),
        ) {
            let wanted = names(n_leases);
            let holders = ["a", "b", "c"];
            let mut current: BTreeMap<String, Lease> = BTreeMap::new();
            let mut free_before: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
            let now = at(1_000);
            // Each instance gets at least a few rounds, in the given interleaving, then all in turn.
            let rounds = order.iter().copied().chain((0..3 * (n_leases + 2)).map(|i| i % 3));
            for who in rounds {
                let me = holders[who];
                let free: BTreeSet<String> = free_before.get(me).cloned().unwrap_or_default();
                let moves = plan(&wanted, &current, me, 3, &free, now);
                let mut free_now = BTreeSet::new();
                for (name, m) in moves {
                    match m {
                        Move::Take | Move::Renew => {
                            let prev = current.get(&name).cloned();
                            let next = claim(prev.as_ref(), &name, me, now, TTL);
                            prop_assert!(next.is_some(), "{me} could not {m:?} {name}");
                            current.insert(name, next.unwrap());
                        }
                        Move::Release => {
                            let l = current[&name].clone();
                            // Not remembered as free: taking it back next round would undo the release.
                            current.insert(name, release(&l, me));
                        }
                        Move::Leave => {
                            if current.get(&name).is_none_or(|l| l.free_at(now)) {
                                free_now.insert(name);
                            }
                        }
                    }
                }
                free_before.insert(me, free_now);
            }
            let cap = share(n_leases, 3);
            for name in &wanted {
                prop_assert!(current.get(name).is_some_and(|l| !l.free_at(now)), "{name} has no holder");
            }
            for h in holders {
                let n = current.values().filter(|l| l.held_by(h, now)).count();
                prop_assert!(n <= cap, "{h} holds {n} > {cap}");
            }
        }
    }

    proptest! {
        /// Whatever the order of claims and releases, at most one holder is current at any moment, and
        /// the token grows exactly when the holder changes.
        #[test]
        fn one_holder_at_a_time_and_tokens_fence(
            steps in proptest::collection::vec((0usize..3, 0i64..30_000, any::<bool>()), 1..60)
        ) {
            let holders = ["a", "b", "c"];
            let mut current: Option<Lease> = None;
            let mut now = 0;
            for (who, advance, release_it) in steps {
                now += advance / 10;
                let holder = holders[who];
                let before = current.clone();
                if release_it {
                    if let Some(l) = &current {
                        current = Some(release(l, holder));
                    }
                    continue;
                }
                if let Some(next) = claim(current.as_ref(), "x", holder, at(now), TTL) {
                    if let Some(prev) = &before {
                        prop_assert!(!prev.held_by(&next.holder, at(now)) || prev.holder == next.holder);
                        let others_current = holders
                            .iter()
                            .any(|h| *h != holder && prev.held_by(h, at(now)));
                        prop_assert!(!others_current, "{holder} took a lease {prev:?} still held");
                        if prev.holder == next.holder && prev.held_by(holder, at(now)) {
                            prop_assert_eq!(next.token, prev.token);
                        } else {
                            prop_assert_eq!(next.token, prev.token + 1);
                        }
                    }
                    current = Some(next);
                }
            }
        }
    }
}
