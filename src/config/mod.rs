//! The configuration file: strict types (unknown keys are errors), `${VAR}` from the environment, and a
//! pure validation pass that reports every problem with its key path and, where known, its line.
//!
//! Steps: [`load`] reads and deserialises (serde stops at the first structural error), then
//! [`Config::validate`] checks meaning and collects all problems at once. Building things from the config
//! (opening the store, binding the port) happens in `app`, never here. Every key is documented in
//! `config/README.md`.

mod alertmanager;
mod chatops;
mod cluster;
mod email;
mod http;
mod mapping;
pub mod plugin_manifest;
mod rooms;
pub mod secrets;
mod values;
mod web;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use alertmanager::{render_routes, root_receiver, AlertmanagerApiConfig, ReadAccess};
pub use chatops::{
    ChatOpsConfig, MatrixChatOpsConfig, MattermostChatOpsConfig, SlackChatOpsConfig,
};
pub use cluster::ClusterConfig;
pub use email::{
    parse_smtp_url, EmailConfig, InboundConfig, NotifyConfig, SmtpEndpoint, SmtpSecurity,
    TrustConfig,
};
pub use http::{HttpConfig, StreamsConfig};
pub use mapping::MappingConfig;
pub use rooms::{
    DigestConfig, DiscordSinkConfig, HoursConfig, MatrixSinkConfig, MattermostSinkConfig,
    OffHoursConfig, RateLimitConfig, RoomConfig, RouteConfig, SinkConfig, SlackSinkConfig,
    TeamsSinkConfig, WebhookSinkConfig,
};
pub use values::{expand_env, ByteSize, Env, HumanDuration, Secret};
pub use web::WebConfig;

use crate::domain::ticket::Policy;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server binds.
    #[serde(default = "default_listen")]
    pub listen: Env<SocketAddr>,
    /// Limits of the HTTP listener and of live streams.
    #[serde(default)]
    pub http: HttpConfig,
    /// Base URL people reach tocsin at; used in links.
    #[serde(default = "default_public_url")]
    pub public_url: Env<String>,
    /// `sqlite://path/to/file.db` (later also `postgres://...`).
    #[serde(default = "default_storage")]
    pub storage: Env<String>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub members: BTreeMap<String, MemberConfig>,
    /// Named lists of members, mentioned like a member.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Email for members who are not online. Without it tocsin sends none.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// Chat destinations.
    #[serde(default)]
    pub rooms: BTreeMap<String, RoomConfig>,
    /// Acting on tickets from chat: slash commands, buttons, a Matrix bot.
    #[serde(default)]
    pub chatops: Option<ChatOpsConfig>,
    /// Which tickets go to which rooms, in order.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// WebAssembly plugins, declared once and chained per source.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// Where compiled plugins are cached (by content hash), so restarts skip compilation.
    #[serde(default = "default_plugin_cache")]
    pub plugin_cache: Env<String>,
    #[serde(default)]
    pub tickets: TicketsConfig,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// The browser UI: session signing key and lifetime.
    #[serde(default)]
    pub web: Option<WebConfig>,
    /// `metrics:`: who may read `/metrics` (anyone who reaches the port when absent).
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// `cluster:`: several instances on one PostgreSQL (leases, heartbeats).
    #[serde(default)]
    pub cluster: ClusterConfig,
    /// `alertmanager_api:`: who may read tocsin's Alertmanager API v2, and the version it reports.
    #[serde(default)]
    pub alertmanager_api: AlertmanagerApiConfig,
}

fn default_listen() -> Env<SocketAddr> {
    Env(SocketAddr::from(([127, 0, 0, 1], 9077)))
}

fn default_public_url() -> Env<String> {
    Env("http://localhost:9077".to_string())
}

fn default_plugin_cache() -> Env<String> {
    Env("data/plugin-cache".to_string())
}

fn default_storage() -> Env<String> {
    Env("sqlite://data/tocsin.db".to_string())
}

/// What kind of sender a source accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Prometheus (and amtool) talking to tocsin as if it were an Alertmanager: `/api/v2/alerts`.
    Prometheus,
    /// Alertmanager's webhook receiver, payload version 4.
    Alertmanager,
    /// tocsin's own simple JSON format, or any JSON with `mapping` rules.
    Generic,
    /// Grafana unified alerting's webhook contact point.
    Grafana,
    /// Sentry integration webhooks (issue, event_alert, metric_alert, error).
    Sentry,
    /// PagerDuty Events API v2, as a drop-in target (`/ingest/<name>/v2/enqueue`).
    Pagerduty,
    /// Datadog's Webhooks integration, with the payload template in the README.
    Datadog,
    /// New Relic workflow webhooks (default template).
    Newrelic,
    /// Zabbix webhook media type, with the script in the README.
    Zabbix,
    /// Uptime Kuma's webhook notification.
    UptimeKuma,
    /// AWS SNS HTTP(S) notifications, CloudWatch alarms included.
    Sns,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Prometheus => "prometheus",
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Generic => "generic",
            SourceKind::Grafana => "grafana",
            SourceKind::Sentry => "sentry",
            SourceKind::Pagerduty => "pagerduty",
            SourceKind::Datadog => "datadog",
            SourceKind::Newrelic => "newrelic",
            SourceKind::Zabbix => "zabbix",
            SourceKind::UptimeKuma => "uptime_kuma",
            SourceKind::Sns => "sns",
        }
    }
}

