//! Ingest benchmark: `cargo bench --bench ingest`.
//!
//! For each storage backend (see below), starts the release `tocsin` binary on a fresh store, then posts
//! 100,000 distinct alerts to `/api/v2/alerts` in batches of 100 from `CONNECTIONS` concurrent
//! connections, several rounds (round 1 opens the tickets, later rounds are heartbeats of the same
//! alerts, as Prometheus resends them). It prints each round's throughput and request latency
//! percentiles, the median over rounds, the server's resident memory once all 100,000 tickets are open
//! and the journal is drained, and how fast alerts were applied to tickets, end to end. At the end, one
//! table side by side: backend × (accepted alerts/s, applied alerts/s end to end, request p50/p99, each
//! the median over rounds but the end-to-end rate), and PostgreSQL / SQLite ratios.
//!
//! Backends: `BENCH_STORAGE`, a comma-separated list of `sqlite` (a fresh file in a temp dir) and
//! `postgres://...` URLs (a fresh database on that server per run, dropped afterwards). Unset: `sqlite`
//! and the server named by `TOCSIN_TEST_POSTGRES` or else `postgres://postgres@127.0.0.1:5432/test`, if
//! it accepts a connection (`benches/support/storage.rs`).
//!
//! Environment knobs: `BENCH_ALERTS` (default 100000), `BENCH_ROUNDS` (5), `BENCH_CONNECTIONS` (8),
//! `BENCH_PLUGIN=1` to put the example severity-router plugin in the source's chain (build it first with
//! `scripts/build-plugins`). The load generator runs on the same machine and shares its cores with the
//! server (and with PostgreSQL, when it runs there).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[allow(dead_code)] // only its memory reading
#[path = "support/load.rs"]
mod load;
#[path = "support/server.rs"]
mod server;
#[path = "support/storage.rs"]
mod storage;

use storage::{Backend, Column};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");
const BATCH: usize = 100;

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
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn main() {
    let alerts = env_or("BENCH_ALERTS", 100_000);
    let rounds = env_or("BENCH_ROUNDS", 5);
    let connections = env_or("BENCH_CONNECTIONS", 8);
    let with_plugin = env_or("BENCH_PLUGIN", 0) == 1;
    let mut rows = Vec::new();
    for backend in storage::backends() {
        let figures = run(&backend, alerts, rounds, connections, with_plugin);
        rows.push((backend.label(), figures.to_vec()));
    }
    storage::print_table(
        &format!(
            "ingest: {alerts} alerts × {rounds} rounds, batches of {BATCH}, {connections} connections \
             (medians over rounds; applied = end to end over the whole run)"
        ),
        &[
            Column { name: "accepted alerts/s", decimals: 0 },
            Column { name: "applied alerts/s", decimals: 0 },
            Column { name: "p50 ms", decimals: 2 },
            Column { name: "p99 ms", decimals: 2 },
        ],
        &rows,
    );
}

