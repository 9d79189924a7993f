//! Test harness: a real tocsin on 127.0.0.1 port 0 with a real SQLite file, a manual clock, and the
//! processor driven step by step by the test (no background worker, no sleeping).

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod conformance;
pub mod pg;
pub mod pg_server;
pub mod receiver;
pub mod signin;
pub mod smtp;
pub mod storage;
pub mod synapse;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tocsin::app::App;
use tocsin::clock::ManualClock;
use tocsin::config::Config;
use tocsin::domain::time::Timestamp;

pub const ADMIN: &str = "admin-token-0001";
pub const EDITOR: &str = "editor-token-0001";
pub const VIEWER: &str = "viewer-token-0001";
pub const HOOK_TOKEN: &str = "hook-token-0001";
pub const AM_TOKEN: &str = "am-token-0001";

/// The default sources: one of each kind.
pub const DEFAULT_SOURCES: &str = "sources:\n  \
    prom: {kind: prometheus, resolve_timeout: 5m}\n  \
    am: {kind: alertmanager, auth: {bearer: am-token-0001}}\n  \
    hooks: {kind: generic, auth: {token: hook-token-0001}, max_body: 64KiB}\n";

/// A config with the default sources and one member per role; `extra` is appended verbatim.
pub fn config_yaml(db: &Path, extra: &str) -> String {
    config_yaml_with(db, DEFAULT_SOURCES, extra)
}

/// Like [`config_yaml`] with `sources` (a whole `sources:` block) instead of the default ones.
pub fn config_yaml_with(db: &Path, sources: &str, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         public_url: http://tocsin.test\n\
         storage: {storage}\n\
         {sources}\
         members:\n  \
           alice: {{role: admin, token: {ADMIN}}}\n  \
           bob: {{role: editor, token: {EDITOR}}}\n  \
           carol: {{role: viewer, token: {VIEWER}}}\n\
         tickets: {{reopen_window: 1h}}\n\
         plugin_cache: {cache}\n{extra}",
        storage = storage::storage_url(db),
        cache = db.with_file_name("plugin-cache").display()
    )
}

/// A built plugin from plugins/dist (scripts/build-plugins makes them).
pub fn dist(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins (scripts/test does it)",
        p.display()
    );
    p.display().to_string()
}

/// A tocsin with the given `sources:` block and extra config (plugins), on the manual clock.
pub async fn spawn_app_sources(sources: &str, extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tocsin.db");
    let yaml = config_yaml_with(&db, sources, extra);
    spawn_yaml(dir, yaml, Some(ManualClock::new(t0()))).await
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub app: App,
    pub dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

/// The wall-clock instant tests start from: 2026-11-22T12:00:00Z.
pub fn t0() -> Timestamp {
    Timestamp::parse_optional("2026-11-22T12:00:00Z")
        .unwrap()
        .unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with("").await
}

pub async fn spawn_app_with(extra_config: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tocsin.db");
    spawn_on(dir, &db, extra_config).await
}

/// A tocsin on the real wall clock, for tests with real external senders whose timestamps are real.
/// The processor is still driven by the test (see [`TestApp::wait_for`]).
pub async fn spawn_app_real_clock() -> TestApp {
    spawn_app_real_clock_with("").await
}

/// [`spawn_app_real_clock`] with extra config (rooms, routes).
pub async fn spawn_app_real_clock_with(extra: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tocsin.db");
    spawn_with_clock(dir, &db, extra, None).await
}

async fn spawn_on(dir: tempfile::TempDir, db: &Path, extra: &str) -> TestApp {
    spawn_with_clock(dir, db, extra, Some(ManualClock::new(t0()))).await
}

async fn spawn_with_clock(
    dir: tempfile::TempDir,
    db: &Path,
    extra: &str,
    manual: Option<ManualClock>,
) -> TestApp {
    let yaml = config_yaml(db, extra);
    spawn_yaml(dir, yaml, manual).await
}

/// A tocsin on the manual clock from a whole config text, in `dir` (which must hold nothing else).
pub async fn spawn_app_with_yaml(dir: tempfile::TempDir, yaml: String) -> TestApp {
    spawn_yaml(dir, yaml, Some(ManualClock::new(t0()))).await
}

async fn spawn_yaml(dir: tempfile::TempDir, yaml: String, manual: Option<ManualClock>) -> TestApp {
    let config_path = dir.path().join("tocsin.yaml");
    std::fs::write(&config_path, &yaml).unwrap();
    let config = Config::from_yaml(&yaml, &config_path).unwrap();
    let clock = manual.clone().unwrap_or_else(|| ManualClock::new(t0()));
    let real: Arc<dyn tocsin::clock::Clock> = match manual {
        Some(m) => Arc::new(m),
        None => Arc::new(tocsin::clock::SystemClock),
    };
    let app = App::build(config, Some(config_path), real).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router();
    // The real listener with the config's limits (`http:`), as `tocsin serve` runs it.
    let limits = app.limits();
    let server = tokio::spawn(async move {
        tocsin::listen::serve(listener, router, limits, std::future::pending())
            .await
            .unwrap();
    });
    TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        clock,
        app,
        dir,
        server,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
        storage::release(self.dir.path());
    }
}

