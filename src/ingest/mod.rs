//! Ingest: the HTTP endpoints monitoring systems post to, one per configured source.
//!
//! A request is checked (source, auth, content type, size, load), parsed into normalised alerts, and
//! durably appended to the journal before tocsin answers 2xx. Nothing else happens on the request path:
//! tickets are made behind the journal by `pipeline`.
//!
//! Routes:
//! - `POST /ingest/{source}`: the source kind's native payload.
//! - `POST /ingest/{source}/api/v2/alerts` (and `/api/v1/alerts`): prometheus sources pose as an
//!   Alertmanager, so Prometheus can use `path_prefix: /ingest/{source}`.
//! - `POST /api/v2/alerts`: the same, when exactly one prometheus source exists.
//! - `POST /ingest/{source}/v2/enqueue`, `/v2/change/enqueue`, `/generic/2010-04-15/create_event.json`:
//!   PagerDuty's Events API v2, Change Events and Events API v1, for pagerduty sources (`pagerduty`).
//!
//! The rest of Alertmanager's API (reading alerts, silences, status) is `api::alertmanager`'s.

mod auth;
pub mod kinds;
mod pagerduty;
pub mod parse;
#[cfg(test)]
mod roundtrip_tests;

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

pub use auth::{secrets_match, Replays};

use crate::config::{AuthConfig, SourceKind};
use crate::error::ApiError;
use crate::state::{AppState, Source};

/// What only the ingest routes keep, beside what every handler shares ([`AppState`]): SNS certificates
/// and the memories of signed requests and SNS notifications already taken. `App` builds it once.
#[derive(Debug, Default)]
pub struct Ingest {
    /// Signed ingest requests already taken (HMAC with a timestamp), against replays.
    pub replays: Replays,
    /// SNS notifications already taken, by `MessageId` (see `kinds::sns::REPLAY_MEMORY`).
    pub sns_messages: Replays,
    /// SNS certificates and subscription confirmation.
    pub sns: Sns,
}

/// The state of the ingest routes: what every handler shares, and [`Ingest`].
#[derive(Debug, Clone)]
struct IngestState {
    app: AppState,
    ingest: Arc<Ingest>,
}

impl std::ops::Deref for IngestState {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.app
    }
}

/// The ingest routes, on the shared state and [`Ingest`].
pub fn router<S: Clone + Send + Sync + 'static>(app: AppState, ingest: Arc<Ingest>) -> Router<S> {
    Router::new()
        .route("/ingest/{source}", post(native))
        .route("/ingest/{source}/api/v2/alerts", post(prefixed_alerts))
        .route("/ingest/{source}/api/v1/alerts", post(prefixed_alerts))
        .route("/api/v2/alerts", post(bare_alerts))
        .route("/api/v1/alerts", post(bare_alerts))
        .merge(pagerduty::routes())
        .with_state(IngestState { app, ingest })
}

/// The client address a request counts under, for throttling credential guessers.
#[derive(Debug, Clone)]
struct Client(String);

impl axum::extract::FromRequestParts<IngestState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &IngestState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(crate::throttle::client(
            state.client_ip_header(),
            &parts.headers,
            &parts.extensions,
        )))
    }
}

/// What a request looked like, for the parts of handling that do not care which route it came by.
struct Request {
    headers: HeaderMap,
    query: Option<String>,
    body: Body,
    /// Who sent it, for throttling credential guessers (see `web::throttle`).
    client: Client,
    /// For pagerduty sources: which of PagerDuty's APIs the path was.
    pagerduty: pagerduty::Api,
}

async fn native(
    State(state): State<IngestState>,
    client: Client,
    Path(source): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = native_as(
        &state,
        client,
        &source,
        query,
        headers,
        body,
        Default::default(),
    )
    .await;
    // A pagerduty source answers PagerDuty's way on its own path too.
    if find(&state, &source).is_ok_and(|src| src.kind == SourceKind::Pagerduty) {
        return pagerduty::shaped(response).await;
    }
    response
}

/// A source's own payload, or for a pagerduty source the PagerDuty API `api`.
async fn native_as(
    state: &IngestState,
    client: Client,
    source: &str,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
    api: pagerduty::Api,
) -> Response {
    let req = Request {
        headers,
        query,
        body,
        client,
        pagerduty: api,
    };
    match find(state, source) {
        Ok(src) => accept(state, src, req).await,
        Err(e) => e.into_response(),
    }
}

