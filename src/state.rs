//! What every HTTP handler shares: config, store, clock, metrics and the journal signal.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{AuthConfig, Config, Role, SourceConfig, SourceKind};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::pipeline::Journal;
use crate::plugin::Plugins;
use crate::ratelimit::Limiter;
use crate::store::Store;

/// Cheap to clone: everything is behind one `Arc`.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub sources: BTreeMap<String, Source>,
    /// The one prometheus source, if exactly one exists: it also answers the bare `/api/v2/...` paths.
    pub default_prometheus: Option<String>,
    pub members: Arc<Members>,
    /// Signed-in browsers.
    pub sessions: crate::sessions::Sessions,
    /// Failed sign-ins and bearer tokens per client address, for throttling guessers.
    pub failures: crate::throttle::Failures,
    /// Failed ingest credentials per source and client address, throttled the same way.
    pub ingest_failures: crate::throttle::Failures,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub journal: Arc<Journal>,
    pub plugins: Arc<Plugins>,
    /// The delivery worker: woken after ticket changes, asked for dead deliveries.
    pub outbox: Arc<Outbox>,
    /// This instance among those sharing the database (`/api/cluster`, readiness).
    pub cluster: Arc<crate::cluster::Cluster>,
    /// The file the config came from, re-read on reload (none for configs built in tests).
    pub config_path: Option<PathBuf>,
    pub started_at: Timestamp,
    /// Checks unsubscribe links (with an `email:` block).
    pub tokens: Option<crate::mailer::Tokens>,
    /// Set to `true` when the server starts shutting down, so long-lived responses (live streams)
    /// end and graceful shutdown does not wait for them.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// Live streams: the shared feed reader and the caps on open streams.
    pub streams: Arc<crate::stream_hub::Hub>,
}

/// The caps on live streams, with defaults from the connection cap (which follows the open-file limit
/// as it is now: `app` raises it before building).
fn stream_limits(config: &Config) -> crate::stream_hub::StreamLimits {
    let connections = config.http.max_connections(crate::listen::nofile_limit());
    let s = &config.http.streams;
    crate::stream_hub::StreamLimits {
        max_total: s.max_total(connections),
        max_per_member: s.max_per_member(),
        replay_limit: s.replay_limit(),
    }
}

/// A configured source, with defaults filled in.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub kind: SourceKind,
    pub auth: Option<AuthConfig>,
    pub max_body: u64,
    pub resolve_timeout: Duration,
    /// Requests per second this source may send (`sources.<name>.rate_limit`).
    pub limiter: Option<Arc<Limiter>>,
    /// Generic sources: rules for reading any JSON.
    pub mapping: Option<crate::config::MappingConfig>,
    /// SNS sources: the topics taken (empty: any).
    pub topics: Vec<String>,
    /// PagerDuty sources: tickets opened this long after a change event are shown it.
    pub change_window: Duration,
}

impl Source {
    pub fn from_config(
        name: &str,
        c: &SourceConfig,
        default_max_body: u64,
        clock: &Arc<dyn Clock>,
    ) -> Source {
        Source {
            name: name.to_string(),
            kind: c.kind,
            auth: c.auth.clone().map(|a| a.for_kind(c.kind)),
            max_body: c.max_body.as_ref().map_or(default_max_body, |b| b.0 .0),
            resolve_timeout: c
                .resolve_timeout
                .as_ref()
                .map_or(Duration::from_secs(300), |d| d.0 .0),
            mapping: c.mapping.clone(),
            topics: c.topics.clone(),
            change_window: c
                .changes
                .as_ref()
                .and_then(|ch| ch.window.as_ref())
                .map_or(crate::config::DEFAULT_CHANGE_WINDOW, |d| d.0 .0),
            limiter: c
                .rate_limit
                .map(|r| Arc::new(Limiter::new(r.per_second, r.burst, clock.clone()))),
        }
    }
}

/// A member who presented a valid API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub role: Role,
    /// The channel the member came through: `api` (a bearer token) or `web` (a browser session).
    pub via: &'static str,
}

/// Members as authentication sees them: who has which token and role. Re-read on reload
/// ([`Members::replace`]), so a removed member or a changed token stops working at once, for bearer
/// tokens, browser sessions (bound to the token's digest) and ChatOps alike.
///
/// Tokens are kept only as SHA-256 digests, so the lookup compares digests (a hash-map probe on a
/// digest reveals nothing useful about the token through timing).
#[derive(Debug, Default)]
pub struct Members {
    current: std::sync::RwLock<Arc<MemberIndex>>,
}

