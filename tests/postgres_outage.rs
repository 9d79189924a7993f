//! Fault test (issue 14, point 6): PostgreSQL goes away while tocsin runs under load, and comes back.
//!
//! The real binary stores on a private PostgreSQL server of this test's own (`common::pg_server`),
//! while a few senders post distinct alerts to a generic source for the whole test, each retrying an
//! alert that got 503 as Prometheus and Alertmanager do. Midway the database is stopped
//! (`pg_ctl stop -m fast`): ingest must answer 503 (and nothing else but 2xx), `/readyz` must say not
//! ready and why. Then it is started again and tocsin, never restarted, must accept alerts and be
//! ready again by itself. After the load stops and the journal is drained, every alert that got a 2xx
//! is on exactly one ticket whose timeline is exactly `["opened"]`: nothing acknowledged was lost or
//! applied twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::pg_server::PgServer;
use common::Server;
use serde_json::Value;
use tocsin::store::TicketFilter;

/// Concurrent senders.
const SENDERS: usize = 4;
/// Each sender's pause between alerts (keeps the number of tickets to check moderate).
const PACE: Duration = Duration::from_millis(10);
/// A sender's pause before retrying an alert that got 503.
const RETRY: Duration = Duration::from_millis(50);
/// Alerts accepted before the outage, and again after it, before moving on.
const WARM: usize = 200;
/// 503s seen while the database is down before it is started again (with [`RETRY`] and [`SENDERS`],
/// an outage of about three seconds: the processor and the pool meet failures and back off).
const DOWN_503S: usize = 200;
/// How long any one wait may take.
const LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// What the senders saw.
#[derive(Default)]
struct Seen {
    /// Fingerprints of the alerts that got a 2xx.
    accepted: Mutex<BTreeSet<String>>,
    ok: AtomicUsize,
    unavailable: AtomicUsize,
    /// The first 503: its `Retry-After` and body.
    first_503: Mutex<Option<(Option<String>, String)>>,
    /// Any answer that was neither 2xx nor 503, and transport errors.
    other: Mutex<Vec<String>>,
}