/// `sources.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// How senders prove who they are. No `auth` means anyone who can reach the port may post.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Largest accepted request body; defaults to `ingest.max_body`.
    #[serde(default)]
    pub max_body: Option<Env<ByteSize>>,
    /// Prometheus sources only: lease for alerts sent without `endsAt` (Alertmanager's `resolve_timeout`).
    #[serde(default)]
    pub resolve_timeout: Option<Env<HumanDuration>>,
    /// Plugins (`plugins.<name>`) that see this source's alerts, in order.
    #[serde(default)]
    pub plugins: Vec<String>,
    /// Requests per second (with a burst) this source may send. Above it, generic and prometheus
    /// sources get 429 with `Retry-After`, alertmanager sources 503 (which Alertmanager retries).
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Generic sources only: where title, key, status and severity are in the sender's JSON.
    #[serde(default)]
    pub mapping: Option<MappingConfig>,
    /// SNS sources only: topic ARNs whose messages are taken (and whose subscriptions are
    /// confirmed). Empty takes any topic, which lets anyone with an AWS account subscribe tocsin.
    #[serde(default)]
    pub topics: Vec<String>,
    /// PagerDuty sources only: how change events are shown on tickets.
    #[serde(default)]
    pub changes: Option<ChangesConfig>,
}

/// `sources.<name>.changes`: PagerDuty change events (`/v2/change/enqueue`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesConfig {
    /// Tickets of the same system opened up to this long after a change are shown it (tickets open
    /// when it arrives always are). Default 1h.
    #[serde(default)]
    pub window: Option<Env<HumanDuration>>,
}

/// How long after a change tickets opening are shown it, when `changes.window` is not set.
pub const DEFAULT_CHANGE_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);
/// The longest `changes.window`: openings look through the changes still in their window.
pub const MAX_CHANGE_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// `plugins.<name>`: one WebAssembly component and its settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The component file (`.wasm`), relative to the working directory.
    pub path: Env<String>,
    /// Values the plugin reads with `config(key)`. Numbers and booleans become strings.
    #[serde(default)]
    pub config: BTreeMap<String, Env<String>>,
    /// Lookup tables the plugin reads with `lookup(table, key)`.
    #[serde(default)]
    pub tables: BTreeMap<String, BTreeMap<String, Env<String>>>,
    #[serde(default)]
    pub limits: PluginLimitsConfig,
    /// Pass the sender's raw JSON for each alert to the plugin (`raw-json`). Ingest keeps it only for
    /// sources whose chain has such a plugin.
    #[serde(default)]
    pub raw: bool,
    /// Different alert keys failing in a row (no success between) after which the plugin is
    /// switched off until the next reload; 0 never switches it off.
    #[serde(default = "default_disable_after")]
    pub disable_after: u32,
    /// When one alert key (label set) keeps failing, the plugin skips it for a while.
    #[serde(default)]
    pub breaker: PluginBreakerConfig,
    /// The room told when the plugin is switched off (its system ticket is routed there, besides
    /// any route matching `source: tocsin`).
    #[serde(default)]
    pub alert_room: Option<String>,
}

/// `plugins.<name>.breaker`: the per-key breaker (see `domain::breaker`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginBreakerConfig {
    /// Failures in a row on one alert key before the plugin skips that key. Default 3; 0 never skips.
    #[serde(default)]
    pub after: Option<u32>,
    /// How long a key is skipped. Default 10m.
    #[serde(default)]
    pub cooldown: Option<Env<HumanDuration>>,
}

fn default_disable_after() -> u32 {
    10
}

/// `plugins.<name>.limits`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginLimitsConfig {
    /// Fuel (roughly, wasm instructions) per alert. Default 20,000,000.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Wall-clock time per alert. Default 50ms.
    #[serde(default)]
    pub timeout: Option<Env<HumanDuration>>,
    /// Linear memory. Default 16MiB; at most 256MiB.
    #[serde(default)]
    pub memory: Option<Env<ByteSize>>,
}

/// Largest memory a plugin may be given (it sizes the instance pool's reservations).
pub const MAX_PLUGIN_MEMORY: u64 = 256 << 20;

/// `sources.<name>.auth`: exactly one method.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// `Authorization: Bearer <secret>`.
    Bearer(Secret),
    /// HTTP basic auth.
    Basic {
        username: Env<String>,
        password: Secret,
    },
    /// A shared token in the `X-Tocsin-Token` header or the `?token=` query parameter.
    Token(Secret),
    /// HMAC-SHA256 of the raw body, hex (optionally `sha256=`-prefixed), in a header.
    Hmac(HmacConfig),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicConfig {
    username: Env<String>,
    password: Secret,
}

