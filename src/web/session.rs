//! Browser sessions and CSRF tokens: stateless, HMAC-SHA256-signed cookie values.
//!
//! The `tocsin_session` cookie holds `<member>.<expiry ms>.<mac>`, where the MAC covers the member's
//! name, the expiry and the member's current API token. Nothing is kept on the server: a session stops
//! working when it expires, when the member leaves the config, or when their token is removed or
//! changed. Every state-changing request made with the cookie must also carry the CSRF token derived
//! from it (`HMAC(key, "csrf:" + cookie)`), in the `X-CSRF-Token` header or a `csrf` form field.
//!
//! The key is `web.session_secret`, or random bytes made once per process start.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Method};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Role;
use crate::domain::time::Timestamp;
use crate::error::ApiError;
use crate::state::{AppState, Member};

/// The session cookie's name.
pub const COOKIE: &str = "tocsin_session";
/// The sign-in form's nonce cookie (login CSRF protection).
pub const LOGIN_COOKIE: &str = "tocsin_login";
/// The header fetch calls carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

type HmacSha256 = Hmac<Sha256>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signed-in browser: the member (as the config says now) and the CSRF token of this session.
#[derive(Debug, Clone)]
pub struct Session {
    pub member: Member,
    /// The cookie value, as the browser sent it.
    pub value: String,
    pub csrf: String,
}

/// The signing key: the configured secret, or random bytes made once per process.
fn key(state: &AppState) -> Vec<u8> {
    static RANDOM: OnceLock<[u8; 32]> = OnceLock::new();
    match state
        .config
        .web
        .as_ref()
        .and_then(|w| w.session_secret.as_ref())
    {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => RANDOM.get_or_init(rand::random::<[u8; 32]>).to_vec(),
    }
}

fn mac(state: &AppState, parts: &[&[u8]]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(&key(state)).expect("HMAC takes keys of any length");
    for p in parts {
        // Length-prefixed, so no two different part lists sign the same bytes.
        m.update(&(p.len() as u64).to_be_bytes());
        m.update(p);
    }
    m
}

fn sign(state: &AppState, parts: &[&[u8]]) -> String {
    B64.encode(mac(state, parts).finalize().into_bytes())
}

/// Constant-time check of a base64 MAC.
fn verify(state: &AppState, parts: &[&[u8]], given: &str) -> bool {
    match B64.decode(given) {
        Ok(bytes) => mac(state, parts).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

/// The member's current token: sessions are bound to it, so removing or changing it signs them out.
fn current_token<'a>(state: &'a AppState, name: &str) -> Option<&'a str> {
    state
        .config
        .members
        .get(name)
        .and_then(|m| m.token.as_ref())
        .map(|t| t.expose())
}

/// How long a sign-in lasts (`web.session_ttl`).
pub fn ttl(state: &AppState) -> Duration {
    state.config.web.clone().unwrap_or_default().ttl()
}

/// A new session cookie value for a member who has a token.
pub fn issue(state: &AppState, name: &str) -> Option<String> {
    let token = current_token(state, name)?;
    let expires = state.clock.now().plus(ttl(state)).as_millis().to_string();
    let signature = sign(
        state,
        &[
            b"session",
            name.as_bytes(),
            expires.as_bytes(),
            token.as_bytes(),
        ],
    );
    Some(format!("{name}.{expires}.{signature}"))
}

/// Checks a cookie value: signature, expiry, and that the member still exists with the same token.
pub fn check(state: &AppState, value: &str) -> Option<Session> {
    let mut it = value.splitn(3, '.');
    let (name, expires, signature) = (it.next()?, it.next()?, it.next()?);
    let token = current_token(state, name)?;
    if !verify(
        state,
        &[
            b"session",
            name.as_bytes(),
            expires.as_bytes(),
            token.as_bytes(),
        ],
        signature,
    ) {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    if state.clock.now() >= Timestamp::from_millis(expires) {
        return None;
    }
    let role: Role = state.config.members.get(name)?.role;
    Some(Session {
        member: Member {
            name: name.to_string(),
            role,
            via: "web",
        },
        csrf: csrf_for(state, value),
        value: value.to_string(),
    })
}

/// The CSRF token that goes with a session cookie value.
pub fn csrf_for(state: &AppState, session: &str) -> String {
    sign(state, &[b"csrf:", session.as_bytes()])
}

/// Whether `given` is the CSRF token of this session (constant time).
pub fn csrf_ok(state: &AppState, session: &Session, given: &str) -> bool {
    verify(state, &[b"csrf:", session.value.as_bytes()], given.trim())
}

/// The sign-in form's CSRF token for a login nonce (the nonce lives in the [`LOGIN_COOKIE`]).
pub fn login_csrf(state: &AppState, nonce: &str) -> String {
    sign(state, &[b"login-csrf:", nonce.as_bytes()])
}

pub fn login_csrf_ok(state: &AppState, nonce: &str, given: &str) -> bool {
    !nonce.is_empty() && verify(state, &[b"login-csrf:", nonce.as_bytes()], given.trim())
}

/// A fresh random login nonce.
pub fn new_nonce() -> String {
    B64.encode(rand::random::<[u8; 18]>())
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The request's session, if its cookie is valid. Does not check CSRF.
pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    check(state, cookie(headers, COOKIE)?)
}

/// For the API's member extractor: the member signed in with the session cookie, `None` without a
/// valid one. Requests that may change something (not GET or HEAD) must carry the session's CSRF
/// token in `X-CSRF-Token`, or are refused with 403.
pub fn api_member(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Member>, ApiError> {
    let Some(session) = from_headers(state, headers) else {
        return Ok(None);
    };
    if method != Method::GET && method != Method::HEAD {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if given.is_empty() {
            return Err(csrf_refused("the X-CSRF-Token header is missing"));
        }
        if !csrf_ok(state, &session, given) {
            return Err(csrf_refused(
                "the X-CSRF-Token header does not match the session",
            ));
        }
    }
    Ok(Some(session.member))
}

/// 403 for a request without the right CSRF token.
pub fn csrf_refused(why: &str) -> ApiError {
    ApiError::Forbidden(format!(
        "csrf: {why}; requests made with the session cookie must carry its CSRF token (reload the page)"
    ))
}

fn secure(state: &AppState) -> &'static str {
    if state.config.public_url.0.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(state: &AppState, value: &str) -> HeaderValue {
    let text = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl(state).as_secs(),
        secure(state)
    );
    HeaderValue::from_str(&text).expect("cookie values are base64 and digits")
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    let text = format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(state)
    );
    HeaderValue::from_str(&text).expect("a fixed cookie")
}

/// `Set-Cookie` for the sign-in form's nonce (only sent back to `/login`).
pub fn set_login_cookie(state: &AppState, nonce: &str) -> HeaderValue {
    let text = format!(
        "{LOGIN_COOKIE}={nonce}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(state)
    );
    HeaderValue::from_str(&text).expect("nonces are base64")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tocsin_session=bob.1.xyz ; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("bob.1.xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