async fn prefixed_alerts(
    State(state): State<IngestState>,
    client: Client,
    Path(source): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req = Request {
        headers,
        query,
        body,
        client,
        pagerduty: Default::default(),
    };
    match find(&state, &source).and_then(require_prometheus) {
        Ok(src) => accept(&state, src, req).await,
        Err(e) => e.into_response(),
    }
}

async fn bare_alerts(
    State(state): State<IngestState>,
    client: Client,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let req = Request {
        headers,
        query,
        body,
        client,
        pagerduty: Default::default(),
    };
    match default_prometheus(&state) {
        Ok(src) => accept(&state, src, req).await,
        Err(e) => e.into_response(),
    }
}

fn find<'a>(state: &'a IngestState, name: &str) -> Result<&'a Source, ApiError> {
    state
        .sources
        .get(name)
        .ok_or_else(|| ApiError::NotFound(format!("no source named `{name}` is configured")))
}

fn require_prometheus(src: &Source) -> Result<&Source, ApiError> {
    if src.kind == SourceKind::Prometheus {
        Ok(src)
    } else {
        Err(ApiError::NotFound(format!(
            "source `{}` is kind {}; the Alertmanager API is served for prometheus sources only (post to /ingest/{})",
            src.name,
            src.kind.as_str(),
            src.name
        )))
    }
}

fn default_prometheus(state: &IngestState) -> Result<&Source, ApiError> {
    state
        .default_prometheus
        .as_ref()
        .and_then(|n| state.sources.get(n))
        .ok_or_else(|| {
            ApiError::NotFound(
                "/api/v2/alerts is served only when exactly one prometheus source is configured; \
                 use /ingest/<source>/api/v2/alerts"
                    .into(),
            )
        })
}

async fn accept(state: &IngestState, src: &Source, req: Request) -> Response {
    let started = Instant::now();
    // Credential guessers are throttled per source and client address: after too many failures,
    // every attempt (right or wrong) gets 429 for a while.
    let guesser = format!("{}/{}", src.name, req.client.0);
    let result = match state.ingest_failures.check(&guesser, state.clock.now()) {
        Ok(()) => accept_inner(state, src, req, &guesser).await,
        Err(e) => Err(e),
    };
    if matches!(result, Err(ApiError::Unauthorized { .. })) {
        state.ingest_failures.record(&guesser, state.clock.now());
    }
    state.metrics.ingest_latency(&src.name, started.elapsed());
    match result {
        Ok(r) => r,
        Err(e) => {
            state.metrics.alerts_received(&src.name, e.code(), 1);
            e.into_response()
        }
    }
}

