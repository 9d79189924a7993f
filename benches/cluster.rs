//! Cluster benchmark: `cargo bench --bench cluster`.
//!
//! One, two and three release `tocsin` processes (`BENCH_INSTANCES`, default `1,2,3`) on one fresh
//! PostgreSQL database (the server `benches/support/storage.rs` finds), with one unthrottled webhook room
//! aimed at a receiver in this process. For each count it measures:
//!
//! 1. **Accepted and applied alerts/s**: `BENCH_ALERTS` (20,000) distinct alerts in batches of 100 on 8
//!    connections, spread over the instances in turn. Accepted: alerts answered 2xx per second of
//!    sending. Applied: alerts per second from the first request until the journal is empty.
//! 2. **Alert → webhook p50/p99** at `BENCH_RATE` (200) single alerts/s for 5 s, spread over the
//!    instances: from starting the request to the webhook arriving.
//! 3. **Failover** (two or more instances), `BENCH_KILLS` (5) times: SIGKILL the instance holding the
//!    room's lease while alerts keep coming (every 20 ms, to the others), and time from the kill to the
//!    first webhook of an alert sent after it (so sent by the new owner); then start a replacement.
//!    `cluster.lease_ttl` is `BENCH_LEASE_TTL` (default 10s, the default).
//!
//! Prints one table: instances × figures (failover as the median of the kills).

use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Json;

#[path = "support/server.rs"]
mod server;
#[path = "support/storage.rs"]
mod storage;

use storage::{Backend, Column};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");
const TOKEN: &str = "bench-admin-token-0123456789";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// First arrival time by ticket title.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, Json(body): Json<serde_json::Value>) {
    let now = Instant::now();
    if let Some(title) = body["ticket"]["title"].as_str() {
        arrivals
            .lock()
            .unwrap()
            .entry(title.to_string())
            .or_insert(now);
    }
}

