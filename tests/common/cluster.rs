//! Chaos harness: several real `tocsin serve` processes sharing one PostgreSQL database ([`Node`],
//! [`Cluster`]), one test at a time under a time limit ([`run`]), and bounded polling. `chaos.rs` has
//! the rest (the room's recording end, the TCP proxy, the load). Used by `tests/cluster.rs` and
//! `tests/cluster_prometheus.rs` (included there with `#[path]`, so no other test binary compiles it).
//!
//! Nothing here sleeps to make an assertion: tests wait for conditions under bounded limits
//! ([`wait_for`], [`wait_until`]) and count what the [`Recorder`] received. Every child process is
//! killed when its [`Node`] is dropped, so a failing test leaves nothing running, and each test runs
//! under [`run`]: one test at a time in the binary (each starts three servers on a small machine)
//! within [`TEST_LIMIT`].

#![allow(dead_code)] // each chaos test binary uses a different part of the harness

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::pg::TestDatabase;

/// The admin member's API token (long and random-looking: `serve` refuses development values).
pub const ADMIN_TOKEN: &str = "chaos-admin-7d3f91c04ab2e865";
/// The room every alert is routed to.
pub const ROOM: &str = "busy";
/// `cluster.lease_ttl` in every node's config.
pub const LEASE_TTL: Duration = Duration::from_secs(2);
/// Each test, whole, must finish within this.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);
/// How long a node may take to announce its address.
const START_LIMIT: Duration = Duration::from_secs(60);
pub const POLL: Duration = Duration::from_millis(100);

/// Runs one chaos test: serialised with the others in this binary (three servers each on a two-core
/// machine would starve each other and turn bounded waits into flakes), on a multi-threaded runtime,
/// and failed if it takes longer than [`TEST_LIMIT`]. On timeout the test's future is dropped, and with
/// it every node (killed) and database.
pub fn run(test: impl Future<Output = ()>) {
    static SERIAL: Mutex<()> = Mutex::new(());
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if tokio::time::timeout(TEST_LIMIT, test).await.is_err() {
            panic!("the test did not finish within {TEST_LIMIT:?}");
        }
    });
}

/// Polls `check` every 100 ms until it gives a value; panics naming `what` once `limit` has passed.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it holds; panics naming `what` once `limit` has passed.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, limit, || {
        let f = check();
        async move { f.await.then_some(()) }
    })
    .await
}

/// Milliseconds since the epoch, as `/api/cluster` writes times.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_millis() as i64
}

/// A time from `/api/cluster` in milliseconds since the epoch: a number of them, or an RFC 3339
/// string (tocsin's usual way of writing times).
pub fn millis(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        let text = v.as_str()?;
        let t = tocsin::domain::time::Timestamp::parse_optional(text).ok()??;
        Some(t.as_millis())
    })
}

/// A node's config without `listen` and `storage` (the harness adds both): a generic source (or
/// `sources`, a whole `sources:` block), the admin member, the room `busy` on `room_url` with
/// `room_extra` (rate and digest keys, indented for the room's block), every alert routed there, JSON
/// logs and a 2 s lease. `extra` is appended verbatim.
pub fn config(sources: Option<&str>, room_url: &str, room_extra: &str, extra: &str) -> String {
    let sources = sources.unwrap_or("sources:\n  hooks: {kind: generic}\n");
    format!(
        "public_url: http://tocsin.test\n\
         {sources}\
         members:\n  root: {{role: admin, token: {ADMIN_TOKEN}}}\n\
         rooms:\n  {ROOM}:\n    sink: {{kind: webhook, url: \"{room_url}\"}}\n    {room_extra}\n\
         routes:\n  - rooms: [{ROOM}]\n\
         log: {{format: json}}\n\
         cluster: {{lease_ttl: {ttl}s}}\n\
         {extra}",
        ttl = LEASE_TTL.as_secs()
    )
}

/// One real `tocsin serve` process. Dropping it kills the process.
pub struct Node {
    pub name: String,
    config: PathBuf,
    child: Option<Child>,
    addr: String,
    /// Whether it is stopped with SIGSTOP (then asking it anything would only time out).
    paused: bool,
    /// Set by a test that cut it off from the database: cluster views are asked of other nodes
    /// (it could only wait for a connection, then fail).
    pub cut_off: bool,
    /// Every log line of every run of this node.
    log: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
    /// Its instance id as `/api/cluster` names it, once asked (a run of its own after each restart).
    instance: Mutex<Option<String>>,
}

