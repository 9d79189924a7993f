//! Browser sessions and CSRF tokens: HMAC-SHA256-signed cookie values, ended on the server by a
//! per-member session generation.
//!
//! The session cookie holds `<member>.<expiry ms>.<generation>.<mac>`, where the MAC covers the
//! member's name, the expiry, the generation and the digest of the member's current API token. A
//! session stops working when it expires, when the member leaves the config or their token is removed
//! or changed (both take effect on reload), and when the member signs out: signing out bumps the
//! member's generation in the store (`session_generations`), which ends every session issued before,
//! in every browser, including a copied cookie, and keeps them ended across restarts. Every
//! state-changing request made with the cookie must also carry the CSRF token derived from it
//! (`HMAC(key, "csrf:" + cookie)`), in the `X-CSRF-Token` header or a `csrf` form field.
//!
//! When `public_url` is `https://`, cookies are `Secure` and named with the `__Host-` prefix (the
//! browser then refuses them from plain HTTP or a sibling domain); a plain-HTTP `public_url` (local
//! development) keeps plain names.
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
use crate::store::StoreError;

/// The session cookie's name (with `__Host-` in front when cookies are `Secure`).
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

/// How long a sign-in lasts (`web.session_ttl`).
pub fn ttl(state: &AppState) -> Duration {
    state.config.web.clone().unwrap_or_default().ttl()
}

fn session_mac_parts<'a>(
    name: &'a str,
    expires: &'a str,
    generation: &'a str,
    token: &'a [u8; 32],
) -> [&'a [u8]; 5] {
    [
        b"session",
        name.as_bytes(),
        expires.as_bytes(),
        generation.as_bytes(),
        token,
    ]
}

/// A new session cookie value for a member who has a token, in their current generation.
pub async fn issue(state: &AppState, name: &str) -> Result<Option<String>, StoreError> {
    let Some(token) = state.members.token_digest(name) else {
        return Ok(None);
    };
    let generation = state
        .sessions
        .generation(state.store.as_ref(), name)
        .await?
        .to_string();
    let expires = state.clock.now().plus(ttl(state)).as_millis().to_string();
    let signature = sign(
        state,
        &session_mac_parts(name, &expires, &generation, &token),
    );
    Ok(Some(format!("{name}.{expires}.{generation}.{signature}")))
}

/// Checks a cookie value: signature, expiry, that the member still exists with the same token, and
/// that they have not signed out since (the generation).
pub async fn check(state: &AppState, value: &str) -> Option<Session> {
    // From the right: member names are checked by the config, but the MAC and numbers never hold dots.
    let mut it = value.rsplitn(4, '.');
    let (signature, generation, expires, name) = (it.next()?, it.next()?, it.next()?, it.next()?);
    let token = state.members.token_digest(name)?;
    if !verify(
        state,
        &session_mac_parts(name, expires, generation, &token),
        signature,
    ) {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    if state.clock.now() >= Timestamp::from_millis(expires) {
        return None;
    }
    let generation: i64 = generation.parse().ok()?;
    match state.sessions.generation(state.store.as_ref(), name).await {
        Ok(current) if current == generation => {}
        Ok(_) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read session generations; treating the session as ended.");
            return None;
        }
    }
    let role: Role = state.members.role(name)?;
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

/// The session cookie's name: `__Host-tocsin_session` when cookies are `Secure`.
pub fn cookie_name(state: &AppState) -> &'static str {
    if is_secure(state) {
        "__Host-tocsin_session"
    } else {
        COOKIE
    }
}

/// The login nonce cookie's name: `__Host-tocsin_login` when cookies are `Secure`.
pub fn login_cookie_name(state: &AppState) -> &'static str {
    if is_secure(state) {
        "__Host-tocsin_login"
    } else {
        LOGIN_COOKIE
    }
}

/// The request's session, if its cookie is valid. Does not check CSRF.
pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    check(state, cookie(headers, cookie_name(state))?).await
}

/// For the API's member extractor: the member signed in with the session cookie, `None` without a
/// valid one. Requests that may change something (not GET or HEAD) must carry the session's CSRF
/// token in `X-CSRF-Token`, or are refused with 403.
pub async fn api_member(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<Member>, ApiError> {
    let Some(session) = from_headers(state, headers).await else {
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

fn is_secure(state: &AppState) -> bool {
    state.config.public_url.0.starts_with("https://")
}

fn secure(state: &AppState) -> &'static str {
    if is_secure(state) {
        "; Secure"
    } else {
        ""
    }
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(state: &AppState, value: &str) -> HeaderValue {
    let text = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        cookie_name(state),
        ttl(state).as_secs(),
        secure(state)
    );
    HeaderValue::from_str(&text).expect("cookie values are base64 and digits")
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(state: &AppState) -> HeaderValue {
    let text = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        cookie_name(state),
        secure(state)
    );
    HeaderValue::from_str(&text).expect("a fixed cookie")
}

/// `Set-Cookie` for the sign-in form's nonce (only sent back to `/login`; to every path with the
/// `__Host-` prefix, which requires `Path=/`).
pub fn set_login_cookie(state: &AppState, nonce: &str) -> HeaderValue {
    let path = if is_secure(state) { "/" } else { "/login" };
    let text = format!(
        "{}={nonce}; Path={path}; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        login_cookie_name(state),
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
