//! Delivery benchmark: `cargo bench --bench delivery`.
//!
//! For each storage backend (see below), starts the release `tocsin` binary on a fresh store with one
//! webhook room pointing at a receiver in this process (axum on 127.0.0.1), then measures two things:
//!
//! 1. **Latency at a steady rate**: one alert per request to a generic source at `BENCH_RATE` alerts/s
//!    (default 1000) for `BENCH_SECONDS` (10). For each alert, the time from starting its HTTP request to
//!    the webhook arriving at the receiver: journal commit, plugin-less processing, ticket commit, outbox
//!    commit and the POST. Prints the median and p99 over all alerts of the run, per round.
//! 2. **Throughput**: `BENCH_BACKLOG` (20000) deliveries queued while the receiver is down, then the
//!    receiver comes up and the outbox drains the backlog. Prints messages per second, first to last
//!    arrival.
//!
//! `BENCH_ROUNDS` (3) repeats both (each part of each round on a fresh store) and prints medians over
//! rounds; at the end, one table side by side: backend × (alert → webhook p50/p99, backlog drain
//! msgs/s), medians over rounds, and PostgreSQL / SQLite ratios.
//!
//! Backends: `BENCH_STORAGE`, a comma-separated list of `sqlite` (a fresh file in a temp dir) and
//! `postgres://...` URLs (a fresh database on that server per run, dropped afterwards). Unset: `sqlite`
//! and the server named by `TOCSIN_TEST_POSTGRES` or else `postgres://postgres@127.0.0.1:5432/test`, if
//! it accepts a connection (`benches/support/storage.rs`). The load generator and the receiver run on the
//! same machine and share its cores with the server (and with PostgreSQL, when it runs there).

use std::collections::HashMap;
use std::process::Child;
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

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Arrival times by ticket title.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(State(arrivals): State<Arrivals>, Json(body): Json<serde_json::Value>) {
    let now = Instant::now();
    if let Some(title) = body["ticket"]["title"].as_str() {
        arrivals.lock().unwrap().insert(title.to_string(), now);
    }
}

async fn start_receiver(listener: tokio::net::TcpListener, arrivals: Arrivals) {
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// Starts tocsin on `storage` (a `storage:` config line) with one unthrottled webhook room aimed at
/// `receiver_port`. Returns the child and its address.
fn start_tocsin(dir: &std::path::Path, storage: &str, receiver_port: u16) -> (Child, String) {
    let config = dir.join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{storage}plugin_cache: {dir}/cache\n\
             sources:\n  hooks: {{kind: generic}}\n\
             rooms:\n  bench:\n    sink: {{kind: webhook, url: \"http://127.0.0.1:{receiver_port}/hook\"}}\n    \
             rate_limit: {{per_second: 1000000, burst: 1000000}}\n    digest: {{after: 1000h}}\n\
             routes:\n  - rooms: [bench]\n\
             ingest: {{max_backlog: 10000000}}\nlog: {{format: json, level: warn}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    server::serve(BIN, &config)
}

fn alert(title: &str) -> String {
    serde_json::json!({"title": title, "status": "firing", "severity": "warning", "labels": {"host": title}})
        .to_string()
}

async fn latency_round(
    backend: &Backend,
    round: usize,
    rate: usize,
    seconds: usize,
) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.fresh(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrivals: Arrivals = Arc::default();
    start_receiver(listener, arrivals.clone()).await;
    let (mut child, addr) = start_tocsin(dir.path(), &store.config_line(), port);
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/ingest/hooks");
    let total = rate * seconds;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let title = format!("r{round}-a{i}");
        let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let body = alert(&title);
            sent.lock().unwrap().insert(title, Instant::now());
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while arrivals.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(store);
    let sent = sent.lock().unwrap();
    let arrivals = arrivals.lock().unwrap();
    let mut lat: Vec<Duration> = sent
        .iter()
        .filter_map(|(t, s)| arrivals.get(t).map(|a| a.saturating_duration_since(*s)))
        .collect();
    lat.sort();
    (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        total - lat.len(),
    )
}

async fn throughput_round(backend: &Backend, round: usize, backlog: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.fresh(dir.path());
    // Reserve a port, then leave it closed: deliveries fail (connection refused) and queue up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut child, addr) = start_tocsin(dir.path(), &store.config_line(), port);
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/ingest/hooks");
    for chunk in 0..backlog.div_ceil(500) {
        let batch: Vec<String> = (chunk * 500..((chunk + 1) * 500).min(backlog))
            .map(|i| alert(&format!("t{round}-a{i}")))
            .collect();
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(format!("[{}]", batch.join(",")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    // Let the processor apply everything (the outbox fails its head and waits for the retry), so the
    // drain measures the outbox alone, whatever the backend's apply rate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    storage::wait_applied(&client, &addr).await;
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    start_receiver(listener, arrivals.clone()).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().unwrap().len() < backlog && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(store);
    let arrivals = arrivals.lock().unwrap();
    let first = arrivals.values().min().copied().unwrap();
    let last = arrivals.values().max().copied().unwrap();
    arrivals.len() as f64 / last.duration_since(first).as_secs_f64()
}

fn main() {
    let rate = env_or("BENCH_RATE", 1000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let backlog = env_or("BENCH_BACKLOG", 20_000);
    let rounds = env_or("BENCH_ROUNDS", 3);
    let backends = storage::backends();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for backend in &backends {
        let figures = runtime.block_on(run(backend, rate, seconds, backlog, rounds));
        rows.push((backend.label(), figures.to_vec()));
    }
    storage::print_table(
        &format!(
            "delivery: {rate} alerts/s for {seconds} s, backlog {backlog}, {rounds} rounds (medians over rounds)"
        ),
        &[
            Column { name: "alert→webhook p50 ms", decimals: 2 },
            Column { name: "p99 ms", decimals: 2 },
            Column { name: "drain msgs/s", decimals: 0 },
        ],
        &rows,
    );
}

/// One run on `backend`: alert → webhook p50 and p99 in ms, and backlog drain msgs/s, medians over
/// rounds.
async fn run(
    backend: &Backend,
    rate: usize,
    seconds: usize,
    backlog: usize,
    rounds: usize,
) -> [f64; 3] {
    println!(
        "\ntocsin delivery bench on {}: {rate} alerts/s for {seconds} s per round, backlog {backlog}, {rounds} rounds",
        backend.label()
    );
    let (mut p50s, mut p99s, mut rates) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (p50, p99, missing) = latency_round(backend, round, rate, seconds).await;
        let mps = throughput_round(backend, round, backlog).await;
        println!(
            "round {round}: alert→webhook p50 {:.2} ms, p99 {:.2} ms{}; backlog drained at {mps:.0} msgs/s",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            if missing > 0 { format!(" ({missing} never arrived)") } else { String::new() },
        );
        p50s.push(p50.as_secs_f64() * 1e3);
        p99s.push(p99.as_secs_f64() * 1e3);
        rates.push(mps);
    }
    let figures = [median(p50s), median(p99s), median(rates)];
    println!(
        "median over rounds: p50 {:.2} ms, p99 {:.2} ms, {:.0} msgs/s",
        figures[0], figures[1], figures[2]
    );
    figures
}
