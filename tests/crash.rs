//! Crash test: 5,000 alerts sent concurrently to the real binary, which is killed with SIGKILL midway and
//! restarted. Every alert that got a 2xx must be on exactly one ticket, and no timeline entry is doubled.

use std::collections::{BTreeMap, BTreeSet};
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::Server;
use tocsin::store::TicketFilter;

const ALERTS: usize = 5_000;
const KILL_AFTER: usize = 2_500;
const CONCURRENCY: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_alerts_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let config = dir.path().join("crash.yaml");
    std::fs::write(
        &config,
        format!(
            // A short lease: on PostgreSQL the killed instance's journal lease must run out before the
            // restarted one may process (it cannot tell a dead instance from a slow one).
            "listen: 127.0.0.1:0\nstorage: {}\nsources:\n  g: {{kind: generic}}\nlog: {{format: json}}\ncluster: {{lease_ttl: 1s}}\n",
            common::storage::storage_url(&db)
        ),
    )
    .unwrap();

    let server = Server::start(&config);
    let addr = server.addr.clone();
    let child = Arc::new(Mutex::new(server.child));
    let client = reqwest::Client::new();
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let ok_count = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, addr, accepted, ok_count, next, child) = (
            client.clone(),
            addr.clone(),
            Arc::clone(&accepted),
            Arc::clone(&ok_count),
            Arc::clone(&next),
            Arc::clone(&child),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= ALERTS {
                    return;
                }
                let fp = format!("fp-{i:05}");
                let body = serde_json::json!({"title": format!("alert {i}"), "status": "firing", "fingerprint": fp});
                let resp = client.post(format!("http://{addr}/ingest/g")).json(&body).send().await;
                if resp.is_ok_and(|r| r.status().is_success()) {
                    accepted.lock().unwrap().insert(fp);
                    if ok_count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                        // SIGKILL: no chance to flush or finish anything.
                        child.lock().unwrap().kill().unwrap();
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    child.lock().unwrap().wait().unwrap();
    server.log.join().unwrap();
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() >= KILL_AFTER,
        "only {} accepted",
        accepted.len()
    );
    assert!(
        accepted.len() < ALERTS,
        "the kill came too late to test anything"
    );

    // Restart, then stop gracefully: the processor finishes the journal before exiting. On PostgreSQL
    // it processes only once the killed instance's lease ran out, so wait for that first.
    let restarted = Server::start(&config);
    if common::storage::on_postgres() {
        let took = restarted.wait_log("\"lease\":\"journal\"", std::time::Duration::from_secs(30));
        assert!(took.is_some_and(|l| l.contains("Took a lease.")));
    }
    let (code, log) = restarted.terminate();
    assert_eq!(code, Some(0), "{log:?}");

    let store = common::storage::open_store(&db).await;
    assert_eq!(store.stats().await.unwrap().journal_backlog, 0);
    let tickets = store
        .list_tickets(&TicketFilter {
            limit: ALERTS * 2,
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    let mut per_fingerprint: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tickets {
        *per_fingerprint.entry(t.fingerprint.clone()).or_default() += 1;
        let entries = store.timeline(&t.id, 0, 100).await.unwrap();
        let kinds: Vec<_> = entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["opened"],
            "ticket {} has a doubled timeline",
            t.reference()
        );
        assert_eq!(
            t.resend_count,
            0,
            "ticket {} saw its alert twice",
            t.reference()
        );
    }
    let on_two: Vec<_> = per_fingerprint.iter().filter(|(_, n)| **n > 1).collect();
    assert!(on_two.is_empty(), "alerts on two tickets: {on_two:?}");
    let missing: Vec<_> = accepted
        .iter()
        .filter(|fp| !per_fingerprint.contains_key(*fp))
        .collect();
    assert!(
        missing.is_empty(),
        "{} accepted alerts lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
