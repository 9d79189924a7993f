//! Delivery benchmark: `cargo bench --bench delivery`.
//!
//! Starts the release `tocsin` binary on a fresh SQLite file with one webhook room pointing at a
//! receiver in this process (axum on 127.0.0.1), then measures two things:
//!
//! 1. **Latency at a steady rate**: one alert per request to a generic source at `BENCH_RATE` alerts/s
//!    (default 1000) for `BENCH_SECONDS` (10). For each alert, the time from starting its HTTP request to
//!    the webhook arriving at the receiver: journal commit, plugin-less processing, ticket commit, outbox
//!    commit and the POST. Prints the median and p99 over all alerts of the run, per round.
//! 2. **Throughput**: `BENCH_BACKLOG` (20000) deliveries queued while the receiver is down, then the
//!    receiver comes up and the outbox drains the backlog. Prints messages per second, first to last
//!    arrival.
//!
//! `BENCH_ROUNDS` (3) repeats both and prints medians over rounds. The load generator and the receiver
//! run on the same machine and share its cores with the server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Json;

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

/// Starts tocsin with one unthrottled webhook room aimed at `receiver_port`. Returns the child and its
/// address.
fn start_tocsin(dir: &std::path::Path, receiver_port: u16) -> (Child, String) {
    let config = dir.join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nstorage: sqlite://{dir}/bench.db\nplugin_cache: {dir}/cache\n\
             sources:\n  hooks: {{kind: generic}}\n\
             rooms:\n  bench:\n    sink: {{kind: webhook, url: \"http://127.0.0.1:{receiver_port}/hook\"}}\n    \
             rate_limit: {{per_second: 1000000, burst: 1000000}}\n    digest: {{after: 1000h}}\n\
             routes:\n  - rooms: [bench]\n\
             ingest: {{max_backlog: 10000000}}\nlog: {{format: json, level: warn}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("build the release binary first: cargo build --release");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "tocsin is listening." {
            break v["addr"].as_str().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
    (child, addr)
}

fn alert(title: &str) -> String {
    serde_json::json!({"title": title, "status": "firing", "severity": "warning", "labels": {"host": title}})
        .to_string()
}

async fn latency_round(round: usize, rate: usize, seconds: usize) -> (Duration, Duration, usize) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrivals: Arrivals = Arc::default();
    start_receiver(listener, arrivals.clone()).await;
    let (mut child, addr) = start_tocsin(dir.path(), port);
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

async fn throughput_round(round: usize, backlog: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port, then leave it closed: deliveries fail (connection refused) and queue up.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut child, addr) = start_tocsin(dir.path(), port);
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
    // Let the processor apply everything (the outbox fails its head and waits for the retry).
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        println!("tocsin delivery bench: {rate} alerts/s for {seconds} s per round, backlog {backlog}, {rounds} rounds");
        let (mut p50s, mut p99s, mut rates) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=rounds {
            let (p50, p99, missing) = latency_round(round, rate, seconds).await;
            let mps = throughput_round(round, backlog).await;
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
        println!(
            "median over rounds: p50 {:.2} ms, p99 {:.2} ms, {:.0} msgs/s",
            median(p50s),
            median(p99s),
            median(rates)
        );
    });
}
