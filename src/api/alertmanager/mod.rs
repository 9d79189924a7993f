//! Alertmanager's API v2, read and write, over tocsin's tickets and silences: what amtool, Karma,
//! Grafana's Alertmanager data source and Alerta use. (`POST .../api/v2/alerts`, how alerts come in,
//! is `ingest`'s.)
//!
//! Served bare (`/api/v2/...`) and under every prometheus source's prefix
//! (`/ingest/<source>/api/v2/...`, Prometheus's `path_prefix`); both show all of tocsin. Reads need a
//! member's token unless `alertmanager_api.read: open`; writes (silences) need an editor's or admin's.
//! Credentials are a bearer token, or basic auth with the member's name and token (what amtool's
//! `--http.config.file` and Karma's URLs carry). Errors are JSON strings, as Alertmanager's are, so
//! its generated clients show them.

mod shapes;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawPathParams, RawQuery, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::json;

use crate::config::{ReadAccess, Role, SourceKind};
use crate::domain::silence::Silence;
use crate::domain::ticket::{Ticket, TicketState};
use crate::error::ApiError;
use crate::state::{AppState, Member};
use crate::store::{StoreError, TicketFilter};
use shapes::{AlertGroup, GettableAlert, Receiver};

/// At most this many open tickets are listed; the rest are left out (the `X-Tocsin-Truncated` header
/// says so), so one read during a storm stays bounded in memory and time.
const MAX_ALERTS: usize = 10_000;
/// Tickets read from the store per query.
const PAGE: usize = 1_000;

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for prefix in ["", "/ingest/{source}"] {
        r = r
            .route(&format!("{prefix}/api/v2/alerts"), get(alerts))
            .route(&format!("{prefix}/api/v2/alerts/groups"), get(groups))
            .route(
                &format!("{prefix}/api/v2/silences"),
                get(silences).post(post_silence),
            )
            .route(
                &format!("{prefix}/api/v2/silence/{{id}}"),
                get(silence).delete(expire),
            )
            .route(&format!("{prefix}/api/v2/receivers"), get(receivers))
            .route(&format!("{prefix}/api/v2/status"), get(status));
    }
    r
}

/// An error in Alertmanager's shape: the status tocsin gives it, and a JSON string naming it.
struct AmError(ApiError);

impl From<ApiError> for AmError {
    fn from(e: ApiError) -> Self {
        AmError(e)
    }
}

impl From<StoreError> for AmError {
    fn from(e: StoreError) -> Self {
        AmError(e.into())
    }
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        self.0
            .into_response_with(|code, detail| json!(format!("{code}: {detail}")))
    }
}

type AmResult = Result<Response, AmError>;

/// Who is asking, once the path's source (if any) is known to be a prometheus source and the read
/// access allows them: `None` for an anonymous reader under `read: open`.
struct Caller(Option<Member>);

impl Caller {
    /// The member, if an editor or admin: silences are theirs to make and end.
    fn writer(self) -> Result<Member, AmError> {
        let member = self.0.ok_or_else(|| ApiError::Unauthorized {
            challenge: "Basic",
            detail: "changing silences needs an editor's or admin's token (bearer, or basic auth \
                     with the member's name and token)"
                .into(),
        })?;
        member.require(Role::Editor)?;
        Ok(member)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AmError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AmError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
        if let Some((_, name)) = params.iter().find(|(k, _)| *k == "source") {
            match state.sources.get(name) {
                Some(src) if src.kind == SourceKind::Prometheus => {}
                Some(src) => {
                    return Err(ApiError::NotFound(format!(
                    "source `{name}` is kind {}; the Alertmanager API is served under prometheus \
                         sources (and at /api/v2)",
                    src.kind.as_str()
                ))
                    .into())
                }
                None => {
                    return Err(ApiError::NotFound(format!(
                        "no source named `{name}` is configured"
                    ))
                    .into())
                }
            }
        }
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim);
        let open = state.config.alertmanager_api.read == ReadAccess::Open;
        let member = match given {
            None if open => None,
            Some(v) if v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ") => {
                Some(basic(state, parts, &v[6..])?)
            }
            // A bearer token or the web UI's session: as the rest of the API takes them.
            _ => Some(Member::from_request_parts(parts, state).await?),
        };
        Ok(Caller(member))
    }
}

/// Basic auth: the member's name and their token. Failures count towards the same per-address
/// throttle as bearer tokens.
fn basic(state: &AppState, parts: &Parts, encoded: &str) -> Result<Member, ApiError> {
    let client =
        crate::throttle::client(state.client_ip_header(), &parts.headers, &parts.extensions);
    let now = state.clock.now();
    state.failures.check(&client, now)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let member = decoded.as_deref().and_then(|text| {
        let (name, token) = text.split_once(':')?;
        state.members.by_token(token).filter(|m| m.name == name)
    });
    member.ok_or_else(|| {
        state.failures.record(&client, now);
        ApiError::Unauthorized {
            challenge: "Basic",
            detail: "basic auth needs a member's name and that member's token".into(),
        }
    })
}