impl<'de> Deserialize<'de> for AuthConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A map with exactly one of the methods as its key.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Methods {
            bearer: Option<Secret>,
            basic: Option<BasicConfig>,
            token: Option<Secret>,
            hmac: Option<HmacConfig>,
        }
        let m = Methods::deserialize(d)?;
        let mut found = Vec::new();
        if let Some(s) = m.bearer {
            found.push(AuthConfig::Bearer(s));
        }
        if let Some(b) = m.basic {
            found.push(AuthConfig::Basic {
                username: b.username,
                password: b.password,
            });
        }
        if let Some(s) = m.token {
            found.push(AuthConfig::Token(s));
        }
        if let Some(h) = m.hmac {
            found.push(AuthConfig::Hmac(h));
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(serde::de::Error::custom(
                "choose one method: bearer, basic, token or hmac",
            )),
            _ => Err(serde::de::Error::custom(
                "only one of bearer, basic, token or hmac may be set",
            )),
        }
    }
}

/// `auth: {hmac: ...}`: one secret, a list (for rotation), or a map with the header name and, for
/// senders that sign `timestamp:body` (Grafana's option), the timestamp header.
#[derive(Debug, Clone)]
pub struct HmacConfig {
    pub secrets: Vec<Secret>,
    /// Headers the signature may come in, tried in order (Grafana's docs and code disagree on its
    /// name). Empty until resolved for the source's kind: see [`HmacConfig::for_kind`].
    pub headers: Vec<String>,
    /// When set, the MAC is over `<timestamp>:<body>`, the timestamp (Unix seconds) comes in this
    /// header, and one older or newer than `max_skew` is refused as stale.
    pub timestamp_header: Option<String>,
    /// A timestamp header that is checked for staleness but not signed (Sentry's).
    pub replay_header: Option<String>,
    pub max_skew: Duration,
}

impl HmacConfig {
    /// Fills in the sender's own header names where the config left them out.
    pub fn for_kind(mut self, kind: SourceKind) -> HmacConfig {
        if self.headers.is_empty() {
            self.headers = match kind {
                SourceKind::Grafana => vec![
                    "X-Grafana-Alerting-Signature".into(),
                    "X-Grafana-Alert-Signature".into(),
                ],
                SourceKind::Sentry => vec!["Sentry-Hook-Signature".into()],
                _ => vec![default_hmac_header()],
            };
        }
        if kind == SourceKind::Sentry && self.replay_header.is_none() {
            self.replay_header = Some("Sentry-Hook-Timestamp".into());
        }
        self
    }
}

impl AuthConfig {
    /// The auth as the source's kind reads it (sender-specific header names).
    pub fn for_kind(self, kind: SourceKind) -> AuthConfig {
        match self {
            AuthConfig::Hmac(h) => AuthConfig::Hmac(h.for_kind(kind)),
            other => other,
        }
    }
}

impl<'de> Deserialize<'de> for HmacConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(Secret),
            Many(Vec<Secret>),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            secrets: OneOrMany,
            #[serde(default)]
            header: Option<String>,
            #[serde(default)]
            timestamp_header: Option<String>,
            #[serde(default)]
            max_skew: Option<Env<HumanDuration>>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            // Short first: serde would also read a list as a struct, positionally.
            Short(OneOrMany),
            Full(Full),
        }
        let flatten = |o: OneOrMany| match o {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        match Form::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a secret, a list of secrets, or {secrets, header, timestamp_header, max_skew}",
            )
        })? {
            Form::Full(f) => Ok(HmacConfig {
                secrets: flatten(f.secrets),
                headers: f.header.into_iter().collect(),
                timestamp_header: f.timestamp_header,
                replay_header: None,
                max_skew: f.max_skew.map_or(DEFAULT_SKEW, |d| d.0 .0),
            }),
            Form::Short(o) => Ok(HmacConfig {
                secrets: flatten(o),
                headers: Vec::new(),
                timestamp_header: None,
                replay_header: None,
                max_skew: DEFAULT_SKEW,
            }),
        }
    }
}

/// How far a signed timestamp may be from tocsin's clock.
const DEFAULT_SKEW: Duration = Duration::from_secs(300);

fn default_hmac_header() -> String {
    "X-Tocsin-Signature".to_string()
}

/// What a member may do through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read tickets and timelines.
    Viewer,
    /// Also add notes, ack and resolve.
    Editor,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// `members.<name>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    #[serde(default)]
    pub email: Option<Env<String>>,
    #[serde(default = "default_role")]
    pub role: Role,
    /// API bearer token. A member without one cannot use the API.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The member's id on each chat platform, used to mention them: `slack: U024BE7LH`,
    /// `mattermost: bob`, `matrix: "@bob:example.org"`, `discord: "123456789012345678"`,
    /// `teams: bob@contoso.com`.
    #[serde(default)]
    pub handles: BTreeMap<String, Env<String>>,
    /// When and how this member is emailed about mentions while not online.
    #[serde(default)]
    pub notify: NotifyConfig,
}

fn default_role() -> Role {
    Role::Viewer
}

/// `tickets:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {
    #[serde(default = "default_reopen_window")]
    pub reopen_window: Env<HumanDuration>,
    /// How long resolved tickets are kept (timeline, search and all), counted from their resolution;
    /// `0s` keeps them for ever.
    #[serde(default = "default_retention")]
    pub retention: Env<HumanDuration>,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        TicketsConfig {
            reopen_window: default_reopen_window(),
            retention: default_retention(),
        }
    }
}

impl TicketsConfig {
    /// `None` when tickets are kept for ever.
    pub fn retention(&self) -> Option<Duration> {
        Some(self.retention.0 .0).filter(|d| !d.is_zero())
    }
}

fn default_retention() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(90 * 24 * 3600)))
}