impl Node {
    /// Writes the config (`listen: 127.0.0.1:0`, `storage`, then `yaml`) and starts the binary,
    /// blocking until it announces its address.
    pub fn start(dir: &std::path::Path, name: &str, storage: &str, yaml: &str) -> Node {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!("listen: 127.0.0.1:0\nstorage: {storage}\n{yaml}"),
        )
        .unwrap();
        let mut node = Node {
            name: name.to_string(),
            config,
            child: None,
            addr: String::new(),
            paused: false,
            cut_off: false,
            log: Arc::default(),
            client: api_client(),
            instance: Mutex::new(None),
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        // Held before waiting, so a node that never announces itself is still killed on drop.
        self.child = Some(child);
        self.paused = false;
        *self.instance.lock().unwrap() = None;
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::clone(&self.log);
        log.lock()
            .unwrap()
            .push(format!("--- {} starts ---", self.name));
        // Reads every line (the pipe must never fill) and passes on the announced address.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_default();
                if v["message"] == "tocsin is listening." {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                }
                log.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(START_LIMIT) {
            Ok(addr) => self.addr = addr,
            Err(_) => panic!(
                "node {} did not announce its address within {START_LIMIT:?}; its log:\n{}",
                self.name,
                self.log_tail(60)
            ),
        }
    }

    /// `http://127.0.0.1:PORT` of its current run.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it bound (`127.0.0.1:PORT`), as announced in its log.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Running and not paused: it can answer.
    pub fn is_up(&self) -> bool {
        self.child.is_some() && !self.paused
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the node is not running").id()
    }

    fn signal(&self, sig: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{sig} {} failed", self.name);
    }

    /// SIGKILL: no chance to finish or record anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: the process freezes where it is (leases, connections and all).
    pub fn stop(&mut self) {
        self.signal("STOP");
        self.paused = true;
    }

    /// SIGCONT: it wakes up and carries on as if no time had passed.
    pub fn cont(&mut self) {
        self.signal("CONT");
        self.paused = false;
    }

    /// SIGTERM, then waits (bounded) for it to exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        if self.paused {
            self.cont();
        }
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {} did not exit within 30 s of SIGTERM; its log:\n{}",
                    self.name,
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts it again over the same config (stopping it first with SIGTERM if it runs); it binds a
    /// new port.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn();
    }

    /// The last `n` log lines (of all runs).
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// GETs `path` with the admin token: the status and the JSON body (Null if not JSON), or `None`
    /// when the node did not answer.
    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        let resp = self
            .client
            .get(format!("{}{path}", self.base()))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let body = resp.json().await.unwrap_or_default();
        Some((status, body))
    }

    /// `/readyz`'s status, or `None` when the node did not answer.
    pub async fn readyz(&self) -> Option<u16> {
        self.get("/readyz").await.map(|(s, _)| s)
    }

    /// `GET /api/cluster` when it answers 200.
    pub async fn cluster(&self) -> Option<Value> {
        match self.get("/api/cluster").await? {
            (200, v) => Some(v),
            _ => None,
        }
    }

    /// This run's instance id (asked once per run).
    pub async fn instance_id(&self) -> Option<String> {
        if let Some(id) = self.instance.lock().unwrap().clone() {
            return Some(id);
        }
        let id = self.cluster().await?["instance"].as_str()?.to_string();
        *self.instance.lock().unwrap() = Some(id.clone());
        Some(id)
    }

    /// Every ticket, in all states (pages of 500), or `None` when a page did not come.
    pub async fn tickets(&self) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/tickets?limit=500&cursor={c}"),
                None => "/api/tickets?limit=500".to_string(),
            };
            let (200, page) = self.get(&path).await? else {
                return None;
            };
            out.extend(page["tickets"].as_array()?.iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Some(out),
            }
        }
    }

    /// A ticket's timeline entries.
    pub async fn timeline(&self, ticket: &str) -> Option<Vec<Value>> {
        match self.get(&format!("/api/tickets/{ticket}/timeline")).await? {
            (200, v) => v["entries"].as_array().cloned(),
            _ => None,
        }
    }

    /// POSTs one alert to the generic source: the status, or `None` on a transport error.
    pub async fn send_alert(&self, fingerprint: &str) -> Option<u16> {
        crate::chaos::post_alert(&self.client, &self.base(), fingerprint).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "=== last log lines of node {} ===\n{}",
                self.name,
                self.log_tail(40)
            );
        }
        self.kill();
    }
}

fn api_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Several nodes on one database. Nodes are dropped (killed) before the database.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub yaml: String,
    pub dir: tempfile::TempDir,
    db: Option<TestDatabase>,
}