/// One run on `backend`: accepted alerts/s (median over rounds), applied alerts/s (end to end), request
/// p50 and p99 in ms (medians over rounds).
fn run(
    backend: &Backend,
    alerts: usize,
    rounds: usize,
    connections: usize,
    with_plugin: bool,
) -> [f64; 4] {
    let dir = tempfile::tempdir().unwrap();
    let store = backend.fresh(dir.path());
    let config = dir.path().join("bench.yaml");
    let plugin = if with_plugin {
        format!(
            "plugins:\n  route: {{path: '{}/plugins/dist/severity-router.wasm', config: {{default_room: ops}}}}\n",
            env!("CARGO_MANIFEST_DIR")
        )
    } else {
        String::new()
    };
    let chain = if with_plugin {
        ", plugins: [route]"
    } else {
        ""
    };
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\n{storage}plugin_cache: {dir}/cache\n\
             sources:\n  prom: {{kind: prometheus{chain}}}\n{plugin}\
             ingest: {{max_backlog: 10000000}}\nlog: {{format: json, level: warn}}\n",
            storage = store.config_line(),
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let (mut child, addr) = server::serve(BIN, &config);
    let pid = child.id();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let figures = runtime.block_on(async move {
        let ends_at = "2099-01-01T00:00:00Z";
        let bodies: Arc<Vec<String>> = Arc::new(
            (0..alerts.div_ceil(BATCH))
                .map(|b| {
                    let batch: Vec<_> = (b * BATCH..((b + 1) * BATCH).min(alerts))
                        .map(|i| {
                            serde_json::json!({
                                "labels": {"alertname": "BenchAlert", "instance": format!("host-{i}"),
                                           "job": "node", "severity": "warning", "team": "infra"},
                                "annotations": {"summary": format!("host-{i} is slow"), "runbook_url": "https://runbooks.example/slow"},
                                "startsAt": "2026-11-22T00:00:00Z", "endsAt": ends_at,
                                "generatorURL": "http://prom.example:9090/graph?g0.expr=up",
                            })
                        })
                        .collect();
                    serde_json::to_string(&batch).unwrap()
                })
                .collect(),
        );
        let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
        let url = format!("http://{addr}/api/v2/alerts");
        println!(
            "\ntocsin ingest bench on {}: {alerts} alerts per round in batches of {BATCH}, {connections} connections, {rounds} rounds, plugin chain: {}",
            backend.label(),
            if with_plugin { "severity-router" } else { "none" }
        );
        let bench_started = Instant::now();
        let mut rates = Vec::new();
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        for round in 1..=rounds {
            let next = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            let mut tasks = Vec::new();
            for _ in 0..connections {
                let (client, url, bodies, next) = (client.clone(), url.clone(), Arc::clone(&bodies), Arc::clone(&next));
                tasks.push(tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= bodies.len() {
                            return latencies;
                        }
                        let t = Instant::now();
                        let r = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[i].clone())
                            .send()
                            .await
                            .unwrap();
                        assert!(r.status().is_success(), "status {}", r.status());
                        latencies.push(t.elapsed());
                    }
                }));
            }
            let mut latencies = Vec::new();
            for t in tasks {
                latencies.extend(t.await.unwrap());
            }
            let elapsed = started.elapsed();
            latencies.sort();
            let rate = alerts as f64 / elapsed.as_secs_f64();
            let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
            println!(
                "round {round}: {rate:>8.0} alerts/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  rss {:.0} MiB",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3,
                latencies.last().unwrap().as_secs_f64() * 1e3,
                load::rss_mib(pid)
            );
            rates.push(rate);
            p50s.push(p50);
            p99s.push(p99);
        }
        // Wait until every accepted alert is applied (so the memory figure is for all tickets open).
        let drain_started = Instant::now();
        storage::wait_applied(&client, &addr).await;
        let drain = drain_started.elapsed();
        let total = bench_started.elapsed();
        let metrics = client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
        let open = metrics
            .lines()
            .find(|l| l.starts_with("tocsin_tickets{state=\"open\"}"))
            .unwrap_or("?")
            .to_string();
        rates.sort_by(f64::total_cmp);
        p50s.sort();
        p99s.sort();
        let mid = rounds / 2;
        println!(
            "median over rounds: {:.0} alerts/s, p50 {:.2} ms, p99 {:.2} ms",
            rates[mid],
            p50s[mid].as_secs_f64() * 1e3,
            p99s[mid].as_secs_f64() * 1e3
        );
        println!(
            "after draining the journal ({:.1} s after the last round): {open}; server RSS {:.0} MiB",
            drain.as_secs_f64(),
            load::rss_mib(pid)
        );
        println!(
            "end to end: {} alerts applied to tickets in {:.1} s = {:.0} alerts/s",
            alerts * rounds,
            total.as_secs_f64(),
            (alerts * rounds) as f64 / total.as_secs_f64()
        );
        [
            rates[mid],
            (alerts * rounds) as f64 / total.as_secs_f64(),
            p50s[mid].as_secs_f64() * 1e3,
            p99s[mid].as_secs_f64() * 1e3,
        ]
    });
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    drop(store);
    figures
}