fn default_reopen_window() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(3600)))
}

/// `metrics:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// When set, `/metrics` answers only `Authorization: Bearer <this>` (Prometheus' `authorization`).
    #[serde(default)]
    pub bearer: Option<Secret>,
}

/// `ingest:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted request body for sources that do not set their own.
    #[serde(default = "default_max_body")]
    pub max_body: Env<ByteSize>,
    /// Alerts accepted but not yet processed beyond which ingest answers 503 (429 for generic sources).
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u64,
    /// Bytes of accepted but not yet processed alerts beyond which ingest refuses more, as for
    /// `max_backlog`: a few huge alerts are bounded like many small ones.
    #[serde(default = "default_max_backlog_bytes")]
    pub max_backlog_bytes: Env<ByteSize>,
    /// `/readyz` says not ready when the oldest unprocessed alert is older than this: processing is
    /// stalled (or far behind), whatever ingest still answers.
    #[serde(default = "default_stall_after")]
    pub stall_after: Env<HumanDuration>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body: default_max_body(),
            max_backlog: default_max_backlog(),
            max_backlog_bytes: default_max_backlog_bytes(),
            stall_after: default_stall_after(),
        }
    }
}

fn default_max_backlog_bytes() -> Env<ByteSize> {
    Env(ByteSize(1 << 30))
}

fn default_stall_after() -> Env<HumanDuration> {
    Env(HumanDuration(std::time::Duration::from_secs(30)))
}

fn default_max_body() -> Env<ByteSize> {
    Env(ByteSize(1 << 20))
}

fn default_max_backlog() -> u64 {
    1_000_000
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `log:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `tocsin=debug,tower_http=info`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: Env<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Human,
            level: default_log_level(),
        }
    }
}

fn default_log_level() -> Env<String> {
    Env("info".to_string())
}

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `sources.am.auth`. Empty for the document as a whole.
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a config could not be used: every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} in {}:\n{}", plural(.problems.len()), .file.display(), .problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 problem".to_string()
    } else {
        format!("{n} problems")
    }
}

/// The URL with its password (if any, in the authority or as a `password=` parameter) replaced, safe
/// for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Where the storage lives, parsed from `storage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StorageUrl {
    /// The URL as it may be shown: a PostgreSQL password replaced.
    pub fn shown(&self) -> String {
        match self {
            StorageUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            StorageUrl::Postgres(url) => redact_url(url),
        }
    }

    pub fn parse(text: &str) -> Result<StorageUrl, String> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/tocsin.db".into());
            }
            Ok(StorageUrl::Sqlite(PathBuf::from(path)))
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(StorageUrl::Postgres(text.to_string()))
        } else {
            Err(format!(
                "`{text}` is not a storage URL; use sqlite://PATH or postgres://..."
            ))
        }
    }
}