async fn accept_inner(
    state: &IngestState,
    src: &Source,
    req: Request,
    guesser: &str,
) -> Result<Response, ApiError> {
    let Request {
        headers,
        query,
        body,
        client: _,
        pagerduty: api,
    } = req;
    // Every method is enforced on every kind. The one exception to "headers first" is a PagerDuty
    // source with `token`: Events API senders carry the key in the body (`routing_key`), checked once the
    // body is read. The rate limit is charged only after authentication (by each kind's path below), so
    // unauthenticated posts cannot use up a real sender's budget.
    let key_in_body =
        src.kind == SourceKind::Pagerduty && matches!(src.auth, Some(AuthConfig::Token(_)));
    if let Some(a) = &src.auth {
        if !auth::needs_body(a) && !key_in_body {
            auth::check(a, &headers, query.as_deref(), b"", state.clock.now())?;
        }
    }
    check_content_type(&headers, src.kind)?;
    check_load(state, src)?;
    let bytes = read_body(&headers, body, src.max_body).await?;
    if let Some(a) = &src.auth {
        if auth::needs_body(a) {
            auth::check_once(
                a,
                &headers,
                query.as_deref(),
                &bytes,
                state.clock.now(),
                &state.ingest.replays,
                &src.name,
            )?;
        }
    }
    let cx = parse::Context {
        source: &src.name,
        now: state.clock.now(),
        resolve_timeout: src.resolve_timeout,
        keep_raw: state.plugins.current().wants_raw(&src.name),
    };
    if src.kind == SourceKind::Pagerduty {
        return pagerduty::handle(state, src, &bytes, &cx, guesser, api).await;
    }
    if src.kind == SourceKind::Sns {
        return sns(state, src, &bytes, &cx).await;
    }
    check_rate(src)?;
    let parsed = match src.kind {
        SourceKind::Prometheus => parse::prometheus(&bytes, &cx),
        SourceKind::Alertmanager => parse::alertmanager(&bytes, &cx),
        SourceKind::Generic => match &src.mapping {
            Some(m) => kinds::mapping::parse(m, &bytes, &cx),
            None => parse::generic(&bytes, &cx),
        },
        SourceKind::Grafana => kinds::grafana::parse(&bytes, &cx),
        SourceKind::Sentry => kinds::sentry::parse(
            headers
                .get("sentry-hook-resource")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            &bytes,
            &cx,
        ),
        SourceKind::Datadog => kinds::datadog::parse(&bytes, &cx),
        SourceKind::Newrelic => kinds::newrelic::parse(&bytes, &cx),
        SourceKind::Zabbix => kinds::zabbix::parse(&bytes, &cx),
        SourceKind::UptimeKuma => kinds::uptime_kuma::parse(&bytes, &cx),
        SourceKind::Pagerduty | SourceKind::Sns => {
            return Err(ApiError::bad_request(
                "invalid_payload",
                "not yet".to_string(),
            ))
        }
    }
    .map_err(|detail| ApiError::bad_request("invalid_payload", detail))?;

    // Durable before we answer: once this returns, the alerts survive a crash.
    state.store.append_journal(&parsed.alerts).await?;
    let accepted = parsed.alerts.len() as u64;
    state.journal.accepted(&parsed.alerts);
    state
        .metrics
        .alerts_received(&src.name, "accepted", accepted);

    if !parsed.rejected.is_empty() {
        state
            .metrics
            .alerts_received(&src.name, "invalid", parsed.rejected.len() as u64);
    }
    if src.kind == SourceKind::Generic && !parsed.rejected.is_empty() {
        // A generic batch (tocsin's JSON or `mapping:` rules) with bad items: the good ones are on
        // disk and will be applied, so the answer is 2xx, listing each bad item (index and reason).
        // Only when no item was good is the answer 400. Refusing the whole batch would lose the good
        // alerts of every sender that does not retry a 4xx; a bare 400 would hide that they were
        // applied.
        let rejected: Vec<Value> = parsed.rejected.iter().map(|r| item_error(r)).collect();
        let fingerprints: Vec<&str> = parsed
            .alerts
            .iter()
            .map(|a| a.fingerprint.as_str())
            .collect();
        let status = if accepted == 0 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::ACCEPTED
        };
        let mut body = json!({
            "accepted": accepted,
            "fingerprints": fingerprints,
            "rejected": rejected,
        });
        if accepted == 0 {
            body["error"] = json!("invalid_alerts");
            body["detail"] = json!(format!(
                "all {} alerts rejected: {}",
                parsed.rejected.len(),
                parsed.rejected.join("; ")
            ));
        }
        return Ok((status, Json(body)).into_response());
    }
    if !parsed.rejected.is_empty() {
        // Like Alertmanager: the valid alerts are kept, and the sender learns which ones were not.
        return Err(ApiError::bad_request(
            "invalid_alerts",
            format!(
                "{} of {} alerts rejected ({} accepted): {}",
                parsed.rejected.len(),
                parsed.rejected.len() as u64 + accepted,
                accepted,
                parsed.rejected.join("; ")
            ),
        ));
    }
    Ok(match src.kind {
        // Alertmanager answers Prometheus with an empty 200.
        SourceKind::Prometheus => StatusCode::OK.into_response(),
        SourceKind::Alertmanager => {
            (StatusCode::OK, Json(json!({"accepted": accepted}))).into_response()
        }
        _ => {
            let fingerprints: Vec<&str> = parsed
                .alerts
                .iter()
                .map(|a| a.fingerprint.as_str())
                .collect();
            (
                StatusCode::ACCEPTED,
                Json(json!({"accepted": accepted, "fingerprints": fingerprints})),
            )
                .into_response()
        }
    })
}

