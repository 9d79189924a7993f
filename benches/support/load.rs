//! The load generator and the HTTP endpoints of `benches/versus.rs`: Prometheus-shaped alert batches
//! serialized once and stamped with a batch number (so every batch has new label values without
//! building JSON while the clock runs), posting them from N connections, sending single alerts at a
//! steady rate, a null server (the generator's own ceiling) and a webhook receiver that records when
//! each alert arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

/// Alerts per request in the batched figures.
pub const BATCH: usize = 100;

/// Width of the batch number stamped into every alert's `instance` label.
const DIGITS: usize = 10;

/// The times every alert carries, the same for both servers: started an hour ago (so it is past any
/// `hold_for`) and ending a day from now (still firing, as Prometheus sends them).
pub struct Times {
    pub starts_at: String,
    pub ends_at: String,
}

impl Times {
    pub fn now() -> Times {
        let now = time::OffsetDateTime::now_utc();
        let fmt = |t: time::OffsetDateTime| {
            t.replace_nanosecond(0)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        Times {
            starts_at: fmt(now - time::Duration::hours(1)),
            ends_at: fmt(now + time::Duration::days(1)),
        }
    }
}

/// One alert in the Prometheus → Alertmanager v2 shape, told apart by `instance`.
pub fn alert(times: &Times, instance: &str) -> serde_json::Value {
    serde_json::json!({
        "labels": {"alertname": "VersusBench", "instance": instance, "job": "node", "severity": "warning"},
        "annotations": {"summary": "versus bench alert", "description": "a synthetic alert of benches/versus.rs"},
        "startsAt": times.starts_at,
        "endsAt": times.ends_at,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up%3D%3D0",
    })
}

/// A batch of [`BATCH`] alerts serialized once; [`Batches::body`] copies it and writes the batch
/// number into each alert's `instance` (`b<number>-<index>`), so batch `n` is `BATCH` alerts no other
/// batch has.
pub struct Batches {
    template: Vec<u8>,
    slots: Vec<usize>,
}

impl Batches {
    pub fn new(times: &Times) -> Batches {
        let marker = "#".repeat(DIGITS);
        let alerts: Vec<_> = (0..BATCH)
            .map(|j| alert(times, &format!("b{marker}-{j:02}")))
            .collect();
        let text = serde_json::to_string(&alerts).unwrap();
        let slots: Vec<usize> = text.match_indices(&marker).map(|(i, _)| i).collect();
        assert_eq!(slots.len(), BATCH);
        Batches {
            template: text.into_bytes(),
            slots,
        }
    }

    /// Batch `n`'s request body.
    pub fn body(&self, n: u64) -> Bytes {
        let digits = format!("{n:0DIGITS$}");
        assert_eq!(digits.len(), DIGITS, "batch number too large");
        let mut body = self.template.clone();
        for &at in &self.slots {
            body[at..at + DIGITS].copy_from_slice(digits.as_bytes());
        }
        Bytes::from(body)
    }

    /// Batches `0..count` serialized ahead, to post (and post again) as fast as possible.
    pub fn bodies(&self, count: usize) -> Arc<Vec<Bytes>> {
        Arc::new((0..count as u64).map(|n| self.body(n)).collect())
    }
}

/// The generator's client: keeps one connection per concurrent poster.
pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()
        .unwrap()
}

/// What a burst of batches achieved.
pub struct Blast {
    /// Alerts in requests answered 2xx.
    pub accepted: u64,
    /// Requests answered otherwise, or not at all.
    pub failed: u64,
    pub elapsed: Duration,
}

impl Blast {
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64()
    }
}

/// Where a blast's bodies come from.
pub enum Load {
    /// Every body of the list, once each.
    Fixed(Arc<Vec<Bytes>>),
    /// New batches from the template until the time is up.
    For(Arc<Batches>, Duration),
}

/// Posts batches to `url` from `connections` concurrent requests, each taking the next body as soon
/// as its previous request is answered.
pub async fn blast(client: &reqwest::Client, url: &str, connections: usize, load: Load) -> Blast {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load = Arc::new(load);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, next, load) =
            (client.clone(), url.to_string(), next.clone(), load.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut failed) = (0u64, 0u64);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let body = match &*load {
                    Load::Fixed(bodies) => match bodies.get(n as usize) {
                        Some(b) => b.clone(),
                        None => break,
                    },
                    Load::For(batches, limit) => {
                        if started.elapsed() >= *limit {
                            break;
                        }
                        batches.body(n)
                    }
                };
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        // Read the (small) answer so the connection goes back to the pool.
                        let _ = r.bytes().await;
                        accepted += BATCH as u64;
                    }
                    _ => failed += 1,
                }
            }
            (accepted, failed)
        }));
    }
    let (mut accepted, mut failed) = (0, 0);
    for t in tasks {
        let (a, f) = t.await.unwrap();
        accepted += a;
        failed += f;
    }
    Blast {
        accepted,
        failed,
        elapsed: started.elapsed(),
    }
}

/// Sends `bodies` (one alert each) to `url` at `rate` requests per second, each in a task of its own
/// so a slow answer does not hold back the next. Returns when each request was started, or `None`
/// for those that failed.
pub async fn paced(
    client: &reqwest::Client,
    url: &str,
    rate: usize,
    bodies: Vec<Bytes>,
) -> Vec<Option<Instant>> {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        ticker.tick().await;
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(started)
        }));
    }
    let mut starts = Vec::with_capacity(tasks.len());
    for t in tasks {
        starts.push(t.await.unwrap());
    }
    starts
}

/// Bytes of request bodies the null server has read (to check it reads them all).
pub static NULL_READ: AtomicU64 = AtomicU64::new(0);

/// A server that reads each request's body and answers 200 at once, on a thread and runtime of its
/// own (as a server process would be). Returns its address; it runs until the process ends.
pub fn null_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route(
                "/api/v2/alerts",
                post(|body: Bytes| async move {
                    NULL_READ.fetch_add(body.len() as u64, Ordering::Relaxed);
                    StatusCode::OK
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

/// First arrival time of each alert at the receiver, by its `instance` label.
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// The `instance` labels a webhook body carries: tocsin's (`ticket.labels`) or Alertmanager's
/// (`alerts[].labels`).
fn instances(body: &serde_json::Value) -> Vec<&str> {
    if let Some(alerts) = body["alerts"].as_array() {
        return alerts
            .iter()
            .filter_map(|a| a["labels"]["instance"].as_str())
            .collect();
    }
    body["ticket"]["labels"]["instance"]
        .as_str()
        .into_iter()
        .collect()
}

async fn receive(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut arrivals = arrivals.lock().unwrap();
    for instance in instances(&body) {
        arrivals.entry(instance.to_string()).or_insert(now);
    }
    StatusCode::OK
}

/// Starts the webhook receiver on the current runtime; returns its URL and what it records.
pub async fn receiver() -> (String, Arrivals) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let arrivals: Arrivals = Arc::default();
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/hook"), arrivals)
}

/// The `p` quantile (0..=1) of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

/// A process's resident memory in MiB, from `/proc/<pid>/status`.
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
