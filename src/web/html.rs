//! HTML building blocks for the web UI: escaping, the page layout and the response headers
//! (Content-Security-Policy) every page carries.
//!
//! Every piece of alert, ticket or member text goes through [`esc`]; the policy forbids inline scripts
//! and styles, so data reaches `app.js` only through `data-` attributes (escaped the same way).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::session::Session;
use crate::config::Role;
use crate::domain::time::Timestamp;

/// What pages may load and run: only tocsin's own files, nothing inline, never framed.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    crate::sinks::text::escape_markup(text)
}

/// Percent-encodes a query parameter value or a path segment.
pub fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `2026-11-22 12:00:05` (UTC), in a `<time>` element.
pub fn time(at: Timestamp) -> String {
    let iso = at.to_rfc3339();
    let short = format!("{} {}", &iso[..10], &iso[11..19]);
    format!("<time datetime=\"{iso}\" title=\"{iso}\">{short}</time>")
}

/// A coloured chip, e.g. a severity or a state. `class` must be a fixed word, never data.
pub fn chip(class: &str, text: &str) -> String {
    format!("<span class=\"chip {class}\">{}</span>", esc(text))
}

/// Who wrote an entry, for people: `member:bob` is `bob`, `source:prom` is `prom`, `system` is
/// `tocsin`.
pub fn actor_name(actor: &str) -> &str {
    actor
        .strip_prefix("member:")
        .or_else(|| actor.strip_prefix("source:"))
        .unwrap_or(if actor == "system" { "tocsin" } else { actor })
}

/// A whole page: the top bar (with the member and sign-out when signed in), then `body`.
pub fn layout(title: &str, session: Option<&Session>, active: &str, body: &str) -> String {
    let (csrf, bar) = match session {
        Some(s) => {
            let m = &s.member;
            let link = |href: &str, name: &str, text: &str| {
                let class = if name == active {
                    " class=\"active\""
                } else {
                    ""
                };
                format!("<a href=\"{href}\"{class}>{text}</a>")
            };
            let admin = if m.role >= Role::Admin {
                link("/admin", "admin", "Admin")
            } else {
                String::new()
            };
            (
                esc(&s.csrf),
                format!(
                    "<nav class=\"links\">{}{}{}{admin}</nav>\
                     <div class=\"who\"><span class=\"name\" id=\"me\">{name}</span>\
                     <span class=\"chip role\">{role}</span>\
                     <form method=\"post\" action=\"/logout\" class=\"inline\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <button type=\"submit\" class=\"link\">Sign out</button></form></div>",
                    link("/", "tickets", "Tickets"),
                    link("/rooms", "rooms", "Rooms"),
                    link("/silences", "silences", "Silences"),
                    name = esc(&m.name),
                    role = m.role.as_str(),
                    csrf = esc(&s.csrf),
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    let member = session.map(|s| esc(&s.member.name)).unwrap_or_default();
    let role = session.map_or("", |s| s.member.role.as_str());
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · tocsin</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css?v={css}\">\
         <script src=\"/assets/app.js?v={js}\" defer></script></head>\
         <body data-csrf=\"{csrf}\" data-member=\"{member}\" data-role=\"{role}\">\
         <header class=\"top\"><a class=\"brand\" href=\"/\">tocsin</a>{bar}</header>\
         <main>{body}</main></body></html>\n",
        title = esc(title),
        css = super::css_version(),
        js = super::js_version(),
    )
}

/// An HTML response with the page headers: CSP, no caching (pages show live state), no sniffing.
pub fn page(status: StatusCode, html: String) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

/// A short page that only says something (not found, not allowed).
pub fn message(status: StatusCode, session: Option<&Session>, title: &str, text: &str) -> Response {
    let body = format!(
        "<section class=\"card narrow\"><h1>{}</h1><p>{}</p><p><a href=\"/\">Back to tickets</a></p></section>",
        esc(title),
        esc(text)
    );
    page(status, layout(title, session, "", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }

    #[test]
    fn url_encoding_keeps_only_unreserved_characters() {
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn actors_read_as_names() {
        assert_eq!(actor_name("member:bob"), "bob");
        assert_eq!(actor_name("source:prom"), "prom");
        assert_eq!(actor_name("system"), "tocsin");
    }
}