/// `alerts[3]: title is empty` as `{"index": 3, "error": "title is empty"}`: how the generic parsers
/// name a rejected item.
fn item_error(rejected: &str) -> Value {
    let parsed = rejected
        .strip_prefix("alerts[")
        .and_then(|r| r.split_once("]: "))
        .and_then(|(i, e)| Some((i.parse::<u64>().ok()?, e)));
    match parsed {
        Some((index, error)) => json!({"index": index, "error": error}),
        None => json!({"index": null, "error": rejected}),
    }
}

/// What SNS sources share: fetched signing certificates, and the fetch that confirms subscriptions.
#[derive(Debug)]
pub struct Sns {
    pub certs: kinds::sns::CertCache,
    confirm: std::sync::RwLock<std::sync::Arc<dyn kinds::sns::CertFetch>>,
}

impl Sns {
    /// Fetching over HTTPS from AWS.
    pub fn new() -> Sns {
        let fetch: std::sync::Arc<dyn kinds::sns::CertFetch> = std::sync::Arc::new(HttpFetch);
        Sns {
            certs: kinds::sns::CertCache::new(std::sync::Arc::clone(&fetch)),
            confirm: std::sync::RwLock::new(fetch),
        }
    }

    /// Replaces the fetch that confirms subscriptions (tests cannot reach AWS).
    pub fn set_confirm(&self, fetch: std::sync::Arc<dyn kinds::sns::CertFetch>) {
        if let Ok(mut f) = self.confirm.write() {
            *f = fetch;
        }
    }

    fn confirmer(&self) -> std::sync::Arc<dyn kinds::sns::CertFetch> {
        match self.confirm.read() {
            Ok(f) => std::sync::Arc::clone(&f),
            Err(e) => std::sync::Arc::clone(&e.into_inner()),
        }
    }
}

impl Default for Sns {
    fn default() -> Self {
        Sns::new()
    }
}

/// GETs through the sinks' HTTP client (no redirects), small and quick: a certificate is a few KB.
#[derive(Debug)]
struct HttpFetch;

#[async_trait::async_trait]
impl kinds::sns::CertFetch for HttpFetch {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        crate::sinks::http::get(url, std::time::Duration::from_secs(5), 64 * 1024).await
    }
}

/// AWS SNS: the signature is checked before anything else (with the certificate from an SNS host),
/// then the topic; subscriptions are confirmed by a GET of `SubscribeURL`, on an SNS host only.
async fn sns(
    state: &IngestState,
    src: &Source,
    bytes: &[u8],
    cx: &parse::Context<'_>,
) -> Result<Response, ApiError> {
    let env =
        kinds::sns::envelope(bytes).map_err(|e| ApiError::bad_request("invalid_payload", e))?;
    let unauthorized = |detail: String| ApiError::Unauthorized {
        challenge: "Signature",
        detail,
    };
    if !kinds::sns::cert_url_allowed(&env.signing_cert_url) {
        return Err(unauthorized(format!(
            "SigningCertURL `{}` is not on an SNS host",
            env.signing_cert_url
        )));
    }
    let pem = state
        .ingest
        .sns
        .certs
        .get(&env.signing_cert_url)
        .await
        .map_err(|e| {
            // 503: SNS retries 5xx (and 429) under its delivery policy but takes other 4xx as a
            // permanent failure, and a certificate that cannot be fetched now may be fetched later.
            ApiError::Upstream(format!(
                "the SNS signing certificate could not be fetched from {}: {e}",
                kinds::sns::url_host(&env.signing_cert_url)
            ))
        })?;
    kinds::sns::verify(&env, &pem).map_err(|e| unauthorized(format!("SNS signature: {e}")))?;
    check_rate(src)?;
    if !src.topics.is_empty() && !src.topics.contains(&env.topic_arn) {
        return Err(ApiError::Forbidden(format!(
            "topic {} is not in sources.{}.topics",
            env.topic_arn, src.name
        )));
    }
    match env.kind {
        kinds::sns::MessageType::SubscriptionConfirmation => {
            let url = env.subscribe_url.clone().unwrap_or_default();
            if !subscribe_url_allowed(&url) {
                return Err(ApiError::bad_request(
                    "invalid_payload",
                    format!("SubscribeURL `{url}` is not on an SNS host; not confirming"),
                ));
            }
            state.ingest.sns.confirmer().get(&url).await.map_err(|e| {
                ApiError::Upstream(format!("confirming the subscription failed: {e}"))
            })?;
            tracing::info!(source = %src.name, topic = %env.topic_arn, "Confirmed an SNS subscription.");
            Ok((StatusCode::OK, Json(json!({"confirmed": env.topic_arn}))).into_response())
        }
        kinds::sns::MessageType::UnsubscribeConfirmation => {
            tracing::info!(source = %src.name, topic = %env.topic_arn, "SNS says the subscription ended.");
            Ok((StatusCode::OK, Json(json!({"accepted": 0}))).into_response())
        }
        kinds::sns::MessageType::Notification => {
            // A signed MessageId already taken (an SNS retry, or a replay): accepted once is enough.
            let scope = format!("sns:{}", src.name);
            if state
                .ingest
                .sns_messages
                .contains(&scope, env.message_id.as_bytes(), cx.now)
            {
                return Ok((
                    StatusCode::OK,
                    Json(json!({"accepted": 0, "duplicate": true})),
                )
                    .into_response());
            }
            let parsed = kinds::sns::alerts(&env, cx);
            state.store.append_journal(&parsed.alerts).await?;
            let forget_at = cx.now.plus(kinds::sns::REPLAY_MEMORY);
            let _ = state.ingest.sns_messages.take(
                &scope,
                env.message_id.as_bytes(),
                forget_at,
                cx.now,
            );
            let accepted = parsed.alerts.len() as u64;
            state.journal.appended(accepted);
            state
                .metrics
                .alerts_received(&src.name, "accepted", accepted);
            Ok((StatusCode::OK, Json(json!({"accepted": accepted}))).into_response())
        }
    }
}