/// One `tocsin serve` process.
struct Node {
    child: Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(
    dir: &std::path::Path,
    storage: &str,
    receiver_port: u16,
    ttl: usize,
) -> std::path::PathBuf {
    let config = dir.join("cluster.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{storage}plugin_cache: {dir}/cache\ncluster: {{lease_ttl: {ttl}s}}\n\
             sources:\n  hooks: {{kind: generic}}\n\
             members:\n  admin: {{role: admin, token: {TOKEN}}}\n\
             rooms:\n  bench:\n    sink: {{kind: webhook, url: \"http://127.0.0.1:{receiver_port}/hook\"}}\n    \
             rate_limit: {{per_second: 1000000, burst: 1000000}}\n    digest: {{after: 1000h}}\n\
             routes:\n  - rooms: [bench]\n\
             ingest: {{max_backlog: 10000000}}\nlog: {{format: json, level: warn}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    config
}

fn start(config: &std::path::Path) -> Node {
    let (child, addr) = server::serve(BIN, config);
    Node { child, addr }
}

fn alert(title: &str) -> serde_json::Value {
    serde_json::json!({"title": title, "status": "firing", "severity": "warning", "labels": {"host": title}})
}

/// The address of the instance holding `lease`, asked of `addr`.
async fn holder(client: &reqwest::Client, addr: &str, lease: &str) -> Option<String> {
    let v: serde_json::Value = client
        .get(format!("http://{addr}/api/cluster"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["instances"].as_array()?.iter().find_map(|i| {
        i["leases"]
            .as_array()?
            .iter()
            .any(|l| l == lease)
            .then(|| i["address"].as_str().unwrap_or("").to_string())
    })
}

/// Waits until every node serves and the room has a sender.
async fn settle(client: &reqwest::Client, nodes: &[Node]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while holder(client, &nodes[0].addr, "outbox:bench")
        .await
        .is_none()
        || holder(client, &nodes[0].addr, "journal").await.is_none()
    {
        assert!(Instant::now() < deadline, "the cluster did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn throughput(client: &reqwest::Client, nodes: &[Node], alerts: usize) -> (f64, f64) {
    let addrs: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.addr.clone()).collect());
    let accepted = Arc::new(AtomicUsize::new(0));
    let batch_no = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let batches = alerts.div_ceil(100);
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (client, addrs, accepted, batch_no) = (
            client.clone(),
            Arc::clone(&addrs),
            Arc::clone(&accepted),
            Arc::clone(&batch_no),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let b = batch_no.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    return;
                }
                let alerts: Vec<_> = (0..100).map(|i| alert(&format!("t-{b}-{i}"))).collect();
                let addr = &addrs[b % addrs.len()];
                if let Ok(r) = client
                    .post(format!("http://{addr}/ingest/hooks"))
                    .json(&alerts)
                    .send()
                    .await
                {
                    if r.status().is_success() {
                        accepted.fetch_add(100, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let sent_for = start.elapsed().as_secs_f64();
    storage::wait_applied(client, &nodes[0].addr).await;
    let applied_for = start.elapsed().as_secs_f64();
    let n = accepted.load(Ordering::Relaxed) as f64;
    (n / sent_for, n / applied_for)
}

async fn latency(
    client: &reqwest::Client,
    nodes: &[Node],
    arrivals: &Arrivals,
    rate: usize,
) -> (f64, f64) {
    let total = rate * 5;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let title = format!("l-{i}");
        let url = format!("http://{}/ingest/hooks", nodes[i % nodes.len()].addr);
        let (client, sent) = (client.clone(), Arc::clone(&sent));
        tasks.push(tokio::spawn(async move {
            sent.lock().unwrap().insert(title.clone(), Instant::now());
            let _ = client.post(url).json(&alert(&title)).send().await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let a = arrivals.lock().unwrap();
            (0..total).all(|i| a.contains_key(&format!("l-{i}")))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sent = sent.lock().unwrap();
    let a = arrivals.lock().unwrap();
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(t, s)| a.get(t).map(|at| at.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    (percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// Kills the room's sender while alerts keep coming; seconds until the first of them arrives.
async fn failover(
    client: &reqwest::Client,
    nodes: &mut Vec<Node>,
    config: &std::path::Path,
    arrivals: &Arrivals,
    kill: usize,
) -> f64 {
    settle(client, nodes).await;
    let victim_addr = holder(client, &nodes[0].addr, "outbox:bench")
        .await
        .expect("someone sends for the room");
    let victim = nodes.iter().position(|n| n.addr == victim_addr).unwrap();
    let mut dead = nodes.remove(victim);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let killed_at = Instant::now();
    let mut i = 0;
    let arrived = loop {
        let title = format!("f-{kill}-{i}");
        let url = format!("http://{}/ingest/hooks", nodes[i % nodes.len()].addr);
        let _ = client.post(url).json(&alert(&title)).send().await;
        let first = {
            let a = arrivals.lock().unwrap();
            (0..=i)
                .filter_map(|j| a.get(&format!("f-{kill}-{j}")).copied())
                .min()
        };
        if let Some(at) = first {
            break at;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(120),
            "no failover"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Back to full strength for the next kill.
    nodes.push(start(config));
    arrived.duration_since(killed_at).as_secs_f64()
}

async fn run(
    backend: &Backend,
    n: usize,
    alerts: usize,
    rate: usize,
    kills: usize,
    ttl: usize,
) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.fresh(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrivals: Arrivals = Arc::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&arrivals));
    let receiver = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = write_config(dir.path(), &store.config_line(), port, ttl);
    let mut nodes: Vec<Node> = (0..n).map(|_| start(&config)).collect();
    let client = reqwest::Client::new();
    settle(&client, &nodes).await;
    let (accepted, applied) = throughput(&client, &nodes, alerts).await;
    // The latency is measured on an idle room: wait until the batches' messages are all out.
    let deadline = Instant::now() + Duration::from_secs(600);
    while arrivals.lock().unwrap().len() < alerts && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (p50, p99) = latency(&client, &nodes, &arrivals, rate).await;
    let mut times = Vec::new();
    if n > 1 {
        for k in 0..kills {
            let t = failover(&client, &mut nodes, &config, &arrivals, k).await;
            println!("  {n} instances, kill {}: failover {t:.2} s", k + 1);
            times.push(t);
        }
    }
    drop(nodes);
    receiver.abort();
    drop(store);
    let f = median(times);
    println!(
        "{n} instances: accepted {accepted:.0}/s, applied {applied:.0}/s, alert→webhook p50 {p50:.2} ms p99 {p99:.2} ms, failover median {f:.2} s"
    );
    vec![accepted, applied, p50, p99, f]
}

fn main() {
    let alerts = env_or("BENCH_ALERTS", 20_000);
    let rate = env_or("BENCH_RATE", 200);
    let kills = env_or("BENCH_KILLS", 5);
    let ttl = env_or("BENCH_LEASE_TTL", 10);
    let counts: Vec<usize> = std::env::var("BENCH_INSTANCES")
        .unwrap_or_else(|_| "1,2,3".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let Some(backend) = storage::backends()
        .into_iter()
        .find(|b| matches!(b, Backend::Postgres(_)))
    else {
        println!("the cluster bench needs PostgreSQL (BENCH_STORAGE=postgres://...)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "tocsin cluster bench on {}: {alerts} alerts in batches, {rate} alerts/s for latency, {kills} kills, lease_ttl {ttl}s",
        backend.label()
    );
    let rows: Vec<(String, Vec<f64>)> = counts
        .iter()
        .map(|&n| {
            let figures = runtime.block_on(run(&backend, n, alerts, rate, kills, ttl));
            (
                format!("{n} instance{}", if n == 1 { "" } else { "s" }),
                figures,
            )
        })
        .collect();
    storage::print_table(
        &format!("cluster on one PostgreSQL: {alerts} alerts in batches, {rate} alerts/s latency, failover median of {kills}"),
        &[
            Column { name: "accepted alerts/s", decimals: 0 },
            Column { name: "applied alerts/s", decimals: 0 },
            Column { name: "alert→webhook p50 ms", decimals: 2 },
            Column { name: "p99 ms", decimals: 2 },
            Column { name: "failover s", decimals: 2 },
        ],
        &rows,
    );
}
