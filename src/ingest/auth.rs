//! Checking a sender's credentials for a source: bearer, basic, token or HMAC, in constant time; and
//! [`Replays`], the memory of signed requests already taken (ingest HMAC with a timestamp, Slack).

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, HmacConfig};
use crate::domain::time::Timestamp;
use crate::error::ApiError;

/// Compares secrets without leaking, through timing, how much of a guess was right, or its length:
/// both sides are hashed first, then compared in constant time.
pub fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    a.ct_eq(&b).into()
}

fn unauthorized(challenge: &'static str, detail: &str) -> ApiError {
    ApiError::Unauthorized {
        challenge,
        detail: detail.to_string(),
    }
}

/// The most signed requests [`Replays`] remembers at once. Only requests with a valid signature are
/// remembered, so only someone holding the secret (or a sender sending at over 300 requests a second
/// for a five-minute window) can fill it.
pub const MAX_REMEMBERED: usize = 100_000;

/// Signed requests already taken, each until its timestamp leaves the replay window (after that the
/// timestamp check refuses it anyway). Keyed on the decoded MAC bytes, never on the header text, so
/// the same signature written another way (hex upper case, a `sha256=` prefix, spaces) is the same
/// request.
///
/// Bounded: when [`MAX_REMEMBERED`] requests are still inside their windows, new signed requests are
/// refused with 503 (and `Retry-After`) rather than forgetting one that could then be replayed. Only
/// expired entries are ever evicted.
#[derive(Debug)]
pub struct Replays {
    cap: usize,
    inner: std::sync::Mutex<ReplayMemory>,
}

#[derive(Debug, Default)]
struct ReplayMemory {
    until: std::collections::HashMap<[u8; 32], Timestamp>,
    /// The same entries ordered by when they may be forgotten, so expiry is cheap.
    by_time: std::collections::BTreeSet<(Timestamp, [u8; 32])>,
}

/// What [`Replays::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// First time: now remembered.
    Fresh,
    /// Already taken inside its window.
    Seen,
    /// The memory is full of requests still inside their windows.
    Full,
}

impl Default for Replays {
    fn default() -> Self {
        Replays::new(MAX_REMEMBERED)
    }
}

impl Replays {
    pub fn new(cap: usize) -> Replays {
        Replays {
            cap,
            inner: std::sync::Mutex::new(ReplayMemory::default()),
        }
    }

    fn key(scope: &str, id: &[u8]) -> [u8; 32] {
        let mut key = Sha256::new();
        key.update((scope.len() as u64).to_be_bytes());
        key.update(scope.as_bytes());
        key.update(id);
        key.finalize().into()
    }

    fn memory(&self, now: Timestamp) -> std::sync::MutexGuard<'_, ReplayMemory> {
        // A poisoned lock only means another request panicked while holding it; the map is still
        // consistent enough to refuse replays.
        let mut m = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(&(at, k)) = m.by_time.first() {
            if at > now {
                break;
            }
            m.by_time.pop_first();
            m.until.remove(&k);
        }
        m
    }

    /// Whether a request (named by `scope` and `id`) was taken and is still remembered.
    pub fn contains(&self, scope: &str, id: &[u8], now: Timestamp) -> bool {
        self.memory(now).until.contains_key(&Self::key(scope, id))
    }

    /// Takes a signed request, named by `scope` (what it was sent to) and its decoded MAC (or
    /// another id the signature covers), and remembers it until `forget_at`.
    pub fn take(&self, scope: &str, mac: &[u8], forget_at: Timestamp, now: Timestamp) -> Replay {
        let key = Self::key(scope, mac);
        let mut m = self.memory(now);
        if m.until.contains_key(&key) {
            return Replay::Seen;
        }
        if m.until.len() >= self.cap {
            return Replay::Full;
        }
        m.until.insert(key, forget_at);
        m.by_time.insert((forget_at, key));
        Replay::Fresh
    }

    /// [`Replays::take`] as an HTTP answer: 401 for a replay, 503 when full.
    pub fn take_or_refuse(
        &self,
        scope: &str,
        mac: &[u8],
        forget_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        match self.take(scope, mac, forget_at, now) {
            Replay::Fresh => Ok(()),
            Replay::Seen => Err(unauthorized(
                "Signature",
                "this signed request was already taken: a replay",
            )),
            Replay::Full => {
                tracing::warn!(
                    scope,
                    "Too many signed requests inside their replay window; refusing new ones."
                );
                Err(ApiError::Overloaded {
                    status: axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    retry_after_secs: 5,
                    detail: "too many signed requests to remember right now; retry later".into(),
                })
            }
        }
    }
}

