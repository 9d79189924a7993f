//! Chaos tools beside the nodes of `cluster.rs`: the room's receiving end that records every request
//! ([`Recorder`]), a TCP proxy that cuts a node off from PostgreSQL ([`TcpProxy`]), a steady alert
//! sender ([`Load`]), and the checks every chaos test makes of tickets and timelines.

#![allow(dead_code)] // each chaos test binary uses a different part of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::cluster::{Cluster, Node, POLL, ROOM};

/// One request the room's receiving end got.
#[derive(Debug, Clone)]
pub struct Record {
    pub at: Instant,
    /// `X-Tocsin-Delivery`: `tocsin-<id>-<created ms>`.
    pub delivery: String,
    pub body: Value,
}

impl Record {
    /// The numeric delivery id in the key.
    pub fn id(&self) -> i64 {
        delivery_id(&self.delivery)
    }

    pub fn is_digest(&self) -> bool {
        self.body["type"] == "digest"
    }
}

/// The id in `tocsin-<id>-<created ms>` (-1 when the key is not of that form).
pub fn delivery_id(key: &str) -> i64 {
    key.split('-')
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or(-1)
}

/// The room's receiving end: an HTTP server in the test process that answers 200 to everything and
/// records each request.
pub struct Recorder {
    /// The webhook URL to configure.
    pub url: String,
    records: Arc<Mutex<Vec<Record>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let records: Arc<Mutex<Vec<Record>>> = Arc::default();
        let sink = Arc::clone(&records);
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let delivery = headers
                    .get("x-tocsin-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = serde_json::from_slice(&body).unwrap_or_default();
                sink.lock().unwrap().push(Record {
                    at: Instant::now(),
                    delivery,
                    body,
                });
                StatusCode::OK
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder {
            url: format!("http://{addr}/hook"),
            records,
            server,
        }
    }

    /// Everything received, in arrival order.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.records.lock().unwrap().len()
    }

    /// The delivery ids, in arrival order.
    pub fn delivery_ids(&self) -> Vec<i64> {
        self.records().iter().map(Record::id).collect()
    }

    /// Delivery keys received more than once, with how many times.
    pub fn duplicates(&self) -> BTreeMap<String, usize> {
        duplicates(&self.records())
    }

    /// Ticket titles of the ticket messages received.
    pub fn titles(&self) -> BTreeSet<String> {
        self.records()
            .iter()
            .filter_map(|r| r.body["ticket"]["title"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Delivery keys occurring more than once in `records`, with their counts.
pub fn duplicates(records: &[Record]) -> BTreeMap<String, usize> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in records {
        *seen.entry(r.delivery.clone()).or_default() += 1;
    }
    seen.retain(|_, n| *n > 1);
    seen
}

/// Places in `ids` where an id is not above every id before it (a re-send or a reordering).
pub fn out_of_order(ids: &[i64]) -> Vec<(usize, i64)> {
    let mut max = i64::MIN;
    let mut out = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        if id <= max {
            out.push((i, id));
        }
        max = max.max(id);
    }
    out
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`, which can cut every connection through it.
pub struct TcpProxy {
    pub port: u16,
    cut: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: &str) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = watch::channel(false);
        let cut_rx = cut.subscribe();
        let upstream = upstream.to_string();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if *cut_rx.borrow() {
                    // Cut off: accepted and closed at once, as a dead network path looks to a client
                    // that reconnects.
                    let _ = client.shutdown().await;
                    continue;
                }
                let mut closed = cut_rx.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        // Cut (or the proxy dropped): both sockets are closed here.
                        _ = closed.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        TcpProxy { port, cut, accept }
    }

    /// Closes every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut.send_replace(true);
    }
}

/// `url` (`postgres://user@host:port/db...`) with its host and port replaced by `127.0.0.1:<port>`.
pub fn via_port(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}127.0.0.1:{port}{path}")
}

/// `host:port` of a `postgres://` URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").expect("a postgres:// URL").1;
    let authority = rest.split('/').next().unwrap_or_default();
    authority.rsplit('@').next().unwrap_or_default().to_string()
}

/// POSTs one alert (title `alert <fingerprint>`) to the generic source at `base`: the status, or
/// `None` on a transport error.
pub async fn post_alert(client: &reqwest::Client, base: &str, fingerprint: &str) -> Option<u16> {
    let body = serde_json::json!({
        "title": format!("alert {fingerprint}"), "status": "firing", "fingerprint": fingerprint,
    });
    let resp = client
        .post(format!("{base}/ingest/hooks"))
        .json(&body)
        .send()
        .await
        .ok()?;
    Some(resp.status().as_u16())
}

/// What a load's senders saw.
#[derive(Default)]
pub struct Seen {
    /// Fingerprints that got a 2xx, with when.
    pub accepted: Mutex<BTreeMap<String, Instant>>,
    pub sent: AtomicUsize,
    pub ok: AtomicUsize,
    pub unavailable: AtomicUsize,
    /// Transport errors (a node killed, stopped or gone).
    pub errors: AtomicUsize,
    /// Answers other than 2xx and 503.
    pub other: Mutex<Vec<String>>,
}

impl Seen {
    pub fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    pub fn unavailable(&self) -> usize {
        self.unavailable.load(Ordering::SeqCst)
    }

    pub fn accepted(&self) -> BTreeSet<String> {
        self.accepted.lock().unwrap().keys().cloned().collect()
    }