struct Load {
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &reqwest::Client, base: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let senders = (0..SENDERS)
            .map(|s| {
                let (client, url) = (client.clone(), format!("{base}/ingest/g"));
                let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
                tokio::spawn(async move {
                    for n in 0.. {
                        let fp = format!("s{s}-{n:06}");
                        let body = serde_json::json!({
                            "title": format!("alert {fp}"), "status": "firing", "fingerprint": fp,
                        });
                        // Until it is accepted, as Prometheus and Alertmanager retry a 503.
                        loop {
                            if stop.load(Ordering::SeqCst) {
                                return;
                            }
                            let resp = match client.post(&url).json(&body).send().await {
                                Ok(r) => r,
                                Err(e) => {
                                    seen.other.lock().unwrap().push(format!("{fp}: {e}"));
                                    break;
                                }
                            };
                            let status = resp.status();
                            if status.is_success() {
                                seen.accepted.lock().unwrap().insert(fp.clone());
                                seen.ok.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            let retry_after = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let text = resp.text().await.unwrap_or_default();
                            if status != 503 {
                                let what = format!("{fp}: {status} {text}");
                                seen.other.lock().unwrap().push(what);
                                break;
                            }
                            seen.first_503
                                .lock()
                                .unwrap()
                                .get_or_insert((retry_after, text));
                            seen.unavailable.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(RETRY).await;
                        }
                        tokio::time::sleep(PACE).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            seen,
            senders,
        }
    }

    fn ok(&self) -> usize {
        self.seen.ok.load(Ordering::SeqCst)
    }

    fn unavailable(&self) -> usize {
        self.seen.unavailable.load(Ordering::SeqCst)
    }

    async fn stop(self) -> Arc<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        for s in self.senders {
            s.await.unwrap();
        }
        self.seen
    }
}

/// Polls `check` until it holds; panics with `what` after [`LIMIT`].
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !check() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `/readyz` until its status is `want`; returns the body.
async fn readyz_until(client: &reqwest::Client, base: &str, want: u16) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let last = match client.get(format!("{base}/readyz")).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or_default();
                if status == want {
                    return body;
                }
                format!("{status} {body}")
            }
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "/readyz did not answer {want}; last: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The tocsin process, killed if the test fails before stopping it.
struct Running(Option<Server>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut s) = self.0.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_under_load_answers_503_loses_nothing_and_recovers() {
    let t0 = Instant::now();
    let mut pg = tokio::task::block_in_place(PgServer::start_new);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("outage.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\nstorage: {}\nsources:\n  g: {{kind: generic}}\nlog: {{format: json}}\n",
            pg.url
        ),
    )
    .unwrap();
    let mut tocsin = Running(Some(Server::start(&config)));
    let base = format!("http://{}", tocsin.0.as_ref().unwrap().addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    readyz_until(&client, &base, 200).await;

    let load = Load::start(&client, &base);
    until("alerts accepted before the outage", || load.ok() >= WARM).await;
    let before = load.unavailable();

    // The database goes away under load.
    tokio::task::block_in_place(|| pg.stop());
    let down = Instant::now();
    let ok_when_down = load.ok();
    until("ingest answering 503 while the database is down", || {
        load.unavailable() > before
    })
    .await;
    let not_ready = readyz_until(&client, &base, 503).await;
    assert_eq!(not_ready["error"], "not_ready", "{not_ready}");
    let reason = not_ready["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains("database cannot be reached"),
        "/readyz does not say why: {not_ready}"
    );
    // Senders keep retrying against the missing database for a while.
    until("more 503s while the database is down", || {
        load.unavailable() >= before + DOWN_503S
    })
    .await;
    let ok_while_down = load.ok();
    assert_eq!(
        ok_while_down, ok_when_down,
        "alerts were accepted while the database was down"
    );

    // It comes back (times are counted from asking it to); tocsin is not restarted.
    let back = Instant::now();
    tokio::task::block_in_place(|| pg.start());
    let outage = down.elapsed();
    until("ingest accepting alerts again", || {
        load.ok() > ok_while_down
    })
    .await;
    let accepting_after = back.elapsed();
    let ready = readyz_until(&client, &base, 200).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let ready_after = back.elapsed();
    until("alerts accepted after the outage", || {
        load.ok() >= ok_while_down + WARM
    })
    .await;

    let seen = load.stop().await;
    let other = seen.other.lock().unwrap().clone();
    assert!(
        other.is_empty(),
        "answers other than 2xx and 503 ({}), e.g. {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    let unavailable = seen.unavailable.load(Ordering::SeqCst);
    let (retry_after, body) = seen.first_503.lock().unwrap().clone().unwrap();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    assert_eq!(body["error"], "unavailable", "the 503's body: {body}");
    assert!(retry_after.is_some(), "the 503 has no Retry-After");
    let accepted = seen.accepted.lock().unwrap().clone();

    // Everything accepted gets applied: the journal drains by itself.
    let url = tocsin::config::StorageUrl::parse(&pg.url).unwrap();
    let store = tocsin::store::open(&url).await.unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        let backlog = store.stats().await.unwrap().journal_backlog;
        if backlog == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the journal is not drained: {backlog} rows left"
        );
        tokio::time::sleep(POLL).await;
    }

    let tickets = store
        .list_tickets(&TicketFilter {
            limit: accepted.len() * 2 + 1000,
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    let mut per_fingerprint: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tickets {
        // No system ticket: nothing was moved to the dead journal.
        assert_eq!(t.source, "g", "unexpected ticket {t:?}");
        *per_fingerprint.entry(&t.fingerprint).or_default() += 1;
        let kinds: Vec<String> = store
            .timeline(&t.id, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.as_str().to_string())
            .collect();
        assert_eq!(
            kinds,
            ["opened"],
            "ticket {} ({})",
            t.reference(),
            t.fingerprint
        );
    }
    let doubled: Vec<_> = per_fingerprint.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "alerts on two tickets: {doubled:?}");
    let lost: Vec<_> = accepted
        .iter()
        .filter(|fp| !per_fingerprint.contains_key(fp.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} accepted alerts lost, e.g. {:?}",
        lost.len(),
        accepted.len(),
        &lost[..lost.len().min(5)]
    );
    drop(store);

    let (code, log) = tocsin.0.take().unwrap().terminate();
    assert_eq!(code, Some(0), "tocsin did not stop cleanly: {log:?}");
    // A lost connection is the database's failure, never the data's: no batch was split up to find a
    // bad alert, and nothing was set aside.
    let misread: Vec<_> = log
        .iter()
        .filter(|l| l.contains("one at a time") || l.contains("dead journal"))
        .collect();
    assert!(
        misread.is_empty(),
        "lost connections taken for bad data: {misread:?}"
    );
    eprintln!(
        "{} accepted, {unavailable} answered 503, {} tickets; database down {outage:.1?} \
         (/readyz: {reason:?}); accepting {accepting_after:.1?} and ready {ready_after:.1?} after it \
         returned; {:.1?} in all",
        accepted.len(),
        tickets.len(),
        t0.elapsed()
    );
}
