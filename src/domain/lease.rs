//! Leases: who does a piece of shared work (the journal, a room's outbox, ...) when several tocsin
//! instances share one database. Pure: the store reads the current lease in a transaction, asks
//! [`claim`], and writes the answer.
//!
//! A lease names its holder and when it expires; the holder renews it well before then. Its `token`
//! grows every time the lease changes hands (never on a renewal), so work done under an old token can be
//! refused (fencing): an instance that was paused past its lease and wakes up holds a token that is no
//! longer the current one.

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