impl Config {
    /// Parses a config from YAML text. `file` is only used in messages.
    pub fn from_yaml(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            problems: vec![problem_from_serde(&e, text)],
        })?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                file: file.to_path_buf(),
                problems: problems
                    .into_iter()
                    .map(|mut p| {
                        p.line = p.line.or_else(|| line_of_path(text, &p.path));
                        p
                    })
                    .collect(),
            })
        }
    }

    /// Checks what types alone cannot: names, URLs, cross-references, uniqueness. Pure.
    pub fn validate(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut problem = |path: String, message: String| {
            out.push(Problem {
                path,
                line: None,
                message,
            })
        };
        let url = &self.public_url.0;
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            problem(
                "public_url".into(),
                format!("`{url}` is not an http(s) URL"),
            );
        }
        match StorageUrl::parse(&self.storage.0) {
            Ok(StorageUrl::Postgres(_)) | Ok(StorageUrl::Sqlite(_)) => {}
            Err(e) => problem("storage".into(), e),
        }
        for (name, source) in &self.sources {
            if !valid_name(name) {
                problem(
                    format!("sources.{name}"),
                    "source names may use only a-z, 0-9, `-` and `_` (they appear in URLs)".into(),
                );
            }
            if name == crate::domain::system::SYSTEM_SOURCE {
                problem(
                    format!("sources.{name}"),
                    "`tocsin` is reserved for tocsin's own system tickets".into(),
                );
            }
            if source.resolve_timeout.is_some() && source.kind != SourceKind::Prometheus {
                problem(
                    format!("sources.{name}.resolve_timeout"),
                    "only prometheus sources lease alerts; remove this key".into(),
                );
            }
            if let Some(Env(HumanDuration(d))) = &source.resolve_timeout {
                if d.is_zero() {
                    problem(
                        format!("sources.{name}.resolve_timeout"),
                        "must be longer than zero".into(),
                    );
                }
            }
            if source.kind == SourceKind::Sentry
                && !matches!(source.auth, Some(AuthConfig::Hmac(_)))
            {
                problem(
                    format!("sources.{name}.auth"),
                    "a sentry source needs `auth: {hmac: ${SENTRY_CLIENT_SECRET}}` (the integration's client secret): Sentry signs every webhook".into(),
                );
            }
            if source.kind == SourceKind::Sns && matches!(source.auth, Some(AuthConfig::Bearer(_)))
            {
                problem(
                    format!("sources.{name}.auth"),
                    "SNS cannot send a bearer token. Use basic (user:password@ in the subscription URL) or token (?token= in it)".into(),
                );
            }
            if source.kind == SourceKind::Sns && matches!(source.auth, Some(AuthConfig::Hmac(_))) {
                problem(
                    format!("sources.{name}.auth"),
                    "SNS cannot sign with a shared secret; tocsin always checks its own signature. Use basic (in the subscription URL) or nothing".into(),
                );
            }
            if let Some(m) = &source.mapping {
                if source.kind != SourceKind::Generic {
                    problem(
                        format!("sources.{name}.mapping"),
                        "only generic sources take mapping rules; remove this key".into(),
                    );
                }
                for (key, message) in m.problems() {
                    problem(format!("sources.{name}.mapping.{key}"), message);
                }
            }
            if source.changes.is_some() && source.kind != SourceKind::Pagerduty {
                problem(
                    format!("sources.{name}.changes"),
                    "only pagerduty sources take change events; remove this key".into(),
                );
            }
            if let Some(Env(HumanDuration(d))) =
                source.changes.as_ref().and_then(|c| c.window.as_ref())
            {
                if *d > MAX_CHANGE_WINDOW {
                    problem(
                        format!("sources.{name}.changes.window"),
                        "must be at most 7d".into(),
                    );
                }
            }
            if !source.topics.is_empty() && source.kind != SourceKind::Sns {
                problem(
                    format!("sources.{name}.topics"),
                    "only sns sources take topics; remove this key".into(),
                );
            }
            if let Some(Env(ByteSize(0))) = source.max_body {
                problem(
                    format!("sources.{name}.max_body"),
                    "must be larger than zero".into(),
                );
            }
            match &source.auth {
                Some(AuthConfig::Bearer(s)) | Some(AuthConfig::Token(s))
                    if s.expose().is_empty() =>
                {
                    problem(
                        format!("sources.{name}.auth"),
                        "the secret is empty (is its environment variable set to an empty string?)"
                            .into(),
                    )
                }
                Some(AuthConfig::Basic { password, .. }) if password.expose().is_empty() => problem(
                    format!("sources.{name}.auth.basic.password"),
                    "the password is empty (is its environment variable set to an empty string?)"
                        .into(),
                ),
                Some(AuthConfig::Hmac(h))
                    if h.secrets.is_empty() || h.secrets.iter().any(|s| s.expose().is_empty()) =>
                {
                    problem(
                        format!("sources.{name}.auth.hmac"),
                        "needs at least one non-empty secret".into(),
                    )
                }
                _ => {}
            }
        }
        for (name, source) in &self.sources {
            for (i, p) in source.plugins.iter().enumerate() {
                if !self.plugins.contains_key(p) {
                    problem(
                        format!("sources.{name}.plugins"),
                        format!("plugins[{i}] `{p}` is not declared under plugins:"),
                    );
                }
            }
        }
        for (name, plugin) in &self.plugins {
            if !valid_name(name) {
                problem(
                    format!("plugins.{name}"),
                    "plugin names may use only a-z, 0-9, `-` and `_`".into(),
                );
            }
            if plugin.path.0.trim().is_empty() {
                problem(format!("plugins.{name}.path"), "is empty".into());
            }
            if let Some(Env(ByteSize(m))) = plugin.limits.memory {
                if !(1 << 20..=MAX_PLUGIN_MEMORY).contains(&m) {
                    problem(
                        format!("plugins.{name}.limits.memory"),
                        "must be between 1MiB and 256MiB".into(),
                    );
                }
            }
            if plugin.limits.fuel == Some(0) {
                problem(
                    format!("plugins.{name}.limits.fuel"),
                    "must be above zero".into(),
                );
            }
            if let Some(Env(HumanDuration(d))) = plugin.limits.timeout {
                if d.is_zero() || d > Duration::from_secs(10) {
                    problem(
                        format!("plugins.{name}.limits.timeout"),
                        "must be between 1ms and 10s".into(),
                    );
                }
            }
            if let Some(room) = &plugin.alert_room {
                if !self.rooms.contains_key(room) {
                    problem(
                        format!("plugins.{name}.alert_room"),
                        format!("`{room}` is not a room under rooms:"),
                    );
                }
            }
            if let Some(Env(HumanDuration(d))) = plugin.breaker.cooldown {
                if d.is_zero() || d > Duration::from_secs(7 * 24 * 3600) {
                    problem(
                        format!("plugins.{name}.breaker.cooldown"),
                        "must be between 1ms and 7d".into(),
                    );
                }
            }
        }
        let mut tokens: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, member) in &self.members {
            if !valid_name(name) {
                problem(
                    format!("members.{name}"),
                    "member names may use only a-z, 0-9, `-` and `_`".into(),
                );
            }
            if let Some(Env(email)) = &member.email {
                if !email.contains('@') {
                    problem(
                        format!("members.{name}.email"),
                        format!("`{email}` is not an email address"),
                    );
                }
            }
            if let Some(token) = &member.token {
                let t = token.expose();
                if t.chars().count() < MIN_MEMBER_TOKEN {
                    problem(
                        format!("members.{name}.token"),
                        format!(
                            "tokens must be at least {MIN_MEMBER_TOKEN} characters (make one with `openssl rand -hex 24`)"
                        ),
                    );
                } else if let Some(other) = tokens.insert(t, name) {
                    problem(
                        format!("members.{name}.token"),
                        format!("the same token as members.{other}; each member needs their own"),
                    );
                }
            }
        }
        for (name, member) in &self.members {
            for platform in member.handles.keys() {
                if !HANDLE_PLATFORMS.contains(&platform.as_str()) {
                    problem(
                        format!("members.{name}.handles.{platform}"),
                        format!(
                            "unknown platform; use one of {}",
                            HANDLE_PLATFORMS.join(", ")
                        ),
                    );
                }
            }
        }
        for (name, members) in &self.groups {
            if !valid_name(name) || name == "here" || name == "all" {
                problem(
                    format!("groups.{name}"),
                    "group names may use only a-z, 0-9, `-` and `_`, and are not `here` or `all`"
                        .into(),
                );
            }
            if self.members.contains_key(name) {
                problem(
                    format!("groups.{name}"),
                    format!("`{name}` is also a member; a mention must name one or the other"),
                );
            }
            for (i, m) in members.iter().enumerate() {
                if !self.members.contains_key(m) {
                    problem(
                        format!("groups.{name}"),
                        format!("[{i}] `{m}` is not declared under members:"),
                    );
                }
            }
        }
        if let Some(email) = &self.email {
            for (key, message) in email.problems() {
                problem(format!("email.{key}"), message);
            }
        }
        for (name, member) in &self.members {
            let wants = member
                .notify
                .mode
                .unwrap_or_else(|| self.email.as_ref().map(|e| e.mode).unwrap_or_default());
            if member.notify.mode.is_some() || member.notify.delay.is_some() {
                if member.email.is_none() && wants != crate::domain::mail::NotifyMode::Never {
                    problem(
                        format!("members.{name}.notify"),
                        format!("members.{name}.email is not set, so there is nowhere to send to"),
                    );
                }
                if self.email.is_none() {
                    problem(
                        format!("members.{name}.notify"),
                        "needs the top-level `email:` block (SMTP server and sender)".into(),
                    );
                }
            }
        }
        for (name, source) in &self.sources {
            if let Some(r) = &source.rate_limit {
                if let Some(m) = rate_problem(r) {
                    problem(format!("sources.{name}.rate_limit"), m);
                }
            }
        }
        for (name, room) in &self.rooms {
            if !valid_name(name) {
                problem(
                    format!("rooms.{name}"),
                    "room names may use only a-z, 0-9, `-` and `_`".into(),
                );
            }
            for (key, message) in room.sink.problems() {
                problem(format!("rooms.{name}.sink.{key}"), message);
            }
            for (i, m) in room.members.iter().enumerate() {
                if !self.members.contains_key(m) {
                    problem(
                        format!("rooms.{name}.members"),
                        format!("members[{i}] `{m}` is not declared under members:"),
                    );
                }
            }
            if let Some(r) = &room.rate_limit {
                if let Some(m) = rate_problem(r) {
                    problem(format!("rooms.{name}.rate_limit"), m);
                }
            }
            if room.digest.top == 0 {
                problem(
                    format!("rooms.{name}.digest.top"),
                    "must be at least 1".into(),
                );
            }
            for (key, message) in room.hours_problems(name, &self.rooms) {
                problem(format!("rooms.{name}.{key}"), message);
            }
        }
        for (i, route) in self.routes.iter().enumerate() {
            for room in &route.rooms {
                if !self.rooms.contains_key(room) {
                    problem(
                        format!("routes[{i}].rooms"),
                        format!("`{room}` is not declared under rooms:"),
                    );
                }
            }
            for m in &route.mention {
                if m != "here"
                    && m != "all"
                    && !self.members.contains_key(m)
                    && !self.groups.contains_key(m)
                {
                    problem(
                        format!("routes[{i}].mention"),
                        format!("`{m}` is neither a member, a group, `here` nor `all`"),
                    );
                }
            }
            for (label, re) in &route.match_re {
                if let Err(e) = crate::domain::pattern::anchored(&re.0) {
                    problem(
                        format!("routes[{i}].match_re.{label}"),
                        format!("is not a valid regex: {e}"),
                    );
                }
            }
        }
        if self
            .metrics
            .bearer
            .as_ref()
            .is_some_and(|b| b.expose().is_empty())
        {
            problem(
                "metrics.bearer".into(),
                "the secret is empty (is its environment variable set to an empty string?)".into(),
            );
        }
        if self.ingest.max_backlog_bytes.0 .0 == 0 {
            problem(
                "ingest.max_backlog_bytes".into(),
                "must be larger than zero".into(),
            );
        }
        if self.ingest.max_body.0 .0 == 0 {
            problem("ingest.max_body".into(), "must be larger than zero".into());
        }
        if let Some(chatops) = &self.chatops {
            for (key, message) in chatops.problems(&self.rooms, &self.members) {
                // Handle clashes are reported at the member (`members.…`), the rest under `chatops.`.
                let path = if key.starts_with("members.") {
                    key
                } else {
                    format!("chatops.{key}")
                };
                problem(path, message);
            }
        }
        if let Some(web) = &self.web {
            for (key, message) in web.problems() {
                problem(format!("web.{key}"), message);
            }
        }
        for (key, message) in self.http.problems() {
            problem(format!("http.{key}"), message);
        }
        for (key, message) in self.cluster.problems() {
            problem(format!("cluster.{key}"), message);
        }
        for (key, message) in self.alertmanager_api.problems() {
            problem(key, message);
        }
        out
    }

    /// The ticket state machine's knobs.
    pub fn policy(&self) -> Policy {
        Policy {
            reopen_window: self.tickets.reopen_window.0 .0,
        }
    }
}