/// Every open ticket (open or acked), oldest first, at most [`MAX_ALERTS`]; `true` when some were
/// left out.
async fn open_tickets(state: &AppState) -> Result<(Vec<Ticket>, bool), AmError> {
    let mut out: Vec<Ticket> = Vec::new();
    let mut before = None;
    loop {
        let page = state
            .store
            .list_tickets(&TicketFilter {
                states: vec![TicketState::Open, TicketState::Acked],
                limit: PAGE,
                before_number: before,
                ..TicketFilter::default()
            })
            .await?;
        let done = page.len() < PAGE;
        before = page.iter().map(|t| t.number).min();
        out.extend(page);
        if out.len() >= MAX_ALERTS {
            out.truncate(MAX_ALERTS);
            out.sort_by_key(|t| t.number);
            return Ok((out, !done));
        }
        if done || before.is_none() {
            out.sort_by_key(|t| t.number);
            return Ok((out, false));
        }
    }
}

/// An open ticket as an alert, with the rooms each route sent it to (`Router::matched`).
type ListedAlert = (GettableAlert, Vec<(Option<usize>, String)>, Ticket);

/// The open tickets as alerts.
struct Listed {
    alerts: Vec<ListedAlert>,
    truncated: bool,
}

async fn listed(state: &AppState) -> Result<Listed, AmError> {
    let now = state.clock.now();
    let (tickets, truncated) = open_tickets(state).await?;
    let active: Vec<Silence> = state.store.silences(Some(now)).await?;
    let router = crate::outbox::router(&state.config, &BTreeMap::new());
    let root = crate::config::root_receiver(&state.config);
    let alerts = tickets
        .into_iter()
        .map(|t| {
            let matched = router.matched(&t);
            let mut receivers: Vec<String> = Vec::new();
            for (_, room) in &matched {
                if !receivers.contains(room) {
                    receivers.push(room.clone());
                }
            }
            if receivers.is_empty() {
                receivers.push(root.clone());
            }
            let silenced_by = active
                .iter()
                .filter(|s| s.active(now) && s.matches(&t))
                .map(|s| shapes::silence_uuid(s.id))
                .collect();
            let lease = state
                .sources
                .get(&t.source)
                .map_or(Duration::from_secs(300), |s| s.resolve_timeout);
            let link = router.ticket_link(t.number);
            let alert = shapes::alert(&t, receivers, silenced_by, now, lease, link);
            (alert, matched, t)
        })
        .collect();
    Ok(Listed { alerts, truncated })
}

fn truncated(mut response: Response, truncated: bool) -> Response {
    if truncated {
        response.headers_mut().insert(
            "x-tocsin-truncated",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    response
}

async fn alerts(State(state): State<AppState>, _c: Caller, RawQuery(q): RawQuery) -> AmResult {
    let query = shapes::alert_query(q.as_deref())?;
    let listed = listed(&state).await?;
    let out: Vec<GettableAlert> = listed
        .alerts
        .into_iter()
        .filter(|(a, _, t)| query.keeps(a, t))
        .map(|(a, _, _)| a)
        .collect();
    Ok(truncated(Json(out).into_response(), listed.truncated))
}

/// One group per route and room (tocsin has no `group_by` yet, so a route's alerts are one group,
/// as an Alertmanager route without `group_by` makes them), then one per room only plugins chose,
/// then the root receiver's for alerts sent nowhere. Groups are in routing order.
async fn groups(State(state): State<AppState>, _c: Caller, RawQuery(q): RawQuery) -> AmResult {
    let query = shapes::alert_query(q.as_deref())?;
    let listed = listed(&state).await?;
    let root = crate::config::root_receiver(&state.config);
    // (route index, or usize::MAX for plugin rooms and the root) and receiver → alerts.
    let mut groups: BTreeMap<(usize, String), Vec<GettableAlert>> = BTreeMap::new();
    for (alert, matched, t) in &listed.alerts {
        if !query.keeps(alert, t) {
            continue;
        }
        let keys: Vec<(usize, String)> = if matched.is_empty() {
            vec![(usize::MAX, root.clone())]
        } else {
            matched
                .iter()
                .map(|(i, room)| (i.unwrap_or(usize::MAX), room.clone()))
                .collect()
        };
        for key in keys {
            if query.receiver_ok(std::iter::once(key.1.as_str())) {
                groups.entry(key).or_default().push(alert.clone());
            }
        }
    }
    let out: Vec<AlertGroup> = groups
        .into_iter()
        .map(|((_, receiver), alerts)| AlertGroup {
            labels: Default::default(),
            receiver: Receiver { name: receiver },
            alerts,
        })
        .collect();
    Ok(truncated(Json(out).into_response(), listed.truncated))
}

async fn silences(State(state): State<AppState>, _c: Caller, RawQuery(q): RawQuery) -> AmResult {
    let query = shapes::silence_query(q.as_deref())?;
    let now = state.clock.now();
    let mut all = state.store.silences(None).await?;
    all.retain(|s| query.keeps(s));
    let out: Vec<shapes::GettableSilence> = all.iter().map(|s| shapes::silence(s, now)).collect();
    Ok(Json(out).into_response())
}

fn id_param(params: &RawPathParams) -> Result<i64, AmError> {
    let text = params
        .iter()
        .find(|(k, _)| *k == "id")
        .map(|(_, v)| v)
        .unwrap_or("");
    shapes::parse_silence_id(text).ok_or_else(|| {
        AmError(ApiError::bad_request(
            "invalid_id",
            format!("`{text}` is not a silence id"),
        ))
    })
}

/// amtool's `silence import` posts each silence with its id, and makes it anew when the answer
/// says "not found": so the message says exactly that.
fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("silence {id} not found"))
}

