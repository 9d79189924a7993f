//! The web UI's pages: sign-in, the ticket list, a ticket with its timeline as a chat, rooms' live
//! activity, silences, and the admin page. Handlers load from the store and render; `app.js` makes them live.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::html::{actor_name, chip, esc, layout, message, page, time, url_encode};
use super::session::{self, Session};
use crate::config::Role;
use crate::domain::alert::Severity;
use crate::domain::silence::{MatchOp, Matcher, Silence, SilenceState};
use crate::domain::ticket::{Ticket, TicketState};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind, Visibility};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{FeedEvent, FeedQuery, StoreError, TicketFilter};

/// Tickets per list page.
const PAGE: usize = 50;
/// Entries the room page shows from before it was opened.
const ROOM_BACKLOG: usize = 100;
/// How far back in the feed the room page looks for them.
const ROOM_SCAN: i64 = 2000;

const STATES: [&str; 3] = ["open", "acked", "resolved"];
const SEVERITIES: [&str; 5] = ["critical", "error", "warning", "info", "none"];

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

// ---------------------------------------------------------------------------------------------------
// Sign-in

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

fn login_page(csrf: &str, next: &str, error: Option<&str>) -> String {
    let error = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))
    });
    let body = format!(
        "<section class=\"card narrow login\"><h1>Sign in</h1>\
         <p class=\"muted\">Use your member token (<code>members.&lt;name&gt;.token</code> in the config).</p>\
         {error}<form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"token\">Token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\" class=\"primary\">Sign in</button></form></section>",
        csrf = esc(csrf),
        next = esc(next),
    );
    layout("Sign in", None, "", &body)
}

/// `GET /login`: the form, with a CSRF token tied to a nonce cookie.
pub async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let next = super::safe_next(query(q)?.next.as_deref());
    if session::from_headers(&state, &headers).await.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let (nonce, fresh) = match session::cookie(&headers, session::login_cookie_name(&state)) {
        Some(n) if !n.is_empty() => (n.to_string(), false),
        _ => (session::new_nonce(), true),
    };
    let mut r = page(
        StatusCode::OK,
        login_page(&session::login_csrf(&state, &nonce), &next, None),
    );
    if fresh {
        r.headers_mut().insert(
            header::SET_COOKIE,
            session::set_login_cookie(&state, &nonce),
        );
    }
    Ok(r)
}

/// `POST /login`: checks the form's CSRF token and the member token, then sets the session cookie.
/// Failed tokens count against the client's address (`throttle`): past the limit, 429.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let client = crate::throttle::client(state.client_ip_header(), &headers, &extensions);
    state.failures.check(&client, state.clock.now())?;
    let Form(form) = form.map_err(|e| ApiError::bad_request("invalid_form", e.body_text()))?;
    let nonce = session::cookie(&headers, session::login_cookie_name(&state)).unwrap_or("");
    if form.csrf.is_empty() {
        return Err(session::csrf_refused("the sign-in form has no csrf field"));
    }
    if !session::login_csrf_ok(&state, nonce, &form.csrf) {
        return Err(session::csrf_refused(
            "the sign-in form's csrf field does not match this browser",
        ));
    }
    let next = super::safe_next(form.next.as_deref());
    let value = match state.members.by_token(form.token.trim()) {
        Some(m) => session::issue(&state, &m.name).await?,
        None => None,
    };
    let Some(value) = value else {
        state.failures.record(&client, state.clock.now());
        return Ok(page(
            StatusCode::UNAUTHORIZED,
            login_page(
                &form.csrf,
                &next,
                Some("That token does not belong to any member."),
            ),
        ));
    };
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(&state, &value));
    Ok(r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: ends the member's sessions on the server (every cookie issued before, wherever it
/// was copied to, stops working) and clears this browser's cookie.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Result<Response, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::bad_request("invalid_form", e.body_text()))?;
    if !session::csrf_ok(&state, &session, &form.csrf) {
        return Err(session::csrf_refused(
            "the sign-out form's csrf field is wrong",
        ));
    }
    state
        .sessions
        .end(state.store.as_ref(), &session.member.name)
        .await?;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie(&state));
    Ok(r)
}