/// Reads and validates a config file.
/// The weak secrets in the config file at `path` (see [`secrets`]), with `${VAR}` from the environment.
pub fn weak_secrets(path: &Path) -> Vec<secrets::Weak> {
    std::fs::read_to_string(path)
        .map(|text| secrets::weak_secrets(&text, &|name| std::env::var(name).ok()))
        .unwrap_or_default()
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            path: String::new(),
            line: None,
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    let mut config = Config::from_yaml(&text, path)?;
    // Plugins' manifests are files beside their components: read here, not in the pure `validate`.
    let problems = plugin_manifest::apply(&mut config, plugin_manifest::read_manifest);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            file: path.to_path_buf(),
            problems: problems
                .into_iter()
                .map(|(key, message)| Problem {
                    line: line_of_path(&text, &key),
                    path: key,
                    message,
                })
                .collect(),
        })
    }
}

/// Platforms a member can have a handle on.
/// Shortest member token accepted: a token is a password that is never typed, so it can be long.
pub const MIN_MEMBER_TOKEN: usize = 16;

/// `mattermost_id` is the Mattermost user ID (26 characters), which ChatOps identifies people by:
/// unlike the user name (`mattermost`, used for mentions) a user cannot change it.
pub const HANDLE_PLATFORMS: [&str; 6] = [
    "slack",
    "mattermost",
    "mattermost_id",
    "teams",
    "discord",
    "matrix",
];

