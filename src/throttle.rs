//! Throttling credential guessers: failed sign-ins (`POST /login`) and failed API bearer tokens,
//! counted per client address.
//!
//! Only failures count. After [`MAX_FAILURES`] failures from one address within [`WINDOW`], every
//! further attempt from it (right or wrong: a guesser must not learn that a guess was right) is
//! refused with 429, a JSON body and `Retry-After`, until the oldest of those failures is older than
//! the window. Requests that carry a valid session cookie are not attempts and are never throttled.
//!
//! The client address is the TCP peer, or, with `web.client_ip_header` set (behind a reverse proxy
//! that sets it), the last address in that header. IPv6 addresses count per /64, since one host
//! usually has a whole /64. The table is bounded: at [`MAX_CLIENTS`] addresses, ones without a
//! failure in the window are forgotten first, then the one whose last failure is oldest.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{Extensions, HeaderMap, StatusCode};

use crate::domain::time::Timestamp;
use crate::error::ApiError;

/// Failures one address may have within [`WINDOW`] before it is throttled.
pub const MAX_FAILURES: usize = 10;
/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The most addresses remembered at once.
pub const MAX_CLIENTS: usize = 10_000;

/// Recent failures per client address.
#[derive(Debug, Default)]
pub struct Failures {
    by_client: Mutex<HashMap<String, VecDeque<Timestamp>>>,
}

impl Failures {
    /// `Err(429)` while `client` is throttled.
    pub fn check(&self, client: &str, now: Timestamp) -> Result<(), ApiError> {
        let mut map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = map.get_mut(client) else {
            return Ok(());
        };
        expire(times, now);
        if times.len() < MAX_FAILURES {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        let free_at = oldest.plus(WINDOW);
        let wait_ms = (free_at.as_millis() - now.as_millis()).max(1000);
        Err(ApiError::Overloaded {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after_secs: (wait_ms as u64).div_ceil(1000),
            detail: format!(
                "too many failed sign-ins or tokens from this address ({MAX_FAILURES} in {} minutes); try again later",
                WINDOW.as_secs() / 60
            ),
        })
    }

    /// Counts one failure from `client`.
    pub fn record(&self, client: &str, now: Timestamp) {
        let mut map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(client) && map.len() >= MAX_CLIENTS {
            map.retain(|_, times| {
                expire(times, now);
                !times.is_empty()
            });
            if map.len() >= MAX_CLIENTS {
                let stalest = map
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    map.remove(&k);
                }
            }
        }
        let times = map.entry(client.to_string()).or_default();
        expire(times, now);
        times.push_back(now);
        // Only the newest ones decide anything.
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }
}

fn expire(times: &mut VecDeque<Timestamp>, now: Timestamp) {
    while times.front().is_some_and(|t| t.plus(WINDOW) <= now) {
        times.pop_front();
    }
}

/// The client address a request is counted under (see the module docs).
/// `ip_header` is `web.client_ip_header`, when set.
pub fn client(ip_header: Option<&str>, headers: &HeaderMap, extensions: &Extensions) -> String {
    let from_header = ip_header
        .and_then(|name| headers.get(name))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok());
    let peer = extensions
        .get::<crate::listen::Peer>()
        .map(|crate::listen::Peer(a)| a.ip());
    match from_header.or(peer) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map_or_else(String::new, |v4| v4.to_string()),
        Some(ip) => ip.to_string(),
        // Served without connection info: everyone counts as one client.
        None => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_throttle_until_the_oldest_leaves_the_window() {
        let f = Failures::default();
        let t0 = Timestamp::from_millis(1_700_000_000_000);
        for i in 0..MAX_FAILURES {
            assert!(f.check("a", t0).is_ok(), "failure {i}");
            f.record("a", t0.plus(Duration::from_secs(i as u64)));
        }
        let now = t0.plus(Duration::from_secs(60));
        match f.check("a", now) {
            Err(ApiError::Overloaded {
                status,
                retry_after_secs,
                ..
            }) => {
                assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
                assert_eq!(retry_after_secs, WINDOW.as_secs() - 60);
            }
            other => panic!("{other:?}"),
        }
        // Another address is not affected.
        assert!(f.check("b", now).is_ok());
        // Once the oldest failure is older than the window, one more attempt is allowed.
        assert!(f.check("a", t0.plus(WINDOW)).is_ok());
    }

    #[test]
    fn the_table_is_bounded() {
        let f = Failures::default();
        let t0 = Timestamp::from_millis(1_700_000_000_000);
        for i in 0..MAX_CLIENTS + 10 {
            f.record(&format!("c{i}"), t0);
        }
        assert!(f.by_client.lock().unwrap().len() <= MAX_CLIENTS);
    }
}
