//! The JSON API for people and tools: tickets, timelines, notes, ack and resolve, change events.
//!
//! Every route needs a member's bearer token (`members.<name>.token`), or the web UI's session cookie
//! (writes then also need its `X-CSRF-Token`). Viewers read; editors and admins also write. Handlers
//! stay thin: authenticate, call the store, shape the JSON.

mod alertmanager;
mod changes;
pub mod cluster;
mod journal;
mod replay;
mod silences;
mod stream;
mod ticket_alerts;
mod unsubscribe;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Role;
use crate::domain::alert::{Labels, Severity};
use crate::domain::presence::{self, Presence, PresenceState};
use crate::domain::ticket::{Action, Actor, Resolution, Ticket, TicketState};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, Visibility};
use crate::error::ApiError;
use crate::error::{check_text, ticket_ref, MAX_PARAM, MAX_SEARCH};
use crate::state::{AppState, Member};
use crate::store::TicketFilter;

/// Largest API request body. Notes are the biggest thing the API takes.
const MAX_BODY: usize = 1 << 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tickets", get(list))
        .route("/api/tickets/{id}", get(show))
        .route("/api/tickets/{id}/timeline", get(timeline))
        .route("/api/tickets/{id}/notes", post(note))
        .route("/api/tickets/{id}/ack", post(ack))
        .route("/api/tickets/{id}/resolve", post(resolve))
        .route("/api/tickets/{id}/assign", post(assign))
        .merge(stream::router())
        .route("/api/dropped", get(dropped))
        .route("/api/deliveries/dead", get(dead_deliveries))
        .route("/api/deliveries/{id}/retry", post(retry_delivery))
        .route("/api/plugins", get(plugins))
        .route("/api/members", get(members))
        .route("/api/members/{name}/presence", put(set_presence))
        .route("/-/reload", post(reload))
        .merge(unsubscribe::router())
        .merge(silences::router())
        .merge(journal::router())
        .merge(cluster::router())
        .merge(alertmanager::router())
        .merge(changes::router())
        .merge(ticket_alerts::router())
        .merge(replay::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
}

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized = |detail: &str| ApiError::Unauthorized {
            challenge: "Bearer",
            detail: detail.to_string(),
        };
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = bearer else {
            // No bearer token: the web UI's session cookie (with its CSRF token on writes).
            return crate::web::session::api_member(state, &parts.method, &parts.headers)
                .await?
                .ok_or_else(|| unauthorized("send Authorization: Bearer <your member token>"));
        };
        // Guessers are throttled per address: only failures count, and while throttled every
        // token is refused, right or wrong.
        let client =
            crate::throttle::client(state.client_ip_header(), &parts.headers, &parts.extensions);
        let now = state.clock.now();
        state.failures.check(&client, now)?;
        match state.members.by_token(token.trim()) {
            Some(member) => Ok(member),
            None => {
                state.failures.record(&client, now);
                Err(unauthorized("the token does not belong to any member"))
            }
        }
    }
}

impl Member {
    /// Which timeline entries this member may see: viewers do not see internal notes.
    pub fn visible(&self) -> Vec<Visibility> {
        if self.role >= Role::Editor {
            vec![Visibility::Public, Visibility::Internal, Visibility::System]
        } else {
            vec![Visibility::Public, Visibility::System]
        }
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} is a {}; this needs the {} role",
                self.name,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}

/// `axum::Json`, but malformed input comes back in tocsin's JSON error format.
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(AppJson(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType(
                "send Content-Type: application/json".into(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::PayloadTooLarge {
                    limit: MAX_BODY as u64,
                })
            }
            Err(e) => Err(ApiError::bad_request("invalid_json", e.body_text())),
        }
    }
}

/// A ticket as the API shows it.
#[derive(Debug, Serialize)]
pub struct TicketView {
    pub id: String,
    pub number: i64,
    /// `T-42`.
    pub key: String,
    pub title: String,
    pub state: TicketState,
    pub severity: Severity,
    pub source: String,
    pub fingerprint: String,
    pub labels: Labels,
    pub annotations: Labels,
    pub description: Option<String>,
    /// Link to what produced the alert.
    pub source_url: Option<String>,
    /// Link to the ticket in tocsin.
    pub link: String,
    pub resolution: Option<Resolution>,
    pub acked_by: Option<String>,
    pub assignee: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_seen: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub firing_count: i64,
    pub resend_count: i64,
    pub previous_id: Option<String>,
    /// Rooms and mentions plugins asked for (config routes add theirs at delivery).
    pub rooms: Vec<String>,
    pub mentions: Vec<String>,
    pub tags: Vec<String>,
    /// Markdown body from plugins (runbook links, ownership).
    pub body: Option<String>,
    pub group_key: Option<String>,
}

