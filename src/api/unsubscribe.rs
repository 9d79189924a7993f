//! The unsubscribe link every email carries: `GET` shows a page with a button, `POST` unsubscribes.
//!
//! RFC 8058 one-click: mail providers send `POST` with `List-Unsubscribe=One-Click` to the
//! `List-Unsubscribe` URL, and the button on the page posts to the same URL. A `GET` never changes
//! anything, because link scanners and previews follow every link in an email. The signed token in the
//! path is the only credential: whoever has the email may unsubscribe its recipient, as with every
//! mailing list.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

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
    state.config.members.contains_key(&member).then_some(member)
}

fn invalid() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(layout(
            "Link not valid",
            "<p>This unsubscribe link is not valid. Use the link in a recent email from tocsin.</p>",
        )),
    )
        .into_response()
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
    Ok(Html(layout("Email from tocsin", &body)).into_response())
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
    Ok(Html(layout(
        "Unsubscribed",
        &format!(
            "<p>You are unsubscribed: tocsin will send <strong>{name}</strong> no more email. \
             Emails already scheduled are cancelled.</p>\
             <form method=\"post\" action=\"/unsubscribe/{token}/resubscribe\">\
             <button type=\"submit\">Undo: turn email back on</button></form>"
        ),
    ))
    .into_response())
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
    Ok(Html(layout(
        "Email is on",
        &format!("<p>Email is on again: tocsin emails <strong>{name}</strong> about mentions while {name} is not online.</p>"),
    ))
    .into_response())
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · tocsin</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1f2328}}\
         button{{font:inherit;padding:.4rem .9rem;border-radius:6px;border:1px solid #8c959f;background:#f6f8fa;cursor:pointer}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>"
    )
}