async fn find_silence(state: &AppState, id: i64) -> Result<Silence, AmError> {
    state
        .store
        .silences(None)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| AmError(not_found(&shapes::silence_uuid(id))))
}

async fn silence(State(state): State<AppState>, _c: Caller, params: RawPathParams) -> AmResult {
    let id = id_param(&params)?;
    let s = find_silence(&state, id).await?;
    Ok(Json(shapes::silence(&s, state.clock.now())).into_response())
}

/// Makes a silence, or with an `id` replaces that one: the old one is expired and a new one made, so
/// the answer's `silenceID` is new (Alertmanager does the same whenever it cannot edit in place).
async fn post_silence(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> AmResult {
    let member = caller.writer()?;
    let body = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let posted: shapes::PostableSilence = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("not a postableSilence: {e}"))
    })?;
    let now = state.clock.now();
    let draft = shapes::draft(&posted, &member.name, now)?;
    let replaced = match posted.id.as_deref().filter(|id| !id.is_empty()) {
        Some(text) => {
            let id = shapes::parse_silence_id(text).ok_or_else(|| not_found(text))?;
            Some(find_silence(&state, id).await?.id)
        }
        None => None,
    };
    let created = state.store.create_silence(draft, now).await?;
    if let Some(old) = replaced {
        state.store.expire_silence(old, &member.name, now).await?;
    }
    tracing::info!(silence = created.id, replaced = ?replaced, member = %member.name, "Silence created through the Alertmanager API.");
    Ok(Json(json!({"silenceID": shapes::silence_uuid(created.id)})).into_response())
}

async fn expire(State(state): State<AppState>, caller: Caller, params: RawPathParams) -> AmResult {
    let member = caller.writer()?;
    let id = id_param(&params)?;
    match state
        .store
        .expire_silence(id, &member.name, state.clock.now())
        .await
    {
        Err(StoreError::NotFound) => return Err(AmError(not_found(&shapes::silence_uuid(id)))),
        other => other?,
    };
    tracing::info!(silence = id, member = %member.name, "Silence expired through the Alertmanager API.");
    Ok(Json(json!({})).into_response())
}

async fn receivers(State(state): State<AppState>, _c: Caller) -> AmResult {
    let mut names: Vec<String> = state.config.rooms.keys().cloned().collect();
    names.push(crate::config::root_receiver(&state.config));
    names.sort();
    let out: Vec<Receiver> = names.into_iter().map(|name| Receiver { name }).collect();
    Ok(Json(out).into_response())
}

/// `cluster` lists the instances sharing the database (when there are several), `config.original`
/// is the routes as an Alertmanager config, and `versionInfo.version` is `alertmanager_api.version`;
/// tocsin's own version is in `revision`.
async fn status(State(state): State<AppState>, _c: Caller) -> AmResult {
    let (cluster_status, peers) = if state.cluster.mode == crate::cluster::Mode::Shared {
        let peers: Vec<serde_json::Value> = state
            .store
            .instances()
            .await?
            .into_iter()
            .map(|i| json!({"name": i.id, "address": i.address}))
            .collect();
        ("ready", peers)
    } else {
        ("disabled", Vec::new())
    };
    Ok(Json(json!({
        "cluster": {"name": state.cluster.id, "status": cluster_status, "peers": peers},
        "config": {"original": crate::config::render_routes(&state.config)},
        "uptime": state.started_at.to_rfc3339(),
        "versionInfo": {
            "version": state.config.alertmanager_api.version,
            "revision": concat!("tocsin-", env!("CARGO_PKG_VERSION")),
            "branch": "", "buildUser": "", "buildDate": "", "goVersion": "",
        }
    }))
    .into_response())
}