// ---------------------------------------------------------------------------------------------------
// Ticket list

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    room: Option<String>,
    q: Option<String>,
    /// Tickets numbered below this (the next page's cursor).
    before: Option<i64>,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /`: tickets, newest first, with filters and a cursor.
pub async fn tickets(
    State(state): State<AppState>,
    session: Session,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    for (name, value, max) in [
        ("q", &q.q, crate::error::MAX_SEARCH),
        ("source", &q.source, crate::error::MAX_PARAM),
        ("room", &q.room, crate::error::MAX_PARAM),
        ("state", &q.state, crate::error::MAX_PARAM),
        ("severity", &q.severity, crate::error::MAX_PARAM),
    ] {
        if let Some(v) = value {
            crate::error::check_text(name, v, max)?;
        }
    }
    let states = match nonempty(&q.state) {
        Some(s) => vec![TicketState::from_name(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("state `{s}` is not one of open, acked, resolved"),
            )
        })?],
        None => Vec::new(),
    };
    let severities = match nonempty(&q.severity) {
        Some(s) => vec![Severity::from_name(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("severity `{s}` is not one of critical, error, warning, info, none"),
            )
        })?],
        None => Vec::new(),
    };
    let filter = TicketFilter {
        states,
        severities,
        source: nonempty(&q.source).map(str::to_string),
        room: nonempty(&q.room).map(str::to_string),
        text: nonempty(&q.q).map(str::to_string),
        visible: session.member.visible(),
        limit: PAGE + 1,
        before_number: q.before,
    };
    let mut list = state.store.list_tickets(&filter).await?;
    let more = list.len() > PAGE;
    list.truncate(PAGE);
    let body = render_list(&state, &q, &list, more);
    Ok(page(
        StatusCode::OK,
        layout("Tickets", Some(&session), "tickets", &body),
    ))
}

fn select(name: &str, any: &str, options: &[String], chosen: Option<&str>) -> String {
    let mut out =
        format!("<select name=\"{name}\" aria-label=\"{any}\"><option value=\"\">{any}</option>");
    for o in options {
        let sel = if Some(o.as_str()) == chosen {
            " selected"
        } else {
            ""
        };
        out.push_str(&format!("<option value=\"{0}\"{sel}>{0}</option>", esc(o)));
    }
    out.push_str("</select>");
    out
}

fn render_list(state: &AppState, q: &ListQuery, list: &[Ticket], more: bool) -> String {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut sources: Vec<String> = state.config.sources.keys().cloned().collect();
    sources.push(crate::pipeline::SYSTEM_SOURCE.to_string());
    let rooms: Vec<String> = state.config.rooms.keys().cloned().collect();
    let mut out = format!(
        "<form class=\"filters card\" method=\"get\" action=\"/\">\
         <input type=\"search\" name=\"q\" value=\"{q}\" placeholder=\"Search titles and timelines\" aria-label=\"Search\">\
         {st}{sev}{src}{room}\
         <button type=\"submit\">Filter</button><a class=\"link\" href=\"/\">Clear</a></form>",
        q = esc(nonempty(&q.q).unwrap_or("")),
        st = select("state", "Any state", &strings(&STATES), nonempty(&q.state)),
        sev = select(
            "severity",
            "Any severity",
            &strings(&SEVERITIES),
            nonempty(&q.severity)
        ),
        src = select("source", "Any source", &sources, nonempty(&q.source)),
        room = if rooms.is_empty() {
            String::new()
        } else {
            select("room", "Any room", &rooms, nonempty(&q.room))
        },
    );
    if list.is_empty() {
        out.push_str("<p class=\"empty card\">No tickets match.</p>");
        return out;
    }
    out.push_str(
        "<div class=\"card flush\"><table class=\"tickets\"><thead><tr><th>Ticket</th><th>Title</th>\
         <th>Severity</th><th>State</th><th>Source</th><th>Assignee</th><th>Updated</th></tr></thead><tbody>",
    );
    for t in list {
        let key = t.reference();
        out.push_str(&format!(
            "<tr class=\"ticket-row\"><td class=\"key\"><a href=\"/tickets/{key}\">{key}</a></td>\
             <td class=\"title\"><a href=\"/tickets/{key}\">{title}</a></td>\
             <td>{sev}</td><td>{state}</td><td class=\"muted\">{source}</td><td>{assignee}</td>\
             <td class=\"muted nowrap\">{updated}</td></tr>",
            title = esc(&t.title),
            sev = severity_chip(t.severity),
            state = state_chip(t.state),
            source = esc(&t.source),
            assignee = t
                .assignee
                .as_deref()
                .map_or("<span class=\"muted\">—</span>".to_string(), esc),
            updated = time(t.updated_at),
        ));
    }
    out.push_str("</tbody></table></div>");
    if more {
        if let Some(last) = list.last() {
            let mut params: Vec<String> = [
                ("q", &q.q),
                ("state", &q.state),
                ("severity", &q.severity),
                ("source", &q.source),
                ("room", &q.room),
            ]
            .iter()
            .filter_map(|(k, v)| nonempty(v).map(|v| format!("{k}={}", url_encode(v))))
            .collect();
            params.push(format!("before={}", last.number));
            out.push_str(&format!(
                "<nav class=\"pager\"><a href=\"/?{}\">Older tickets →</a></nav>",
                esc(&params.join("&"))
            ));
        }
    }
    out
}

fn severity_chip(s: Severity) -> String {
    chip(&format!("sev sev-{}", s.as_str()), s.as_str())
}

fn state_chip(s: TicketState) -> String {
    chip(&format!("state state-{}", s.as_str()), s.as_str())
}

// ---------------------------------------------------------------------------------------------------
// One ticket

/// `GET /tickets/{T-42 or id}`: the header, the timeline as a chat, the composer and actions.
pub async fn ticket(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = match state
        .store
        .get_ticket(&crate::error::ticket_ref(&id)?)
        .await
    {
        Err(StoreError::NotFound) => {
            return Ok(message(
                StatusCode::NOT_FOUND,
                Some(&session),
                "No such ticket",
                &format!("There is no ticket {id}."),
            ))
        }
        other => other?,
    };
    // The feed position first, then the timeline: anything written in between comes twice (the page
    // drops repeats by seq), never not at all.
    let feed = *state.store.feed_watch().borrow();
    let visible = session.member.visible();
    let entries: Vec<Entry> = state
        .store
        .timeline(&t.id, 0, 5000)
        .await?
        .into_iter()
        .filter(|e| visible.contains(&e.visibility))
        .collect();
    let body = render_ticket(&state, &session, &t, &entries, feed);
    Ok(page(
        StatusCode::OK,
        layout(
            &format!("{} {}", t.reference(), t.title),
            Some(&session),
            "tickets",
            &body,
        ),
    ))
}

fn render_ticket(
    state: &AppState,
    session: &Session,
    t: &Ticket,
    entries: &[Entry],
    feed: i64,
) -> String {
    let key = t.reference();
    let me = &session.member;
    // The ticket's labels as `name="value"` matchers: for Mute, and to pre-fill "Silence similar…".
    let matchers: Vec<String> = t
        .labels
        .iter()
        .map(|(k, v)| {
            Matcher {
                name: k.clone(),
                op: MatchOp::Equal,
                value: v.clone(),
            }
            .to_string()
        })
        .collect();
    let similar = format!("/silences?matchers={}", url_encode(&matchers.join("\n")));
    let matchers = serde_json::to_string(&matchers).unwrap_or_else(|_| "[]".into());
    let labels: String = t
        .labels
        .iter()
        .map(|(k, v)| {
            format!(
                "<li class=\"label\"><span class=\"k\">{}</span>=<span class=\"v\">{}</span></li>",
                esc(k),
                esc(v)
            )
        })
        .collect();
    let labels = if labels.is_empty() {
        String::new()
    } else {
        format!("<ul class=\"labels\">{labels}</ul>")
    };
    let description = t.description.as_deref().map_or(String::new(), |d| {
        format!("<p class=\"description\">{}</p>", esc(d))
    });
    let link = t
        .url
        .as_deref()
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map_or(String::new(), |u| {
            format!(
                "<a class=\"source-link\" href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">Open in {} ↗</a>",
                esc(u),
                esc(&t.source)
            )
        });
    let acked = t.acked_by.as_deref().map_or(String::new(), |a| {
        format!("<span class=\"fact\">acked by <b>{}</b></span>", esc(a))
    });
    let actions = if me.role >= Role::Editor {
        let mut options = String::from("<option value=\"\">Nobody</option>");
        for name in state.config.members.keys() {
            let sel = if t.assignee.as_deref() == Some(name) {
                " selected"
            } else {
                ""
            };
            options.push_str(&format!(
                "<option value=\"{0}\"{sel}>{0}</option>",
                esc(name)
            ));
        }
        format!(
            "<div class=\"actions\" id=\"actions\">\
             <button type=\"button\" id=\"ack\" data-action=\"ack\">Ack</button>\
             <button type=\"button\" id=\"resolve\" data-action=\"resolve\">Resolve</button>\
             <span class=\"group\"><select id=\"assign-to\" aria-label=\"Assign to\">{options}</select>\
             <button type=\"button\" id=\"assign\">Assign</button>\
             <button type=\"button\" id=\"take\">Take it</button></span>\
             <button type=\"button\" id=\"mute\" title=\"Silence alerts with these labels for an hour\">Mute 1h</button>\
             <a class=\"button\" id=\"silence-similar\" href=\"{similar}\" title=\"A silence on these labels, to adjust first\">Silence similar…</a>\
             <span class=\"status\" id=\"action-status\" role=\"status\"></span></div>",
            similar = esc(&similar),
        )
    } else {
        String::new()
    };
    let composer = if me.role >= Role::Editor {
        "<form id=\"composer\" class=\"composer\">\
         <textarea id=\"note-text\" name=\"text\" rows=\"3\" placeholder=\"Write a note… (Ctrl+Enter sends)\" aria-label=\"Note\" required></textarea>\
         <div class=\"row\"><select id=\"note-visibility\" name=\"visibility\" aria-label=\"Who sees the note\">\
         <option value=\"internal\" selected>Internal: tocsin members only</option>\
         <option value=\"public\">Public: also sent to the rooms</option></select>\
         <span class=\"status\" id=\"composer-status\" role=\"status\"></span>\
         <button type=\"submit\" class=\"primary\">Add note</button></div></form>"
            .to_string()
    } else {
        "<p class=\"muted readonly\">You can read this ticket; editors add notes and act on it.</p>"
            .to_string()
    };
    format!(
        "<article class=\"ticket\" id=\"ticket\" data-ticket=\"{id}\" data-key=\"{key}\" data-feed=\"{feed}\" data-matchers=\"{matchers}\">\
         <header class=\"card ticket-head\">\
         <div class=\"crumbs\"><a href=\"/\">Tickets</a> / <span class=\"key\">{key}</span></div>\
         <h1 id=\"title\">{title}</h1>\
         <div class=\"facts\"><span id=\"state\">{state}</span>{sev}\
         <span class=\"fact\">source <b>{source}</b></span>\
         <span class=\"fact\">assignee <b id=\"assignee\">{assignee}</b></span>{acked}\
         <span class=\"fact\">opened {opened}</span>\
         <a class=\"fact link\" id=\"fixture\" href=\"/api/tickets/{id}/alerts?format=fixture\" download=\"{key}.yaml\" \
         title=\"This alert as a plugin test case (tocsin plugin test --fixtures)\">Plugin fixture</a></div>\
         {labels}{description}{link}{actions}</header>{changes}\
         <section class=\"card chat\"><h2>Timeline</h2>\
         <ol class=\"timeline\" id=\"timeline\">{entries}</ol>{composer}</section></article>",
        id = esc(&t.id),
        key = esc(&key),
        matchers = esc(&matchers),
        title = esc(&t.title),
        state = state_chip(t.state),
        sev = severity_chip(t.severity),
        source = esc(&t.source),
        assignee = esc(t.assignee.as_deref().unwrap_or("nobody")),
        opened = time(t.created_at),
        entries = render_entries(entries, &me.name),
        changes = super::changes::recent_changes(entries),
    )
}

fn kind_label(kind: EntryKind) -> String {
    kind.as_str().replace('_', " ")
}

/// The kind's label before a system line, unless the text already starts with it ("Opened by ...").
fn what(kind: EntryKind, text: &str) -> String {
    let label = kind_label(kind);
    if text.to_lowercase().starts_with(&label) {
        String::new()
    } else {
        format!("<span class=\"what\">{label}</span>")
    }
}

/// Entries as chat: notes are bubbles, the rest one-liners; runs of `refired` fold into one line.
fn render_entries(entries: &[Entry], me: &str) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < entries.len() {
        let run = entries[i..]
            .iter()
            .take_while(|e| e.kind == EntryKind::Refired)
            .count();
        if let Some((n, html)) = super::plugin_entries::decided_run(&entries[i..]) {
            out.push_str(&html);
            i += n;
        } else if run > 1 {
            let group = &entries[i..i + run];
            let last = &group[run - 1];
            let seqs: Vec<String> = group.iter().map(|e| e.seq.to_string()).collect();
            out.push_str(&format!(
                "<li class=\"entry sys kind-refired\" data-seqs=\"{seqs}\" data-count=\"{run}\">\
                 <span class=\"what\">refired</span><span class=\"count\">×{run}</span>\
                 <span class=\"text\">{text}</span>{at}</li>",
                seqs = seqs.join(" "),
                text = esc(&last.text),
                at = time(last.at),
            ));
            i += run;
        } else {
            out.push_str(&render_entry(&entries[i], me));
            i += 1;
        }
    }
    out
}

fn render_entry(e: &Entry, me: &str) -> String {
    let who = actor_name(&e.actor);
    if e.kind == EntryKind::Note {
        let vis = e.visibility.as_str();
        let badge = if e.visibility == Visibility::Internal {
            "<span class=\"badge internal\">internal</span>"
        } else {
            "<span class=\"badge public\">public</span>"
        };
        let mine = if e.actor == format!("member:{me}") {
            " mine"
        } else {
            ""
        };
        format!(
            "<li class=\"entry note vis-{vis}{mine}\" data-seqs=\"{seq}\"><div class=\"bubble\">\
             <div class=\"meta\"><span class=\"author\">{who}</span>{badge}{at}</div>\
             <div class=\"text\">{text}</div></div></li>",
            seq = e.seq,
            who = esc(who),
            at = time(e.at),
            text = esc(&e.text),
        )
    } else {
        format!(
            "<li class=\"entry sys kind-{kind}\" data-seqs=\"{seq}\">\
             {label}<span class=\"text\">{text}{logs}</span>{at}</li>",
            kind = e.kind.as_str(),
            label = what(e.kind, &e.text),
            seq = e.seq,
            text = esc(&e.text),
            logs = super::plugin_entries::failure_logs(e),
            at = time(e.at),
        )
    }
}

// ---------------------------------------------------------------------------------------------------
// Rooms

/// `GET /rooms`: the configured rooms.
pub async fn rooms(State(state): State<AppState>, session: Session) -> Response {
    let mut body = String::from("<section class=\"card\"><h1>Rooms</h1>");
    if state.config.rooms.is_empty() {
        body.push_str("<p class=\"empty\">No rooms are configured (<code>rooms:</code>).</p>");
    } else {
        body.push_str(
            "<table class=\"rooms\"><thead><tr><th>Room</th><th>Platform</th><th>Members</th></tr></thead><tbody>",
        );
        for (name, room) in &state.config.rooms {
            body.push_str(&format!(
                "<tr><td><a href=\"/rooms/{link}\">{name}</a></td><td>{kind}</td><td class=\"muted\">{members}</td></tr>",
                link = url_encode(name),
                name = esc(name),
                kind = esc(room.sink.kind()),
                members = esc(&room.members.join(", ")),
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    page(
        StatusCode::OK,
        layout("Rooms", Some(&session), "rooms", &body),
    )
}

/// `GET /rooms/{room}`: the room's recent activity, then live.
pub async fn room(
    State(state): State<AppState>,
    session: Session,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    if !state.config.rooms.contains_key(&room) {
        return Ok(message(
            StatusCode::NOT_FOUND,
            Some(&session),
            "No such room",
            &format!("There is no room `{room}` in the config."),
        ));
    }
    let head = *state.store.feed_watch().borrow();
    let mut events = state
        .store
        .feed(&FeedQuery {
            after: (head - ROOM_SCAN).max(0),
            ticket_id: None,
            room: Some(room.clone()),
            visible: session.member.visible(),
            limit: ROOM_SCAN as usize,
        })
        .await?;
    let after = events.last().map_or(head, |e| e.id.max(head));
    let skip = events.len().saturating_sub(ROOM_BACKLOG);
    let events = events.split_off(skip);
    let items: String = events
        .iter()
        .rev()
        .map(|e| render_feed_item(e, &session.member.name))
        .collect();
    let empty = if items.is_empty() {
        "<p class=\"empty\" id=\"feed-empty\">Nothing yet. New activity appears here as it happens.</p>"
    } else {
        ""
    };
    let body = format!(
        "<section class=\"card\"><div class=\"crumbs\"><a href=\"/rooms\">Rooms</a> / {name}</div>\
         <h1>{name} <span class=\"chip\">{kind}</span></h1>\
         <p class=\"muted\">Everything that happens to tickets routed here, newest first, live.</p>{empty}\
         <ol class=\"feed\" id=\"feed\" data-room=\"{name}\" data-feed=\"{after}\">{items}</ol></section>",
        name = esc(&room),
        kind = esc(state.config.rooms[&room].sink.kind()),
    );
    Ok(page(
        StatusCode::OK,
        layout(&format!("Room {room}"), Some(&session), "rooms", &body),
    ))
}

fn render_feed_item(e: &FeedEvent, me: &str) -> String {
    let entry = &e.entry;
    let badge = match entry.visibility {
        Visibility::Internal => "<span class=\"badge internal\">internal</span>",
        _ => "",
    };
    let mine = if entry.actor == format!("member:{me}") {
        " mine"
    } else {
        ""
    };
    // Notes say who wrote them; other entries' texts already name who did what.
    let head = if entry.kind == EntryKind::Note {
        format!(
            "<span class=\"what\">note</span>{badge}<span class=\"author\">{}</span>",
            esc(actor_name(&entry.actor))
        )
    } else {
        what(entry.kind, &entry.text)
    };
    format!(
        "<li class=\"feed-item kind-{kind}{mine}\" data-id=\"{id}\">\
         <a class=\"key\" href=\"/tickets/{key}\">{key}</a>\
         <span class=\"title\">{title}</span>{head}{at}\
         <span class=\"text\">{text}</span></li>",
        kind = entry.kind.as_str(),
        id = e.id,
        key = esc(&e.ticket),
        title = esc(&e.title),
        text = esc(&entry.text),
        at = time(entry.at),
    )
}

// ---------------------------------------------------------------------------------------------------
// Silences

/// Expired silences the page shows, most recently ended first.
const EXPIRED_SHOWN: usize = 50;
/// The form's durations; anything else is typed in ("custom").
const DURATIONS: [(&str, &str); 5] = [
    ("30m", "30 minutes"),
    ("1h", "1 hour"),
    ("2h", "2 hours"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilencesQuery {
    /// Pre-fills the form's matchers (a ticket's "Silence similar…" link).
    matchers: Option<String>,
    /// The silence just made, to highlight.
    created: Option<i64>,
}

/// `GET /silences`: silences in force and upcoming, then the most recently ended; editors and admins
/// also get the form for a new one (it posts to `/api/silences`) and Expire buttons.
pub async fn silences(
    State(state): State<AppState>,
    session: Session,
    q: Result<Query<SilencesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let now = state.clock.now();
    let (mut current, mut expired): (Vec<Silence>, Vec<Silence>) = state
        .store
        .silences(None)
        .await?
        .into_iter()
        .partition(|s| s.state(now) != SilenceState::Expired);
    // In force first, ending soonest first; then upcoming, starting soonest first.
    current.sort_by_key(|s| {
        if s.active(now) {
            (0, s.ends_at, s.id)
        } else {
            (1, s.starts_at, s.id)
        }
    });
    expired.sort_by(|a, b| b.ends_at.cmp(&a.ends_at).then(b.id.cmp(&a.id)));
    expired.truncate(EXPIRED_SHOWN);
    let can_edit = session.member.role >= Role::Editor;
    let body = render_silences(&q, &current, &expired, now, can_edit);
    Ok(page(
        StatusCode::OK,
        layout("Silences", Some(&session), "silences", &body),
    ))
}

fn render_silences(
    q: &SilencesQuery,
    current: &[Silence],
    expired: &[Silence],
    now: Timestamp,
    can_edit: bool,
) -> String {
    let mut out = String::from(
        "<header class=\"page-head\"><h1>Silences</h1><p class=\"muted\">A silence keeps matching \
         tickets out of chat and email for a while. Their timelines still record everything, and a \
         room that saw a ticket fire still hears when it resolves.</p></header>",
    );
    if can_edit {
        out.push_str(&silence_form(q.matchers.as_deref().unwrap_or("")));
    }
    out.push_str(&format!(
        "<section class=\"card\" id=\"silences-current\"><h2>In force and upcoming <span class=\"count\">{}</span></h2>",
        current.len()
    ));
    if current.is_empty() {
        out.push_str("<p class=\"empty\">No silences: every alert reaches its rooms.</p>");
    } else {
        out.push_str("<ol class=\"silences\">");
        for s in current {
            out.push_str(&render_silence(s, now, can_edit, q.created));
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>");
    out.push_str("<section class=\"card\" id=\"silences-expired\"><h2>Recently expired</h2>");
    if expired.is_empty() {
        out.push_str("<p class=\"empty\">None yet.</p>");
    } else {
        out.push_str("<ol class=\"silences expired\">");
        for s in expired {
            out.push_str(&render_silence(s, now, false, q.created));
        }
        out.push_str("</ol>");
    }
    out.push_str("</section>");
    if !can_edit {
        out.push_str(
            "<p class=\"muted readonly\">You can read silences; editors and admins make and expire them.</p>",
        );
    }
    out
}

fn silence_form(prefill: &str) -> String {
    let options: String = DURATIONS
        .iter()
        .map(|(value, text)| {
            let sel = if *value == "2h" { " selected" } else { "" };
            format!("<option value=\"{value}\"{sel}>{text}</option>")
        })
        .collect();
    format!(
        "<section class=\"card new-silence\"><h2>New silence</h2>\
         <form id=\"silence-form\" class=\"silence-form\" novalidate>\
         <div class=\"field matchers-field\"><label for=\"silence-matchers\">Matchers</label>\
         <textarea id=\"silence-matchers\" name=\"matchers\" rows=\"3\" spellcheck=\"false\" autocomplete=\"off\" \
         placeholder=\"alertname=DiskFull&#10;instance=~&quot;db[0-9]+&quot;\">{prefill}</textarea>\
         <p class=\"hint\">One per line or separated by spaces: <code>name=value</code>, <code>name!=value</code>, \
         <code>name=~regex</code>, <code>name!~regex</code>. Quote values that have spaces.</p></div>\
         <div class=\"field duration-field\"><label for=\"silence-duration\">For</label>\
         <select id=\"silence-duration\" name=\"duration\">{options}<option value=\"custom\">Other…</option></select>\
         <input type=\"text\" id=\"silence-custom\" name=\"custom\" placeholder=\"like 3h30m or 2w\" \
         aria-label=\"Other duration\" autocomplete=\"off\" hidden></div>\
         <div class=\"field comment-field\"><label for=\"silence-comment\">Why</label>\
         <input type=\"text\" id=\"silence-comment\" name=\"comment\" maxlength=\"2000\" autocomplete=\"off\" \
         placeholder=\"What is going on, and who is on it\"></div>\
         <div class=\"submit-row\"><p class=\"error\" id=\"silence-error\" role=\"alert\" hidden></p>\
         <button type=\"submit\" class=\"primary\">Silence</button></div></form></section>",
        prefill = esc(prefill),
    )
}

/// `name=value` as a chip (the value as written, without quotes unless it is empty).
fn matcher_chip(m: &Matcher) -> String {
    let value = if m.value.is_empty() {
        "\"\"".to_string()
    } else {
        esc(&m.value)
    };
    format!(
        "<li class=\"matcher\"><span class=\"k\">{}</span><span class=\"op\">{}</span><span class=\"v\">{value}</span></li>",
        esc(&m.name),
        esc(m.op.as_str()),
    )
}

/// A duration for people: `45m`, `1h 30m`, `2d 4h`, `under a minute`.
fn human(d: std::time::Duration) -> String {
    let mins = d.as_secs() / 60;
    let (days, hours, mins) = (mins / 1440, mins / 60 % 24, mins % 60);
    match (days, hours, mins) {
        (0, 0, 0) => "under a minute".into(),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// `2026-11-22 12:00`, in a `<time>` element; only `14:00` when on `same_day_as`'s date.
fn short_time(at: Timestamp, same_day_as: Option<Timestamp>) -> String {
    let iso = at.to_rfc3339();
    let same = same_day_as.is_some_and(|o| o.to_rfc3339()[..10] == iso[..10]);
    let text = if same {
        iso[11..16].to_string()
    } else {
        format!("{} {}", &iso[..10], &iso[11..16])
    };
    format!("<time datetime=\"{iso}\" title=\"{iso}\">{text}</time>")
}

fn render_silence(s: &Silence, now: Timestamp, can_edit: bool, created: Option<i64>) -> String {
    let state = s.state(now);
    let (word, when) = match state {
        SilenceState::Active => ("active", format!("{} left", human(s.ends_at.since(now)))),
        SilenceState::Pending => (
            "pending",
            format!("starts in {}", human(s.starts_at.since(now))),
        ),
        SilenceState::Expired => (
            "expired",
            match &s.expired_by {
                Some(who) => format!("expired early by {who}"),
                None => "ran its course".to_string(),
            },
        ),
    };
    let matchers: String = s.matchers.iter().map(matcher_chip).collect();
    let expire = if can_edit && state != SilenceState::Expired {
        format!(
            "<button type=\"button\" class=\"expire\" data-id=\"{}\">Expire</button>",
            s.id
        )
    } else {
        String::new()
    };
    let new = if created == Some(s.id) { " new" } else { "" };
    format!(
        "<li class=\"silence silence-{word}{new}\" id=\"silence-{id}\" data-silence=\"{id}\">\
         <div class=\"silence-body\"><ul class=\"matchers\">{matchers}</ul>\
         <p class=\"comment\">{comment}</p>\
         <div class=\"silence-meta\"><span class=\"chip silence-state\">{word}</span>\
         <span class=\"when\">{when}</span>\
         <span class=\"window\">{start} – {end}</span>\
         <span class=\"author\">created by <b>{author}</b></span></div></div>{expire}</li>",
        id = s.id,
        comment = esc(&s.comment),
        when = esc(&when),
        start = short_time(s.starts_at, None),
        end = short_time(s.ends_at, Some(s.starts_at)),
        author = esc(&s.author),
    )
}

// ---------------------------------------------------------------------------------------------------
// Admin

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::Timestamp;

    fn entry(seq: i64, kind: EntryKind, visibility: Visibility, text: &str) -> Entry {
        Entry {
            seq,
            at: Timestamp::from_millis(0),
            kind,
            visibility,
            actor: "member:bob".into(),
            text: text.into(),
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn refired_runs_fold_and_notes_are_escaped() {
        let html = render_entries(
            &[
                entry(1, EntryKind::Opened, Visibility::System, "Opened."),
                entry(2, EntryKind::Refired, Visibility::System, "Refired."),
                entry(3, EntryKind::Refired, Visibility::System, "Refired."),
                entry(4, EntryKind::Refired, Visibility::System, "Refired."),
                entry(5, EntryKind::Note, Visibility::Internal, "<b>x</b>"),
            ],
            "bob",
        );
        assert!(html.contains("data-seqs=\"2 3 4\""), "{html}");
        assert!(html.contains("×3"), "{html}");
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        assert!(html.contains("badge internal"), "{html}");
        assert!(html.contains(" mine"), "{html}");
    }
}