/// Whether this method needs the body (HMAC signs it), so the check must wait until it is read.
pub fn needs_body(auth: &AuthConfig) -> bool {
    matches!(auth, AuthConfig::Hmac(_))
}

/// Checks a request against the source's `auth`, and takes a timestamped signed request only once
/// (remembered in `replays` under `source`). Use this once the body is read.
pub fn check_once(
    auth: &AuthConfig,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    now: Timestamp,
    replays: &Replays,
    source: &str,
) -> Result<(), ApiError> {
    if let AuthConfig::Hmac(h) = auth {
        let signed = check_hmac(h, headers, body, now)?;
        if let Some(forget_at) = signed.forget_at {
            replays.take_or_refuse(source, &signed.mac, forget_at, now)?;
        }
        return Ok(());
    }
    check(auth, headers, query, body, now)
}

/// Checks a request against the source's `auth`. `body` may be empty for methods that do not need it.
/// Does not remember signed requests: see [`check_once`].
pub fn check(
    auth: &AuthConfig,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
    now: Timestamp,
) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match auth {
        AuthConfig::Bearer(secret) => {
            let given = header("authorization")
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .ok_or_else(|| unauthorized("Bearer", "send Authorization: Bearer <token>"))?;
            if secrets_match(given.trim().as_bytes(), secret.expose().as_bytes()) {
                Ok(())
            } else {
                Err(unauthorized("Bearer", "the bearer token is wrong"))
            }
        }
        AuthConfig::Basic { username, password } => {
            let encoded = header("authorization")
                .and_then(|v| {
                    v.strip_prefix("Basic ")
                        .or_else(|| v.strip_prefix("basic "))
                })
                .ok_or_else(|| {
                    unauthorized("Basic realm=\"tocsin\"", "send HTTP basic credentials")
                })?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    unauthorized("Basic realm=\"tocsin\"", "malformed basic credentials")
                })?;
            let (user, pass) = decoded.split_once(':').unwrap_or((&decoded, ""));
            // Evaluate both comparisons so timing does not reveal which part was wrong.
            let user_ok = secrets_match(user.as_bytes(), username.0.as_bytes());
            let pass_ok = secrets_match(pass.as_bytes(), password.expose().as_bytes());
            if user_ok & pass_ok {
                Ok(())
            } else {
                Err(unauthorized(
                    "Basic realm=\"tocsin\"",
                    "wrong username or password",
                ))
            }
        }
        AuthConfig::Token(secret) => {
            let from_query = query.and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "token")
                    .map(|(_, v)| percent_decode(v))
            });
            let given = header("x-tocsin-token")
                .map(str::to_string)
                .or(from_query)
                .ok_or_else(|| {
                    unauthorized("Token", "send the token in X-Tocsin-Token or as ?token=")
                })?;
            if secrets_match(given.as_bytes(), secret.expose().as_bytes()) {
                Ok(())
            } else {
                Err(unauthorized("Token", "the token is wrong"))
            }
        }
        AuthConfig::Hmac(h) => check_hmac(h, headers, body, now).map(|_| ()),
    }
}

/// A valid HMAC signature: its bytes, and until when it could be replayed (`None` without a
/// timestamp, when no window bounds it).
struct Signed {
    mac: Vec<u8>,
    forget_at: Option<Timestamp>,
}