impl Cluster {
    /// `n` nodes with the same config on a fresh database of the shared server.
    pub async fn start(n: usize, yaml: &str) -> Cluster {
        let db = TestDatabase::create();
        let url = db.url.clone();
        let mut cluster = Cluster::empty(Some(db), yaml);
        for _ in 0..n {
            cluster.add_node(&url).await;
        }
        cluster
    }

    /// `n` nodes on `storage` (a database the caller owns, such as a private server's).
    pub async fn start_on(storage: &str, n: usize, yaml: &str) -> Cluster {
        let mut cluster = Cluster::empty(None, yaml);
        for _ in 0..n {
            cluster.add_node(storage).await;
        }
        cluster
    }

    /// No nodes yet, on `db` when given.
    pub fn empty(db: Option<TestDatabase>, yaml: &str) -> Cluster {
        Cluster {
            nodes: Vec::new(),
            yaml: yaml.to_string(),
            dir: tempfile::tempdir().unwrap(),
            db,
        }
    }

    /// The owned database's URL.
    pub fn db_url(&self) -> String {
        self.db
            .as_ref()
            .expect("no database of its own")
            .url
            .clone()
    }

    /// Starts one more node (named `n<index>`) on `storage` and waits until it is ready.
    pub async fn add_node(&mut self, storage: &str) -> usize {
        let i = self.nodes.len();
        let (dir, yaml) = (self.dir.path().to_path_buf(), self.yaml.clone());
        let node =
            tokio::task::block_in_place(|| Node::start(&dir, &format!("n{i}"), storage, &yaml));
        self.nodes.push(node);
        self.wait_ready(i).await;
        i
    }

    /// Waits until node `i` answers `/readyz` with 200.
    pub async fn wait_ready(&self, i: usize) {
        let node = &self.nodes[i];
        wait_until(
            &format!("node {} to be ready", node.name),
            Duration::from_secs(60),
            || async { node.readyz().await == Some(200) },
        )
        .await;
    }

    /// Restarts node `i` (SIGTERM, start again) and waits until it is ready.
    pub async fn restart(&mut self, i: usize) {
        tokio::task::block_in_place(|| self.nodes[i].restart());
        self.wait_ready(i).await;
    }

    /// Base URLs of the nodes that are up.
    pub fn bases(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_up())
            .map(Node::base)
            .collect()
    }

    /// The first node that is up, except `not`.
    pub fn survivor(&self, not: Option<usize>) -> &Node {
        self.nodes
            .iter()
            .enumerate()
            .find(|(i, n)| n.is_up() && Some(*i) != not)
            .map(|(_, n)| n)
            .expect("no node is up")
    }

    /// `/api/cluster` from the first node that is up (and not cut off) and answers.
    pub async fn view(&self) -> Option<Value> {
        for node in self.nodes.iter().filter(|n| n.is_up() && !n.cut_off) {
            if let Some(v) = node.cluster().await {
                return Some(v);
            }
        }
        None
    }

    /// The lease called `name` when someone holds it now (a holder and an expiry in the future).
    pub async fn lease(&self, name: &str) -> Option<Value> {
        let view = self.view().await?;
        held(&view, name)
    }

    /// Which node holds lease `name` now, by index.
    pub async fn holder(&self, name: &str) -> Option<usize> {
        let holder = self.lease(name).await?["holder"].as_str()?.to_string();
        self.node_of(&holder).await
    }

    /// The index of the node whose current run is instance `id`.
    pub async fn node_of(&self, id: &str) -> Option<usize> {
        for (i, node) in self.nodes.iter().enumerate() {
            if node.is_up() && node.instance_id().await.as_deref() == Some(id) {
                return Some(i);
            }
        }
        None
    }

    /// The room's pending deliveries as `/api/cluster` counts them.
    pub async fn backlog(&self, room: &str) -> Option<i64> {
        backlog(&self.view().await?, room)
    }
}

/// The lease called `name` in a `/api/cluster` answer, when it is held now.
pub fn held(view: &Value, name: &str) -> Option<Value> {
    let lease = view["leases"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == name)?
        .clone();
    let holder = lease["holder"].as_str().unwrap_or_default();
    let live = !holder.is_empty() && millis(&lease["expires_at"]).unwrap_or(0) > now_ms();
    live.then_some(lease)
}

/// A room's pending count in a `/api/cluster` answer (0 when the room is not listed: nothing pends).
pub fn backlog(view: &Value, room: &str) -> Option<i64> {
    let rooms = view["rooms"].as_array()?;
    Some(
        rooms
            .iter()
            .find(|r| r["room"] == room)
            .and_then(|r| r["pending"].as_i64())
            .unwrap_or(0),
    )
}
