//! Feed ids in commit order with two concurrent writers, against a real PostgreSQL (the one
//! `TOCSIN_TEST_POSTGRES` names, which `scripts/test` provides): while one transaction that wrote an
//! entry is still open, a second writer waits for the feed lock instead of committing a larger id, so a
//! reader that resumes after the larger id can never skip the smaller one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::PgStore;
use crate::domain::alert::{Alert, Labels, Severity, Status};
use crate::domain::ticket::Policy;
use crate::domain::time::Timestamp;
use crate::domain::timeline::{EntryDraft, EntryKind};
use crate::store::engine::{Backend, Durability};
use crate::store::{FeedQuery, JournalEntry, Store, TicketRef};

/// A fresh database on the test server, dropped at the end.
pub(crate) struct Scratch {
    admin: String,
    name: String,
    pub url: String,
}

impl Scratch {
    pub(crate) async fn create() -> Scratch {
        let admin = std::env::var("TOCSIN_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("tocsin_u_{}_{nanos}", std::process::id());
        run(&admin, &format!("CREATE DATABASE {name}")).await;
        let (base, _) = admin.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        Scratch { admin, name, url }
    }

    pub(crate) async fn drop_now(self) {
        run(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

async fn run(url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("no PostgreSQL at {url} (scripts/test starts one): {e}"));
    let driver = tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
    drop(client);
    let _ = driver.await;
}

pub(super) fn alert(fp: &str) -> Alert {
    Alert {
        source: "prom".into(),
        fingerprint: fp.into(),
        status: Status::Firing,
        title: format!("alert {fp}"),
        severity: Severity::Warning,
        labels: Labels::from([("alertname".to_string(), fp.to_string())]),
        annotations: Labels::new(),
        description: None,
        url: None,
        starts_at: Some(Timestamp::from_millis(1_800_000_000_000)),
        ends_at: None,
        received_at: Timestamp::from_millis(1_800_000_000_000),
        routing: Default::default(),
        raw: None,
    }
}

fn note(text: &str) -> EntryDraft {
    EntryDraft::system(
        Timestamp::from_millis(1_800_000_100_000),
        EntryKind::Note,
        "system".into(),
        text.into(),
        serde_json::Value::Null,
    )
}

/// A fresh database with two tickets (opened from alerts `a` and `b`), and the feed's head after them.
async fn two_tickets() -> (Scratch, PgStore, [String; 2], i64) {
    let scratch = Scratch::create().await;
    let store = PgStore::connect(&scratch.url).await.unwrap();
    let ids = store
        .append_journal(&[alert("a"), alert("b")])
        .await
        .unwrap();
    let entries: Vec<JournalEntry> = store.pending_journal(10).await.unwrap().entries;
    assert_eq!(entries.len(), ids.len());
    let policy = Policy {
        reopen_window: Duration::from_secs(3600),
    };
    let applied = store.apply_journal(entries.into(), &policy).await.unwrap();
    let tickets = [0, 1].map(|i| applied[i].ticket_id.clone().unwrap());
    let head = *store.feed_watch().borrow();
    (scratch, store, tickets, head)
}

/// Starts a write that appends the entry "first" to `ticket` (then, with `read_after`, reads the
/// feed after that id, which writes its feed row at once and takes the feed lock) and stays open until
/// the returned sender is used. Returns once the entry is written.
async fn hold_open(
    store: &std::sync::Arc<PgStore>,
    ticket: &str,
    read_after: Option<i64>,
) -> (
    tokio::task::JoinHandle<crate::store::Result<()>>,
    mpsc::Sender<()>,
) {
    let (written_tx, written_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let store = std::sync::Arc::clone(store);
    let ticket = ticket.to_string();
    let first = tokio::spawn(async move {
        store
            .backend
            .write(Durability::Now, move |tx| {
                crate::store::ops::append_system_entry(tx, &ticket, note("first"))?;
                if let Some(after) = read_after {
                    let own = tx.feed(&FeedQuery {
                        after,
                        limit: 100,
                        ..FeedQuery::default()
                    })?;
                    assert_eq!(own.len(), 1, "a transaction reads its own feed rows");
                }
                written_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok(())
            })
            .await
    });
    tokio::task::spawn_blocking(move || written_rx.recv().unwrap())
        .await
        .unwrap();
    (first, go_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_writer_waits_until_the_earlier_one_commits() {
    let (scratch, store, [a, b], head) = two_tickets().await;
    let all = |after| FeedQuery {
        after,
        limit: 100,
        ..FeedQuery::default()
    };

    // Writer A writes an entry, reads the feed (which writes its feed row now rather than at the
    // commit, and takes the feed lock), and holds its transaction open until told to commit.
    let store = std::sync::Arc::new(store);
    let (first, go_tx) = hold_open(&store, &a, Some(head)).await;
    // Writer B starts while A is open.
    let second = {
        let store = std::sync::Arc::clone(&store);
        let b = b.clone();
        tokio::spawn(async move {
            store
                .backend
                .write(Durability::Now, move |tx| {
                    crate::store::ops::append_system_entry(tx, &b, note("second"))
                })
                .await
        })
    };
    // B ends up waiting for the feed lock (bounded wait for the server to say so).
    let deadline = Instant::now() + Duration::from_secs(20);
    let (probe, conn) = tokio_postgres::connect(&scratch.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    loop {
        let waiting: i64 = probe
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second writer never waited for the first to commit"
        );
        tokio::task::yield_now().await;
    }
    drop(probe);
    let _ = driver.await;
    // Nothing of either is visible yet: a reader resuming now cannot get past A's id.
    assert!(store.feed(&all(head)).await.unwrap().is_empty());

    go_tx.send(()).unwrap();
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();
    let events = store.feed(&all(head)).await.unwrap();
    let texts: Vec<&str> = events.iter().map(|e| e.entry.text.as_str()).collect();
    assert_eq!(texts, ["first", "second"]);
    assert!(events[0].id < events[1].id);
    assert_eq!(
        store
            .timeline(&a, 0, 10)
            .await
            .unwrap()
            .last()
            .unwrap()
            .text,
        "first"
    );
    assert!(store.get_ticket(&TicketRef::Id(b)).await.is_ok());
    drop(store);
    scratch.drop_now().await;
}

/// Feed rows are written just before the commit (openings.rs), so a writer that has added an entry
/// but not reached its commit holds up no other: the second commits first, and the ids follow the
/// commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_takes_the_feed_lock_only_at_its_commit() {
    let (scratch, store, [a, b], head) = two_tickets().await;
    let store = std::sync::Arc::new(store);
    let (first, go_tx) = hold_open(&store, &a, None).await;
    // The second writer commits while the first is open. Were the lock taken at the first's entry,
    // it would wait for a commit that comes only after it: bounded, that fails here.
    let second = store.backend.write(Durability::Now, move |tx| {
        crate::store::ops::append_system_entry(tx, &b, note("second"))
    });
    tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second writer waited for the first, which had not reached its commit")
        .unwrap();
    go_tx.send(()).unwrap();
    first.await.unwrap().unwrap();
    let events = store
        .feed(&FeedQuery {
            after: head,
            limit: 100,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    let texts: Vec<&str> = events.iter().map(|e| e.entry.text.as_str()).collect();
    assert_eq!(texts, ["second", "first"]);
    assert!(events[0].id < events[1].id);
    drop(store);
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_by_one_process_wakes_the_live_readers_of_another() {
    let scratch = Scratch::create().await;
    let writer = PgStore::connect(&scratch.url).await.unwrap();
    // Another process on the same database: its own pool and its own LISTEN connection.
    let reader = PgStore::connect(&scratch.url).await.unwrap();
    let mut watch = reader.feed_watch();
    let before = *watch.borrow_and_update();
    writer.append_journal(&[alert("a")]).await.unwrap();
    let entries = writer.pending_journal(10).await.unwrap().entries;
    let policy = Policy {
        reopen_window: Duration::from_secs(3600),
    };
    writer.apply_journal(entries.into(), &policy).await.unwrap();
    let head = *writer.feed_watch().borrow();
    assert!(head > before);
    // Bounded: the notification arrives on commit, far sooner than this.
    let woke = tokio::time::timeout(Duration::from_secs(20), watch.wait_for(|v| *v >= head)).await;
    assert!(woke.is_ok(), "the other process's feed watch never moved");
    let events = reader
        .feed(&FeedQuery {
            after: before,
            limit: 10,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.last().map(|e| e.id), Some(head));
    drop((writer, reader));
    scratch.drop_now().await;
}
