//! The web UI, served by tocsin itself: server-rendered pages, one small script and one stylesheet.
//!
//! No front-end build: pages are HTML built in Rust ([`pages`], with [`html`] escaping every piece of
//! data), and `assets/app.js` and `assets/app.css` are embedded with `include_str!`. The script calls
//! the same JSON API as every other client (`/api/...`), signed in with the session cookie and its
//! CSRF token ([`session`]); live updates come from `GET /api/stream`.
//!
//! Routes: `/login`, `/logout`, `/` (tickets), `/tickets/{id}`, `/rooms`, `/rooms/{room}`, `/silences`,
//! `/admin`, `POST /web/presence`, `/assets/*`.

mod admin;
mod changes;
mod html;
mod pages;
mod plugin_entries;
pub mod session;

use std::sync::OnceLock;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::presence::{Presence, PresenceState};
use crate::error::ApiError;
use crate::state::AppState;
use session::Session;

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::tickets))
        .route("/tickets/{id}", get(pages::ticket))
        .route("/rooms", get(pages::rooms))
        .route("/rooms/{room}", get(pages::room))
        .route("/silences", get(pages::silences))
        .route("/admin", get(admin::admin))
        .route("/web/presence", post(presence))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

/// Pages need a signed-in browser; without one they send it to the sign-in form, and back afterwards.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        session::from_headers(state, &parts.headers)
            .await
            .ok_or_else(|| {
                let here = parts
                    .uri
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_string();
                Redirect::to(&format!("/login?next={}", html::url_encode(&here))).into_response()
            })
    }
}

/// Where to go after signing in: only a path on this site (`/...`, never `//host` or `/\host`).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.chars().any(|c| c.is_control()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// A short content hash per asset, for cache-busting query strings.
struct Versions {
    js: String,
    css: String,
}

fn versions() -> &'static Versions {
    static V: OnceLock<Versions> = OnceLock::new();
    V.get_or_init(|| {
        let short = |text: &str| hex::encode(&Sha256::digest(text.as_bytes())[..6]);
        Versions {
            js: short(APP_JS),
            css: short(APP_CSS),
        }
    })
}

pub(crate) fn js_version() -> &'static str {
    &versions().js
}

pub(crate) fn css_version() -> &'static str {
    &versions().css
}

#[derive(Debug, Deserialize)]
struct AssetQuery {
    v: Option<String>,
}

fn asset(
    content_type: &'static str,
    body: &'static str,
    version: &str,
    asked: Option<String>,
) -> Response {
    // A URL with the current hash never changes; anything else must be checked again.
    let cache = if asked.as_deref() == Some(version) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn app_js(q: Result<Query<AssetQuery>, QueryRejection>) -> Response {
    let asked = q.ok().and_then(|Query(q)| q.v);
    asset(
        "text/javascript; charset=utf-8",
        APP_JS,
        js_version(),
        asked,
    )
}

async fn app_css(q: Result<Query<AssetQuery>, QueryRejection>) -> Response {
    let asked = q.ok().and_then(|Query(q)| q.v);
    asset("text/css; charset=utf-8", APP_CSS, css_version(), asked)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    /// `active`, `idle` or `offline`.
    state: String,
    /// The CSRF token, for `navigator.sendBeacon` (which cannot set headers).
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /web/presence`: the page reports whether its member is at the keyboard (source `web`).
/// Takes the CSRF token from `X-CSRF-Token` or, for beacons sent while the page closes, from the body.
async fn presence(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let session = session::from_headers(&state, &headers)
        .await
        .ok_or_else(|| ApiError::Unauthorized {
            challenge: "Bearer",
            detail: "sign in at /login first".into(),
        })?;
    // Beacons arrive as text/plain, so the body is read as JSON whatever its content type.
    let body: PresenceBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let csrf = headers
        .get(session::CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(body.csrf)
        .unwrap_or_default();
    if csrf.is_empty() {
        return Err(session::csrf_refused(
            "no CSRF token in X-CSRF-Token or the body",
        ));
    }
    if !session::csrf_ok(&state, &session, &csrf) {
        return Err(session::csrf_refused(
            "the CSRF token does not match the session",
        ));
    }
    let s = match body.state.as_str() {
        "active" => PresenceState::Online,
        "idle" => PresenceState::Away,
        "offline" => PresenceState::Offline,
        other => {
            return Err(ApiError::bad_request(
                "invalid_state",
                format!("state `{other}` must be active, idle or offline"),
            ))
        }
    };
    let report = Presence {
        state: s,
        since: state.clock.now(),
        source: "web".into(),
    };
    state
        .store
        .set_presence(&session.member.name, report)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/tickets/T-1?x=1")), "/tickets/T-1?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/a\nb")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