/// HMAC-SHA256 over the raw body (or `timestamp:body`), hex, in one of the configured headers, by any
/// of the configured secrets (rotation). Timestamps are checked against `now` so a captured request
/// cannot be replayed later.
/// How long a signature whose timestamp is not signed (Sentry's) is remembered.
const UNSIGNED_TIMESTAMP_MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn check_hmac(
    h: &HmacConfig,
    headers: &HeaderMap,
    body: &[u8],
    now: Timestamp,
) -> Result<Signed, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let given = h.headers.iter().find_map(|n| header(n)).ok_or_else(|| {
        unauthorized(
            "Signature",
            &format!("missing the {} header", h.headers.join(" or ")),
        )
    })?;
    let hex_part = given.trim().strip_prefix("sha256=").unwrap_or(given.trim());
    let signature = hex::decode(hex_part)
        .map_err(|_| unauthorized("Signature", "the signature is not hex-encoded HMAC-SHA256"))?;
    // The latest moment a request with this timestamp is still inside the window.
    let mut forget_at: Option<Timestamp> = None;
    let mut fresh = |name: &str| -> Result<String, ApiError> {
        let ts = header(name)
            .ok_or_else(|| unauthorized("Signature", &format!("missing the {name} header")))?
            .trim()
            .to_string();
        // Unix seconds; Sentry sends them with a fraction.
        let secs: f64 = ts
            .parse()
            .map_err(|_| unauthorized("Signature", &format!("{name} is not a Unix time")))?;
        let skew = (now.as_millis() as f64 / 1000.0 - secs).abs();
        if !skew.is_finite() || skew > h.max_skew.as_secs_f64() {
            return Err(unauthorized(
                "Signature",
                &format!(
                    "{name} is more than {}s away from now: stale or replayed",
                    h.max_skew.as_secs()
                ),
            ));
        }
        let until = Timestamp::from_millis((secs * 1000.0) as i64).plus(h.max_skew);
        forget_at = Some(forget_at.map_or(until, |f: Timestamp| f.max(until)));
        Ok(ts)
    };
    // A replay header (Sentry's) is required: without it nothing bounds a captured request. Its
    // timestamp is not signed, though, so a replay could carry a fresh one: such signatures are
    // remembered for a day rather than for the window.
    if let Some(name) = &h.replay_header {
        fresh(name)?;
    }
    let unsigned_window = h.replay_header.is_some() && h.timestamp_header.is_none();
    let signed_ts = match &h.timestamp_header {
        Some(name) => Some(fresh(name)?),
        None => None,
    };
    if unsigned_window {
        forget_at = Some(now.plus(UNSIGNED_TIMESTAMP_MEMORY));
    }
    let ok = h.secrets.iter().fold(false, |acc, secret| {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
            return acc;
        };
        if let Some(ts) = &signed_ts {
            mac.update(ts.as_bytes());
            mac.update(b":");
        }
        mac.update(body);
        acc | mac.verify_slice(&signature).is_ok()
    });
    if ok {
        Ok(Signed {
            mac: signature,
            forget_at,
        })
    } else {
        Err(unauthorized(
            "Signature",
            "the signature does not match the body",
        ))
    }
}