impl TicketView {
    pub fn new(t: Ticket, public_url: &str) -> TicketView {
        TicketView {
            key: t.reference(),
            link: format!(
                "{}/tickets/{}",
                public_url.trim_end_matches('/'),
                t.reference()
            ),
            id: t.id,
            number: t.number,
            title: t.title,
            state: t.state,
            severity: t.severity,
            source: t.source,
            fingerprint: t.fingerprint,
            labels: t.labels,
            annotations: t.annotations,
            description: t.description,
            source_url: t.url,
            resolution: t.resolution,
            acked_by: t.acked_by,
            assignee: t.assignee,
            starts_at: t.starts_at,
            ends_at: t.ends_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
            last_seen: t.last_seen,
            resolved_at: t.resolved_at,
            firing_count: t.firing_count,
            resend_count: t.resend_count,
            previous_id: t.previous_id,
            rooms: t.routing.rooms,
            mentions: t.routing.mentions,
            tags: t.routing.tags,
            body: t.routing.body,
            group_key: t.routing.group_key,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    severity: Option<String>,
    source: Option<String>,
    room: Option<String>,
    /// Full-text search over titles and timelines.
    q: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

const MAX_PAGE: usize = 500;

fn encode_cursor(number: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("n:{number}"))
}

fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("n:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "the cursor is not one this API gave out")
        })
}

fn query<T: serde::de::DeserializeOwned>(
    q: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

async fn list(
    State(state): State<AppState>,
    member: Member,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = query(q)?;
    for (name, value, max) in [
        ("q", &q.q, MAX_SEARCH),
        ("source", &q.source, MAX_PARAM),
        ("room", &q.room, MAX_PARAM),
        ("state", &q.state, MAX_PARAM),
        ("severity", &q.severity, MAX_PARAM),
        ("cursor", &q.cursor, MAX_PARAM),
    ] {
        if let Some(v) = value {
            check_text(name, v, max)?;
        }
    }
    let mut severities = Vec::new();
    for s in q
        .severity
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        severities.push(Severity::from_name(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("severity `{s}` is not one of critical, error, warning, info"),
            )
        })?);
    }
    let mut states = Vec::new();
    for s in q
        .state
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        states.push(TicketState::from_name(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("state `{s}` is not one of open, acked, resolved"),
            )
        })?);
    }
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let filter = TicketFilter {
        states,
        severities,
        source: q.source.filter(|s| !s.is_empty()),
        room: q.room.filter(|s| !s.is_empty()),
        text: q.q.filter(|s| !s.trim().is_empty()),
        visible: member.visible(),
        // One extra row tells us whether there is a next page.
        limit: limit + 1,
        before_number: q.cursor.as_deref().map(decode_cursor).transpose()?,
    };
    let mut tickets = state.store.list_tickets(&filter).await?;
    let next_cursor = if tickets.len() > limit {
        tickets.truncate(limit);
        tickets.last().map(|t| encode_cursor(t.number))
    } else {
        None
    };
    let public_url = &state.config.public_url.0;
    let views: Vec<TicketView> = tickets
        .into_iter()
        .map(|t| TicketView::new(t, public_url))
        .collect();
    Ok(Json(json!({"tickets": views, "next_cursor": next_cursor})))
}

async fn show(
    State(state): State<AppState>,
    _member: Member,
    Path(id): Path<String>,
) -> Result<Json<TicketView>, ApiError> {
    let t = state.store.get_ticket(&ticket_ref(&id)?).await?;
    Ok(Json(TicketView::new(t, &state.config.public_url.0)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    after: Option<i64>,
    limit: Option<usize>,
}

async fn timeline(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
    q: Result<Query<TimelineQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let q = query(q)?;
    let t = state.store.get_ticket(&ticket_ref(&id)?).await?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 5000);
    let visible = member.visible();
    let entries: Vec<Entry> = state
        .store
        .timeline(&t.id, q.after.unwrap_or(0), limit)
        .await?
        .into_iter()
        .filter(|e| visible.contains(&e.visibility))
        .collect();
    Ok(Json(json!({"ticket_id": t.id, "entries": entries})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    text: String,
    #[serde(default = "internal")]
    visibility: String,
}

fn internal() -> String {
    "internal".into()
}

/// Longest note accepted, in bytes.
const MAX_NOTE: usize = 64 * 1024;

async fn note(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
    AppJson(body): AppJson<NoteBody>,
) -> Result<Response, ApiError> {
    member.require(Role::Editor)?;
    let visibility = match Visibility::from_name(&body.visibility) {
        Some(v @ (Visibility::Public | Visibility::Internal)) => v,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_visibility",
                format!(
                    "visibility `{}` must be public or internal",
                    body.visibility
                ),
            ))
        }
    };
    if body.text.len() > MAX_NOTE {
        return Err(ApiError::bad_request(
            "note_too_long",
            format!("notes are limited to {MAX_NOTE} bytes"),
        ));
    }
    if body.text.trim().is_empty() {
        return Err(ApiError::bad_request("empty_note", "note text is empty"));
    }
    let action = Action::Note {
        text: body.text,
        visibility,
    };
    let (_, entry) = act(&state, &id, action, &member).await?;
    Ok((StatusCode::CREATED, Json(entry)).into_response())
}