/// `https://sns.<region>.amazonaws.com/?Action=ConfirmSubscription...`: the same hosts as
/// certificates, any path and query.
fn subscribe_url_allowed(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    // Reuse the certificate rule on a made-up certificate path of this host.
    kinds::sns::cert_url_allowed(&format!("https://{host}/x.pem"))
}

fn check_content_type(headers: &HeaderMap, kind: SourceKind) -> Result<(), ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        Ok(())
    } else if kind == SourceKind::Sns && mime == "text/plain" {
        // SNS posts its JSON as text/plain unless the subscription's delivery policy says otherwise.
        Ok(())
    } else if mime.is_empty() {
        Err(ApiError::UnsupportedMediaType(
            "send Content-Type: application/json".into(),
        ))
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "content type `{mime}` is not accepted; send application/json"
        )))
    }
}

/// Holds a source to its `rate_limit`. Charged only after authentication (HMAC, routing keys and SNS
/// signatures included), so an unauthenticated flood cannot use up a real sender's budget.
fn check_rate(src: &Source) -> Result<(), ApiError> {
    let Some(limiter) = &src.limiter else {
        return Ok(());
    };
    let Err(wait) = limiter.check() else {
        return Ok(());
    };
    let status = match src.kind {
        SourceKind::Generic | SourceKind::Prometheus | SourceKind::Pagerduty | SourceKind::Sns => {
            StatusCode::TOO_MANY_REQUESTS
        }
        // These retry 5xx, never 4xx (Alertmanager, Grafana, Datadog...): a 429 would lose the alert.
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    Err(ApiError::Overloaded {
        status,
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        detail: format!(
            "source {} is over its rate limit; retry after the Retry-After delay",
            src.name
        ),
    })
}

/// Refuses work when the journal backlog is over the limit. Alertmanager retries 5xx but never 4xx, so
/// it gets 503; generic senders get 429 with `Retry-After`.
fn check_load(state: &IngestState, src: &Source) -> Result<(), ApiError> {
    let backlog = state.journal.backlog();
    let bytes = state.journal.backlog_bytes();
    let max_bytes = state.config.ingest.max_backlog_bytes.0 .0;
    if backlog < state.config.ingest.max_backlog && bytes < max_bytes {
        return Ok(());
    }
    let status = match src.kind {
        SourceKind::Generic | SourceKind::Pagerduty | SourceKind::Sns => {
            StatusCode::TOO_MANY_REQUESTS
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    Err(ApiError::Overloaded {
        status,
        retry_after_secs: 5,
        detail: format!(
            "{backlog} alerts ({bytes} bytes) are waiting to be processed; retry shortly"
        ),
    })
}

async fn read_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit as usize)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::bad_request("unreadable_body", format!("could not read the body: {e}"))
            }
        })
}