/// Decodes `%XX` escapes and `+` in a query value.
fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let pair = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(pair, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use axum::http::HeaderValue;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    #[test]
    fn replays_are_refused_until_forgotten_and_the_memory_is_bounded() {
        let r = Replays::new(2);
        let later = T0.plus(std::time::Duration::from_secs(300));
        assert_eq!(r.take("a", b"mac1", later, T0), Replay::Fresh);
        assert_eq!(r.take("a", b"mac1", later, T0), Replay::Seen);
        // The same MAC sent to another scope is another request.
        assert_eq!(r.take("b", b"mac1", later, T0), Replay::Fresh);
        // Full of requests still in their window: refuse, never forget one.
        assert_eq!(r.take("a", b"mac2", later, T0), Replay::Full);
        assert_eq!(r.take("a", b"mac1", later, T0), Replay::Seen);
        // Once their window has passed they are forgotten, and there is room again.
        assert_eq!(
            r.take(
                "a",
                b"mac2",
                later.plus(std::time::Duration::from_secs(600)),
                later
            ),
            Replay::Fresh
        );
        assert!(r.contains("a", b"mac2", later));
        assert!(!r.contains("a", b"mac1", later));
    }

    #[test]
    fn a_timestamped_signature_is_taken_once_however_its_hex_is_written() {
        let auth = AuthConfig::Hmac(HmacConfig {
            secrets: vec![Secret::new("k")],
            headers: vec!["X-Sig".into()],
            timestamp_header: Some("X-Ts".into()),
            replay_header: None,
            max_skew: std::time::Duration::from_secs(300),
        });
        let body = br#"{"a":1}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
        mac.update(b"1700000000:");
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        let replays = Replays::default();
        let send = |sig: &str| {
            check_once(
                &auth,
                &headers(&[("x-sig", sig), ("x-ts", "1700000000")]),
                None,
                body,
                T0,
                &replays,
                "src",
            )
        };
        assert!(send(&sig).is_ok());
        for again in [sig.clone(), sig.to_uppercase(), format!("sha256={sig}")] {
            match send(&again) {
                Err(ApiError::Unauthorized { detail, .. }) => {
                    assert!(detail.contains("replay"), "{detail}")
                }
                other => panic!("{again}: {other:?}"),
            }
        }
    }

    #[test]
    fn timestamped_hmac_signs_timestamp_and_body_and_refuses_stale_ones() {
        let auth = AuthConfig::Hmac(HmacConfig {
            secrets: vec![Secret::new("k")],
            headers: vec!["X-Sig".into()],
            timestamp_header: Some("X-Ts".into()),
            replay_header: None,
            max_skew: std::time::Duration::from_secs(300),
        });
        let body = br#"{"a":1}"#;
        let sign = |ts: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
            mac.update(format!("{ts}:").as_bytes());
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        };
        let now = "1700000000";
        let ok = headers(&[("x-sig", &sign(now)), ("x-ts", now)]);
        assert!(check(&auth, &ok, None, body, T0).is_ok());
        // The timestamp is signed: changing it breaks the signature.
        let moved = headers(&[("x-sig", &sign(now)), ("x-ts", "1700000001")]);
        assert!(check(&auth, &moved, None, body, T0).is_err());
        // Signed, but 10 minutes old.
        let old = "1699999400";
        let stale = headers(&[("x-sig", &sign(old)), ("x-ts", old)]);
        assert!(check(&auth, &stale, None, body, T0).is_err());
        let missing = headers(&[("x-sig", &sign(now))]);
        assert!(check(&auth, &missing, None, body, T0).is_err());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer() {
        let auth = AuthConfig::Bearer(Secret::new("s3cret"));
        assert!(check(
            &auth,
            &headers(&[("authorization", "Bearer s3cret")]),
            None,
            b"",
            T0
        )
        .is_ok());
        assert!(check(
            &auth,
            &headers(&[("authorization", "Bearer nope")]),
            None,
            b"",
            T0
        )
        .is_err());
        assert!(check(&auth, &HeaderMap::new(), None, b"", T0).is_err());
    }

    #[test]
    fn token_in_header_or_query() {
        let auth = AuthConfig::Token(Secret::new("a b&c"));
        assert!(check(
            &auth,
            &headers(&[("x-tocsin-token", "a b&c")]),
            None,
            b"",
            T0
        )
        .is_ok());
        assert!(check(
            &auth,
            &HeaderMap::new(),
            Some("x=1&token=a%20b%26c"),
            b"",
            T0
        )
        .is_ok());
        assert!(check(&auth, &HeaderMap::new(), Some("token=wrong"), b"", T0).is_err());
        assert!(check(&auth, &HeaderMap::new(), Some("token=%"), b"", T0).is_err());
    }

    #[test]
    fn hmac_over_raw_body_with_rotation() {
        let auth = AuthConfig::Hmac(HmacConfig {
            secrets: vec![Secret::new("old"), Secret::new("new")],
            headers: vec!["X-Sig".into()],
            timestamp_header: None,
            replay_header: None,
            max_skew: std::time::Duration::from_secs(300),
        });
        let body = br#"{"title":"x"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"new").unwrap();
        mac.update(body);
        let sig = hex::encode(mac.finalize().into_bytes());
        assert!(check(&auth, &headers(&[("x-sig", &sig)]), None, body, T0).is_ok());
        let prefixed = format!("sha256={sig}");
        assert!(check(&auth, &headers(&[("x-sig", &prefixed)]), None, body, T0).is_ok());
        assert!(check(
            &auth,
            &headers(&[("x-sig", &sig)]),
            None,
            br#"{"title": "x"}"#,
            T0
        )
        .is_err());
        assert!(check(&auth, &HeaderMap::new(), None, body, T0).is_err());
    }

    #[test]
    fn basic() {
        let auth = AuthConfig::Basic {
            username: crate::config::Env("am".into()),
            password: Secret::new("pw"),
        };
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("am:pw")
        );
        let bad = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("am:px")
        );
        assert!(check(&auth, &headers(&[("authorization", &good)]), None, b"", T0).is_ok());
        assert!(check(&auth, &headers(&[("authorization", &bad)]), None, b"", T0).is_err());
    }
}