async fn ack(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Editor)?;
    let (t, entry) = act(&state, &id, Action::Ack, &member).await?;
    Ok(Json(
        json!({"ticket": TicketView::new(t, &state.config.public_url.0), "entry": entry}),
    ))
}

async fn resolve(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Editor)?;
    let (t, entry) = act(&state, &id, Action::Resolve, &member).await?;
    Ok(Json(
        json!({"ticket": TicketView::new(t, &state.config.public_url.0), "entry": entry}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    /// The member to assign; `null` unassigns.
    member: Option<String>,
}

async fn assign(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
    AppJson(body): AppJson<AssignBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Editor)?;
    if let Some(to) = &body.member {
        if !state.members.contains(to) {
            return Err(ApiError::bad_request(
                "unknown_member",
                format!("`{to}` is not a member (see `members:` in the config)"),
            ));
        }
    }
    let action = Action::Assign {
        member: body.member,
    };
    let (t, entry) = act(&state, &id, action, &member).await?;
    Ok(Json(
        json!({"ticket": TicketView::new(t, &state.config.public_url.0), "entry": entry}),
    ))
}

async fn act(
    state: &AppState,
    id: &str,
    action: Action,
    member: &Member,
) -> Result<(Ticket, Entry), ApiError> {
    let now = state.clock.now();
    let done = state
        .store
        .act(
            &ticket_ref(id)?,
            action,
            &Actor::new(&member.name, member.via),
            now,
        )
        .await?;
    // The action may have written deliveries (an ack or resolve edits the room's message).
    state.outbox.notify();
    Ok(done)
}

/// Deliveries tocsin gave up on, newest first, with their last error.
async fn dead_deliveries(
    State(state): State<AppState>,
    member: Member,
    q: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Admin)?;
    let limit = query(q)?.limit.unwrap_or(100).clamp(1, 1000);
    let dead = state.store.outbox_dead(limit).await?;
    Ok(Json(json!({"deliveries": dead})))
}

