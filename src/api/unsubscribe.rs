//! The unsubscribe link every email carries: `GET` shows a page with a button, `POST` unsubscribes.
//!
//! RFC 8058 one-click: mail providers send `POST` with `List-Unsubscribe=One-Click` to the
//! `List-Unsubscribe` URL, and the button on the page posts to the same URL. A `GET` never changes
//! anything, because link scanners and previews follow every link in an email. The signed token in the
//! path is the only credential: whoever has the email may unsubscribe its recipient, as with every
//! mailing list.
//!
//! The pages carry the same protective headers as the web UI's: a Content-Security-Policy (nothing
//! but their one inline stylesheet, by hash; forms post only here; never framed), `X-Frame-Options:
//! DENY`, and `Referrer-Policy: no-referrer`, since the URL holds the token.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::sinks::text::escape_html;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/unsubscribe/{token}", get(page).post(unsubscribe))
        .route("/unsubscribe/{token}/resubscribe", post(resubscribe))
}

/// The member a token is for, if tocsin signed it and the member still exists.
fn member_of(state: &AppState, token: &str) -> Option<String> {
    let member = state.tokens.as_ref()?.check_unsubscribe(token)?;
    state.members.contains(&member).then_some(member)
}

fn invalid() -> Response {
    html(
        StatusCode::NOT_FOUND,
        layout(
            "Link not valid",
            "<p>This unsubscribe link is not valid. Use the link in a recent email from tocsin.</p>",
        ),
    )
}

async fn page(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let Some(member) = member_of(&state, &token) else {
        return Ok(invalid());
    };
    let off = state.store.mailbox(&member).await?.unsubscribed;
    let name = escape_html(&member);
    let token = escape_html(&token);
    let body = if off {
        format!(
            "<p><strong>{name}</strong> is unsubscribed: tocsin sends {name} no email.</p>\
             <form method=\"post\" action=\"/unsubscribe/{token}/resubscribe\">\
             <button type=\"submit\">Turn email back on</button></form>"
        )
    } else {
        format!(
            "<p>tocsin emails <strong>{name}</strong> when a ticket mentions {name} while {name} is not \
             online.</p><form method=\"post\" action=\"/unsubscribe/{token}\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe {name}</button></form>"
        )
    };
    Ok(html(StatusCode::OK, layout("Email from tocsin", &body)))
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let Some(member) = member_of(&state, &token) else {
        return Ok(invalid());
    };
    if state
        .store
        .set_unsubscribed(&member, true, state.clock.now())
        .await?
    {
        tracing::info!(%member, "Unsubscribed from email.");
    }
    let name = escape_html(&member);
    let token = escape_html(&token);
    Ok(html(
        StatusCode::OK,
        layout(
            "Unsubscribed",
            &format!(
                "<p>You are unsubscribed: tocsin will send <strong>{name}</strong> no more email. \
                 Emails already scheduled are cancelled.</p>\
                 <form method=\"post\" action=\"/unsubscribe/{token}/resubscribe\">\
                 <button type=\"submit\">Undo: turn email back on</button></form>"
            ),
        ),
    ))
}

async fn resubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let Some(member) = member_of(&state, &token) else {
        return Ok(invalid());
    };
    state
        .store
        .set_unsubscribed(&member, false, state.clock.now())
        .await?;
    tracing::info!(%member, "Turned email back on.");
    let name = escape_html(&member);
    Ok(html(
        StatusCode::OK,
        layout(
            "Email is on",
            &format!("<p>Email is on again: tocsin emails <strong>{name}</strong> about mentions while {name} is not online.</p>"),
        ),
    ))
}

/// The pages' one stylesheet, inline (the page stands alone); the policy allows it by its hash.
const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1f2328}\
     button{font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid #8c959f;background:#f6f8fa;cursor:pointer}";

/// The Content-Security-Policy of these pages.
fn csp() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    })
}

/// An HTML response with the protective headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · tocsin</title><style>{STYLE}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>"
    )
}