    /// Accepted at or after `t`.
    pub fn accepted_since(&self, t: Instant) -> BTreeSet<String> {
        let accepted = self.accepted.lock().unwrap();
        accepted
            .iter()
            .filter(|(_, at)| **at >= t)
            .map(|(fp, _)| fp.clone())
            .collect()
    }

    /// Records one attempt's outcome.
    pub fn record(&self, fingerprint: &str, status: Option<u16>) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        match status {
            Some(s) if (200..300).contains(&s) => {
                self.accepted
                    .lock()
                    .unwrap()
                    .insert(fingerprint.to_string(), Instant::now());
                self.ok.fetch_add(1, Ordering::SeqCst);
            }
            Some(503) => {
                self.unavailable.fetch_add(1, Ordering::SeqCst);
            }
            Some(s) => self
                .other
                .lock()
                .unwrap()
                .push(format!("{fingerprint}: {s}")),
            None => {
                self.errors.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// The nodes a load sends to: base URLs, changed by the test as nodes go and come.
pub type Targets = Arc<Mutex<Vec<String>>>;

pub fn targets(bases: Vec<String>) -> Targets {
    Arc::new(Mutex::new(bases))
}

/// A steady stream of distinct alerts to the generic source, round-robin over the targets, each
/// alert tried once (its outcome recorded in [`Seen`]).
pub struct Load {
    stop: Arc<AtomicBool>,
    pub seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// `per_second` alerts a second, fingerprints `<prefix>-<n>`.
    pub fn steady(targets: Targets, per_second: u32, prefix: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let (stop2, seen2, prefix) = (Arc::clone(&stop), Arc::clone(&seen), prefix.to_string());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                // Longer than the store's 5 s wait for a connection, after which ingest answers 503.
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            let mut inflight = tokio::task::JoinSet::new();
            for n in 0usize.. {
                tick.tick().await;
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let target = {
                    let t = targets.lock().unwrap();
                    if t.is_empty() {
                        continue;
                    }
                    t[n % t.len()].clone()
                };
                let (client, seen) = (client.clone(), Arc::clone(&seen2));
                let fp = format!("{prefix}-{n:06}");
                inflight.spawn(async move {
                    let status = post_alert(&client, &target, &fp).await;
                    seen.record(&fp, status);
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        });
        Load { stop, seen, task }
    }

    /// Stops sending and waits for the requests in flight.
    pub async fn stop(self) -> Arc<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
        self.seen
    }
}

/// Waits until every fingerprint in `accepted` is on a ticket (asking `node`) and the room's backlog
/// is 0 (asking the cluster); returns the tickets.
pub async fn wait_settled(
    cluster: &Cluster,
    node: &Node,
    accepted: &BTreeSet<String>,
    limit: Duration,
) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let tickets = node.tickets().await.unwrap_or_default();
        let have: BTreeSet<&str> = tickets
            .iter()
            .filter_map(|t| t["fingerprint"].as_str())
            .collect();
        let missing: Vec<&String> = accepted
            .iter()
            .filter(|fp| !have.contains(fp.as_str()))
            .collect();
        let pending = cluster.backlog(ROOM).await;
        if missing.is_empty() && pending == Some(0) {
            return tickets;
        }
        assert!(
            Instant::now() < deadline,
            "after {limit:?}, {} of {} accepted alerts are on no ticket (e.g. {:?}) and room \
             {ROOM}'s backlog is {pending:?}",
            missing.len(),
            accepted.len(),
            &missing[..missing.len().min(5)]
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Asserts that every accepted alert is on exactly one ticket (one ticket per fingerprint).
pub fn assert_ticketed_once(tickets: &[Value], accepted: &BTreeSet<String>) {
    let mut per_fingerprint: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tickets {
        *per_fingerprint
            .entry(t["fingerprint"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    let doubled: Vec<_> = per_fingerprint.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "alerts on two tickets: {doubled:?}");
    let lost: Vec<_> = accepted
        .iter()
        .filter(|fp| !per_fingerprint.contains_key(fp.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted alerts are on no ticket, e.g. {:?}",
        lost.len(),
        accepted.len(),
        &lost[..lost.len().min(5)]
    );
}

/// Asserts that each ticket's change went to room `busy` exactly once: its timeline has one
/// `delivered` or `digested` entry for the room (read from `node`, 16 timelines at a time).
pub async fn assert_each_accounted_once(node: &Node, tickets: &[Value]) {
    use futures_util::stream::{self, StreamExt};
    let keys: Vec<String> = tickets
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_string())
        .collect();
    let results: Vec<(String, Option<Vec<Value>>)> = stream::iter(keys)
        .map(|k| async move {
            let timeline = node.timeline(&k).await;
            (k, timeline)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut wrong = Vec::new();
    for (key, timeline) in results {
        let timeline = timeline.unwrap_or_else(|| panic!("no timeline for {key}"));
        let sent: Vec<&str> = timeline
            .iter()
            .filter(|e| e["data"]["room"] == ROOM)
            .filter_map(|e| e["kind"].as_str())
            .filter(|k| *k == "delivered" || *k == "digested")
            .collect();
        if sent.len() != 1 {
            let kinds: Vec<&str> = timeline.iter().filter_map(|e| e["kind"].as_str()).collect();
            wrong.push(format!("{key}: {kinds:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} tickets not delivered or digested exactly once for room {ROOM}, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}