/// Puts a dead delivery back in line, due now.
async fn retry_delivery(
    State(state): State<AppState>,
    member: Member,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    member.require(Role::Admin)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", format!("`{id}` is not a delivery id")))?;
    let delivery = match state
        .store
        .outbox_retry(id, &member.name, state.clock.now())
        .await
    {
        Err(crate::store::StoreError::NotFound) => {
            return Err(ApiError::NotFound(format!("no dead delivery {id}")))
        }
        other => other?,
    };
    tracing::info!(delivery = id, member = %member.name, "Dead delivery put back in line.");
    state.outbox.notify();
    Ok(Json(json!({"delivery": delivery})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitQuery {
    limit: Option<usize>,
}

/// The alerts plugins dropped most recently, newest first, with the plugin and its reason.
async fn dropped(
    State(state): State<AppState>,
    _member: Member,
    q: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query(q)?.limit.unwrap_or(100).clamp(1, 1000);
    let dropped = state.store.dropped(limit).await?;
    Ok(Json(json!({"dropped": dropped})))
}

/// Loaded plugins, their state and the chains that use them.
async fn plugins(State(state): State<AppState>, _member: Member) -> Json<serde_json::Value> {
    let registry = state.plugins.current();
    let plugins: Vec<_> = registry
        .plugins
        .iter()
        .map(|(name, p)| {
            json!({
                "name": name,
                "path": p.path,
                "sha256": p.sha256,
                "file_modified": p.mtime.map(rfc3339),
                // The file on disk is not the one running (a reload would load it, or failed to).
                "changed_on_disk": p.changed_on_disk(),
                "last_reload_failure": state.plugins.load_failures.get(name),
                "disabled": p.is_disabled(),
                "failing_keys": p.breaker().failing_keys(),
                "skipped_keys": p.breaker().open_keys(state.clock.now()).into_iter()
                    .map(|(key, until)| json!({"key": key, "until": until}))
                    .collect::<Vec<_>>(),
                "limits": {
                    "fuel": p.limits.fuel,
                    "timeout_ms": p.limits.timeout.as_millis() as u64,
                    "memory_bytes": p.limits.memory,
                },
            })
        })
        .collect();
    Json(json!({
        "plugins": plugins,
        // Every plugin whose latest load failed, running an older version or not running at all.
        "reload_failures": state.plugins.load_failures.all(),
        "chains": registry.chains,
        "instance_pool": state.plugins.pooling(),
    }))
}

/// A file time as RFC 3339 (UTC, milliseconds).
fn rfc3339(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
    Timestamp::from_millis(ms).to_rfc3339()
}

/// Re-reads the config file and reloads plugins and chains (admins only).
async fn reload(State(state): State<AppState>, member: Member) -> Result<Response, ApiError> {
    member.require(Role::Admin)?;
    match crate::reload::reload(&state).await {
        Ok(report) if report.failed.is_empty() => {
            let mut body = json!(report);
            body["members"] = json!(crate::reload::MEMBERS_NOTE);
            Ok(Json(body).into_response())
        }
        // A plugin file that does not load is the caller's to fix, not a server error: 422, naming
        // each plugin and why; their previous versions keep running.
        Ok(report) => {
            let detail = report
                .failed
                .iter()
                .map(|(p, e)| format!("{p}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            let mut body = json!(report);
            body["members"] = json!(crate::reload::MEMBERS_NOTE);
            body["error"] = json!("plugin_load_failed");
            body["detail"] = json!(format!("the previous versions keep running: {detail}"));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
        Err(crate::reload::ReloadError::Config(e)) => {
            Err(ApiError::bad_request("invalid_config", e.to_string()))
        }
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

/// Every member with their presence. Editors and admins also get each member's role, rooms, chat
/// handles, presence reports and email status; viewers get names and presence only (a read-only
/// token, or a leaked one, should not be a directory of addresses and handles).
async fn members(
    State(state): State<AppState>,
    member: Member,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut reports: std::collections::BTreeMap<String, Vec<Presence>> = Default::default();
    for (name, p) in state.store.presence().await? {
        reports.entry(name).or_default().push(p);
    }
    let full = member.role >= Role::Editor;
    let unsubscribed = if full {
        state.store.unsubscribed().await?
    } else {
        Default::default()
    };
    let policy = crate::outbox::mail_policy(&state.config);
    let list: Vec<serde_json::Value> = state
        .config
        .members
        .iter()
        // Members removed by a reload are gone from the list too.
        .filter_map(|(name, m)| Some((name, m, state.members.role(name)?)))
        .map(|(name, m, role)| {
            let theirs = reports.remove(name).unwrap_or_default();
            if !full {
                return json!({"name": name, "presence": presence::effective(&theirs)});
            }
            let rooms: Vec<&String> = state
                .config
                .rooms
                .iter()
                .filter(|(_, r)| r.members.contains(name))
                .map(|(room, _)| room)
                .collect();
            json!({
                "name": name,
                "role": role.as_str(),
                "rooms": rooms,
                "handles": m.handles.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect::<std::collections::BTreeMap<_, _>>(),
                "presence": presence::effective(&theirs),
                "reports": theirs,
                "email": email_status(&state, &policy, name, &unsubscribed),
            })
        })
        .collect();
    Ok(Json(json!({"members": list})))
}

/// Whether and how a member is emailed: `null` without an address or an `email:` block.
fn email_status(
    state: &AppState,
    policy: &crate::domain::mail::MailPolicy,
    name: &str,
    unsubscribed: &std::collections::BTreeSet<String>,
) -> serde_json::Value {
    let address = state
        .config
        .members
        .get(name)
        .and_then(|m| m.email.as_ref());
    match (address, &state.config.email) {
        (Some(address), Some(_)) => {
            let prefs = policy.members.get(name);
            json!({
                "address": address.0,
                "mode": prefs.map_or("never", |p| match p.mode {
                    crate::domain::mail::NotifyMode::Immediate => "immediate",
                    crate::domain::mail::NotifyMode::Batched => "batched",
                    crate::domain::mail::NotifyMode::Never => "never",
                }),
                "delay_seconds": prefs.map(|p| p.delay.as_secs()),
                "unsubscribed": unsubscribed.contains(name),
            })
        }
        _ => serde_json::Value::Null,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceBody {
    state: String,
}

/// Sets a member's presence as reported through the API (source `api`). Members set their own; admins
/// may set anyone's.
async fn set_presence(
    State(state): State<AppState>,
    member: Member,
    Path(name): Path<String>,
    AppJson(body): AppJson<PresenceBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !state.members.contains(&name) {
        return Err(ApiError::NotFound(format!("no member `{name}`")));
    }
    if member.name != name {
        member.require(Role::Admin)?;
    }
    let Some(s) = PresenceState::from_name(&body.state) else {
        return Err(ApiError::bad_request(
            "invalid_state",
            format!(
                "state `{}` must be online, away, dnd or offline",
                body.state
            ),
        ));
    };
    let report = Presence {
        state: s,
        since: state.clock.now(),
        source: "api".into(),
    };
    state.store.set_presence(&name, report.clone()).await?;
    Ok(Json(json!({"member": name, "report": report})))
}