fn rate_problem(r: &RateLimitConfig) -> Option<String> {
    if !(r.per_second.is_finite() && r.per_second > 0.0) {
        Some("per_second must be a number above zero".into())
    } else if r.burst == 0 {
        Some("burst must be at least 1".into())
    } else {
        None
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// serde_yaml's messages look like `sources.am.auth: unknown field ... at line 7 column 9`; split them into
/// path, message and line.
fn problem_from_serde(e: &serde_yaml::Error, text: &str) -> Problem {
    let line = e.location().map(|l| l.line());
    let mut message = e.to_string();
    if let Some(idx) = message.rfind(" at line ") {
        message.truncate(idx);
    }
    let (path, message) = match message.split_once(": ") {
        Some((p, m)) if !p.contains(' ') && !p.is_empty() => (p.to_string(), m.to_string()),
        _ => (String::new(), message),
    };
    let line = line.or_else(|| line_of_path(text, &path));
    Problem {
        path,
        line,
        message,
    }
}

/// Finds the line of a dotted key path in block-style YAML by following indentation. Best effort: for
/// flow style (`{a: 1}`) it answers with the deepest key it could find.
fn line_of_path(text: &str, path: &str) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let mut found = None;
    let mut start = 0;
    let mut min_indent = 0;
    let lines: Vec<&str> = text.lines().collect();
    for segment in path.split('.') {
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if i > start && indent < min_indent && found.is_some() {
                break;
            }
            let key = trimmed.trim_start_matches("- ");
            let matches = key
                .strip_prefix(segment)
                .or_else(|| key.strip_prefix(&format!("\"{segment}\"")))
                .is_some_and(|r| r.starts_with(':'));
            if matches && indent >= min_indent {
                hit = Some((i, indent));
                break;
            }
        }
        match hit {
            Some((i, indent)) => {
                found = Some(i + 1);
                start = i + 1;
                min_indent = indent + 1;
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_yaml(text, Path::new("test.yaml"))
    }

    #[test]
    fn storage_urls_are_shown_without_their_password() {
        for (url, shown) in [
            (
                "postgres://tocsin:pw@db:5432/t",
                "postgres://tocsin:***@db:5432/t",
            ),
            (
                "postgresql://tocsin@db/t?sslmode=require",
                "postgresql://tocsin@db/t?sslmode=require",
            ),
            (
                "postgres://db/t?user=u&password=pw",
                "postgres://db/t?user=u&password=***",
            ),
            ("postgres://u:p:w@db", "postgres://u:***@db"),
        ] {
            assert_eq!(redact_url(url), shown);
            assert_eq!(StorageUrl::parse(url).unwrap().shown(), shown);
        }
        assert_eq!(
            StorageUrl::parse("sqlite://data/t.db").unwrap().shown(),
            "sqlite://data/t.db"
        );
    }

    #[test]
    fn the_documented_shape_parses() {
        std::env::set_var("TOCSIN_TEST_AM_TOKEN", "am-secret");
        let c = parse(
            "listen: 127.0.0.1:9077\n\
             public_url: http://localhost:9077\n\
             storage: sqlite://data/tocsin.db\n\
             sources:\n  prom: {kind: prometheus}\n  am: {kind: alertmanager, auth: {bearer: \"${TOCSIN_TEST_AM_TOKEN}\"}}\n  hooks: {kind: generic, auth: {token: abc}}\n\
             members:\n  alice: {email: alice@example.com, role: admin, token: alice-token-12345}\n\
             tickets: {reopen_window: 1h}\n",
        )
        .unwrap();
        assert_eq!(c.sources.len(), 3);
        match &c.sources["am"].auth {
            Some(AuthConfig::Bearer(s)) => assert_eq!(s.expose(), "am-secret"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.policy().reopen_window, Duration::from_secs(3600));
        assert!(
            !format!("{c:?}").contains("am-secret"),
            "secrets leak into Debug"
        );
    }

    #[test]
    fn unknown_keys_name_their_path_and_line() {
        let err = parse("sources:\n  am:\n    kind: alertmanager\n    auth:\n      bearr: x\n")
            .unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.path, "sources.am.auth");
        assert!(p.message.contains("bearr"), "{p}");
        assert_eq!(p.line, Some(5));
    }

    #[test]
    fn missing_variable_names_the_key() {
        let err = parse("sources:\n  am:\n    kind: alertmanager\n    auth: {bearer: \"${TOCSIN_TEST_SURELY_UNSET}\"}\n").unwrap_err();
        let p = &err.problems[0];
        assert!(p.path.starts_with("sources.am.auth"), "{p}");
        assert!(
            p.message.contains("TOCSIN_TEST_SURELY_UNSET is not set"),
            "{p}"
        );
        assert_eq!(p.line, Some(4));
    }

    #[test]
    fn short_member_tokens_and_empty_basic_passwords_are_refused() {
        let err = parse(
            "sources:\n  am: {kind: alertmanager, auth: {basic: {username: am, password: \"\"}}}\nmembers:\n  a: {token: abcdefgh-1234}\n  b: {token: 0123456789abcdef}\n",
        )
        .unwrap_err();
        let problems: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("sources.am.auth.basic.password: the password is empty"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("members.a.token: tokens must be at least 16 characters"),
            "{problems:?}"
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let err = parse(
            "public_url: localhost\nstorage: mysql://x\nsources:\n  Bad Name: {kind: generic}\n  am:\n    kind: alertmanager\n    resolve_timeout: 5m\nmembers:\n  a: {token: same-token-000001}\n  b: {token: same-token-000001}\n",
        )
        .unwrap_err();
        let paths: Vec<_> = err.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "public_url",
                "storage",
                "sources.Bad Name",
                "sources.am.resolve_timeout",
                "members.b.token"
            ]
        );
        let rt = &err.problems[3];
        assert_eq!(rt.line, Some(7), "{rt}");
    }

    #[test]
    fn hmac_accepts_one_many_or_a_map() {
        let c = parse("sources:\n  g1: {kind: generic, auth: {hmac: a}}\n  g2: {kind: generic, auth: {hmac: [a, b]}}\n  g3: {kind: generic, auth: {hmac: {secrets: a, header: X-Sig}}}\n").unwrap();
        let h = |n: &str| match c.sources[n]
            .auth
            .clone()
            .map(|a| a.for_kind(SourceKind::Generic))
        {
            Some(AuthConfig::Hmac(h)) => (h.secrets.len(), h.headers.join(",")),
            _ => panic!(),
        };
        assert_eq!(h("g1"), (1, "X-Tocsin-Signature".into()));
        assert_eq!(h("g2"), (2, "X-Tocsin-Signature".into()));
        assert_eq!(h("g3"), (1, "X-Sig".into()));
        // Grafana's signature header has two names in the wild: both are tried.
        let grafana = AuthConfig::Hmac(match &c.sources["g1"].auth {
            Some(AuthConfig::Hmac(h)) => h.clone(),
            _ => panic!(),
        })
        .for_kind(SourceKind::Grafana);
        match grafana {
            AuthConfig::Hmac(h) => assert_eq!(
                h.headers,
                ["X-Grafana-Alerting-Signature", "X-Grafana-Alert-Signature"]
            ),
            _ => panic!(),
        }
    }

    #[test]
    fn the_shipped_configs_are_valid_with_real_secrets_and_fall_back_to_none() {
        // What a deployment puts in the environment: strong values, URLs where URLs go.
        let env = |name: &str| -> Option<String> {
            Some(match name {
                "PAYMENTS_SLACK_WEBHOOK" => {
                    "https://hooks.slack.com/services/T1/B2/c3d4e5f6g7h8i9j0".into()
                }
                "TEAMS_WORKFLOW_URL" => "https://prod.logic.azure.com/workflows/0a1b2c3d".into(),
                "DISCORD_WEBHOOK" => "https://discord.com/api/webhooks/1/c3d4e5f6g7h8i9j0".into(),
                _ => format!("{}-0123456789abcdef", name.to_ascii_lowercase()),
            })
        };
        for file in ["config/tocsin.yaml", "examples/full.yaml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let text = std::fs::read_to_string(&path).unwrap();
            let expanded = expand_env(&text, &env).unwrap();
            Config::from_yaml(&expanded, &path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(secrets::weak_secrets(&text, &env), vec![], "{file}");
            // No secret has a fallback written in the file: with an empty environment, every one is
            // missing (and the config is refused), none takes a shipped value.
            let all = secrets::secrets(&text, &|_| None);
            assert!(!all.is_empty());
            for (path, _, value) in all {
                assert_eq!(
                    value, None,
                    "{file}: {path} falls back to a value in the file"
                );
            }
        }
    }
}