impl TestApp {
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("tocsin.db")
    }

    /// The config file this app was started from (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("tocsin.yaml")
    }

    /// Applies every pending journal entry.
    pub async fn process(&self) -> usize {
        self.app.processor.drain().await.unwrap()
    }

    /// Sends every delivery that is due at the clock's current time (stepping the outbox until idle).
    pub async fn deliver(&self) -> usize {
        self.app.outbox.drain().await.unwrap()
    }

    /// Builds a fresh tocsin over the same directory, database and config, as after a restart.
    pub async fn restart(mut self) -> TestApp {
        let yaml = std::fs::read_to_string(self.config_path()).unwrap();
        let clock = self.clock.clone();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        drop(self);
        spawn_yaml(dir, yaml, Some(clock)).await
    }

    /// Expires leases at the clock's current time.
    pub async fn sweep(&self) -> usize {
        self.app.processor.sweep().await.unwrap()
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    /// The manual clock's time (meaningless for apps on the real clock).
    pub fn now(&self) -> Timestamp {
        use tocsin::clock::Clock;
        self.clock.now()
    }

    /// For tests fed by real external processes: processes the journal and sweeps leases until `check`
    /// accepts the tickets, polling because the sender runs on its own schedule. Panics after `limit`.
    pub async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            self.process().await;
            self.sweep().await;
            let tickets = self.tickets().await;
            if check(&tickets) {
                return tickets;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gave up waiting for {what}; tickets: {tickets:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.client.post(format!("{}{path}", self.base)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    /// POSTs JSON to a path with extra headers.
    pub async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_raw(path, Some("application/json"), body.to_string(), headers)
            .await
    }

    /// POSTs alerts to the prometheus source's Alertmanager-compatible endpoint.
    pub async fn prom(&self, alerts: Value) -> reqwest::Response {
        self.post("/ingest/prom/api/v2/alerts", &alerts, &[]).await
    }

    /// POSTs to the generic source with its token.
    pub async fn hook(&self, body: Value) -> reqwest::Response {
        self.post("/ingest/hooks", &body, &[("x-tocsin-token", HOOK_TOKEN)])
            .await
    }

    pub async fn api_get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn api_post(
        &self,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        r.text().await.unwrap()
    }

    /// All tickets (any state), newest first.
    pub async fn tickets(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/tickets?limit=500&cursor={c}"),
                None => "/api/tickets?limit=500".to_string(),
            };
            let page: Value = self.api_get(&path, ADMIN).await.json().await.unwrap();
            out.extend(page["tickets"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    pub async fn timeline(&self, ticket: &str) -> Vec<Value> {
        let v: Value = self
            .api_get(&format!("/api/tickets/{ticket}/timeline"), ADMIN)
            .await
            .json()
            .await
            .unwrap();
        v["entries"].as_array().unwrap().clone()
    }

    /// The timeline entries of one kind on a ticket.
    pub async fn entries_of(&self, ticket: &str, kind: &str) -> Vec<Value> {
        self.timeline(ticket)
            .await
            .into_iter()
            .filter(|e| e["kind"] == kind)
            .collect()
    }

    pub async fn timeline_kinds(&self, ticket: &str) -> Vec<String> {
        self.timeline(ticket)
            .await
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect()
    }
}

/// A Prometheus-style alert with explicit times (RFC 3339 strings or None).
pub fn prom_alert(name: &str, starts: Option<Timestamp>, ends: Option<Timestamp>) -> Value {
    let mut v = serde_json::json!({
        "labels": {"alertname": name, "severity": "critical", "team": "infra"},
        "annotations": {"summary": format!("{name} is happening")},
        "generatorURL": "http://prom.example:9090/graph",
    });
    if let Some(s) = starts {
        v["startsAt"] = Value::String(s.to_rfc3339());
    }
    if let Some(e) = ends {
        v["endsAt"] = Value::String(e.to_rfc3339());
    }
    v
}

/// Asserts a response's status and returns its JSON body (or Null for an empty body).
pub async fn expect(resp: reqwest::Response, status: u16) -> Value {
    let got = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Debian's Prometheus and Alertmanager, installed by `scripts/fetch-monitoring.sh`.
pub fn monitoring_tool(relative: &str) -> PathBuf {
    let dir = std::env::var_os("TOCSIN_MONITORING_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/monitoring"));
    let path = dir.join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/fetch-monitoring.sh (scripts/test does it for you)",
        path.display()
    );
    path
}

/// A port that was free a moment ago, for processes that cannot be told to pick one themselves.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child process when dropped, so a failing test leaves nothing running.
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `url` until it answers 2xx (an external process starting up).
pub async fn wait_http_ok(client: &reqwest::Client, url: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `tocsin serve` process, started from a config file with JSON logs.
pub struct Server {
    pub child: std::process::Child,
    /// The address it announced.
    pub addr: String,
    /// Its log lines after the announcement, collected until it exits.
    pub log: std::thread::JoinHandle<Vec<String>>,
    /// The same lines as they come, for waiting on one (see [`Server::wait_log`]).
    live: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// Starts the binary and waits for its "listening" line (the config must set `log: {format: json}`).
    pub fn start(config: &Path) -> Server {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "tocsin is listening." {
                break v["addr"].as_str().unwrap().to_string();
            }
        };
        // Keep reading so the pipe never fills; hand the lines back when it exits, and pass each on
        // as it comes.
        let (tx, live) = std::sync::mpsc::channel();
        let log = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        Server {
            child,
            addr,
            log,
            live,
        }
    }

    /// Waits (up to `limit`) for a log line containing `needle`: the server said it did something.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.live.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Sends SIGTERM and waits: returns the exit code and the log lines after the announcement.
    pub fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let code = self.child.wait().unwrap().code();
        (code, self.log.join().unwrap())
    }
}