#[derive(Debug, Default)]
struct MemberIndex {
    by_digest: HashMap<[u8; 32], Member>,
    /// Every member (with a token or not): role and token digest.
    by_name: HashMap<String, (Role, Option<[u8; 32]>)>,
}

impl MemberIndex {
    fn from_config(config: &Config) -> MemberIndex {
        let by_name: HashMap<String, (Role, Option<[u8; 32]>)> = config
            .members
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    (m.role, m.token.as_ref().map(|t| digest(t.expose()))),
                )
            })
            .collect();
        let by_digest = by_name
            .iter()
            .filter_map(|(name, (role, d))| {
                Some((
                    (*d)?,
                    Member {
                        name: name.clone(),
                        role: *role,
                        via: "api",
                    },
                ))
            })
            .collect();
        MemberIndex { by_digest, by_name }
    }
}

impl Members {
    pub fn from_config(config: &Config) -> Members {
        Members {
            current: std::sync::RwLock::new(Arc::new(MemberIndex::from_config(config))),
        }
    }

    fn index(&self) -> Arc<MemberIndex> {
        // The lock only guards an `Arc` swap; a poisoned one still holds a whole index.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts the members of a re-read config in place; returns how many there are.
    pub fn replace(&self, config: &Config) -> usize {
        let next = Arc::new(MemberIndex::from_config(config));
        let count = next.by_name.len();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        count
    }

    /// The member a bearer token belongs to.
    pub fn by_token(&self, token: &str) -> Option<Member> {
        self.index().by_digest.get(&digest(token)).cloned()
    }

    /// A member's role, if they are a member now.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.index().by_name.get(name).map(|(role, _)| *role)
    }

    /// The digest of a member's current token, if they are a member now and have one.
    pub fn token_digest(&self, name: &str) -> Option<[u8; 32]> {
        self.index().by_name.get(name).and_then(|(_, d)| *d)
    }

    /// Whether `name` is a member now.
    pub fn contains(&self, name: &str) -> bool {
        self.index().by_name.contains_key(name)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The running parts handlers reach, built by `App`.
#[derive(Debug)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub journal: Arc<Journal>,
    pub plugins: Arc<Plugins>,
    pub outbox: Arc<Outbox>,
    pub cluster: Arc<crate::cluster::Cluster>,
}

impl Shared {
    /// `web.client_ip_header`, when tocsin is behind a proxy: where [`crate::throttle::client`] finds
    /// a request's client address.
    pub fn client_ip_header(&self) -> Option<&str> {
        self.config
            .web
            .as_ref()
            .and_then(|w| w.client_ip_header.as_ref())
            .map(|h| h.0.as_str())
    }
}

impl AppState {
    pub fn new(config: Config, services: Services, config_path: Option<PathBuf>) -> AppState {
        let Services {
            store,
            clock,
            metrics,
            journal,
            plugins,
            outbox,
            cluster,
        } = services;
        let default_max_body = config.ingest.max_body.0 .0;
        let sources: BTreeMap<String, Source> = config
            .sources
            .iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    Source::from_config(n, c, default_max_body, &clock),
                )
            })
            .collect();
        let proms: Vec<&String> = sources
            .values()
            .filter(|s| s.kind == SourceKind::Prometheus)
            .map(|s| &s.name)
            .collect();
        let default_prometheus = match proms.as_slice() {
            [only] => Some((*only).clone()),
            _ => None,
        };
        let members = Arc::new(Members::from_config(&config));
        let started_at = clock.now();
        let tokens = config
            .email
            .as_ref()
            .map(|e| crate::mailer::Tokens::new(e.secret.expose()));
        let closing = tokio::sync::watch::Sender::new(false);
        let session_keep =
            (cluster.mode == crate::cluster::Mode::Shared).then_some(crate::sessions::SHARED_FOR);
        let streams = crate::stream_hub::Hub::new(
            Arc::clone(&store),
            closing.subscribe(),
            stream_limits(&config),
        );
        AppState(Arc::new(Shared {
            closing,
            streams,
            config,
            sources,
            default_prometheus,
            members,
            store,
            clock,
            metrics,
            journal,
            plugins,
            outbox,
            cluster,
            config_path,
            started_at,
            tokens,
            sessions: crate::sessions::Sessions::new(session_keep),
            failures: crate::throttle::Failures::default(),
            ingest_failures: crate::throttle::Failures::default(),
        }))
    }
}
