//! PostgreSQL from the outside: a server that cannot be reached at start, `tocsin migrate` both ways it
//! is used (the schema alone, and moving a SQLite install written by the release before PostgreSQL), against the real server `scripts/test`
//! provides (see `common/pg.rs`).

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::pg::TestDatabase;
use tocsin::domain::alert::{Alert, Labels, Severity, Status};
use tocsin::domain::presence::{Presence, PresenceState};
use tocsin::domain::silence::{Matcher, SilenceDraft};
use tocsin::domain::ticket::{Action, Actor, Policy};
use tocsin::domain::time::Timestamp;
use tocsin::domain::timeline::Visibility;
use tocsin::store::{FeedQuery, KvChange, KvEntry, PgStore, SqliteStore, Store, TicketFilter};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unreachable_server_at_start_is_one_clear_error_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens there.
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        "listen: 127.0.0.1:0\nstorage: postgres://tocsin:s3cret-pw@127.0.0.1:9/tocsin?sslmode=disable\n\
         sources:\n  g: {kind: generic}\nlog: {format: json}\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    for args in [
        vec!["serve", "--config", &cfg],
        vec!["migrate", "--config", &cfg],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {out}{err}");
        assert!(
            err.contains("postgres://tocsin:***@127.0.0.1:9/tocsin"),
            "{args:?} names the URL: {err}"
        );
        assert!(
            !err.contains("s3cret-pw"),
            "{args:?} shows the password: {err}"
        );
        assert!(!out.contains("s3cret-pw"), "{args:?}: {out}");
    }
}

#[test]
fn migrate_brings_the_schema_up_to_date_alone_and_again() {
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: 127.0.0.1:0\nstorage: {}\nsources:\n  g: {{kind: generic}}\n",
            db.url
        ),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    for _ in 0..2 {
        let (code, out, err) = run(&["migrate", "--config", &cfg]);
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("up to date"), "{out}");
    }
}

fn alert(fp: &str, status: Status, at: i64) -> Alert {
    Alert {
        source: "prom".into(),
        fingerprint: fp.into(),
        status,
        title: format!("Disk full on {fp}"),
        severity: Severity::Critical,
        labels: Labels::from([("alertname".to_string(), fp.to_string())]),
        annotations: Labels::new(),
        description: None,
        url: None,
        starts_at: Some(Timestamp::from_millis(at)),
        ends_at: None,
        received_at: Timestamp::from_millis(at),
        routing: Default::default(),
        raw: None,
    }
}

const T0: i64 = 1_800_000_000_000;

/// Fills a SQLite store the way a running install does: tickets with timelines, notes, a resolution,
/// one alert still in the journal, a silence, presence, an unsubscribe, a session generation.
async fn fill(store: &dyn Store) {
    let policy = Policy {
        reopen_window: Duration::from_secs(3600),
    };
    store
        .append_journal(&[
            alert("db1", Status::Firing, T0),
            alert("db2", Status::Firing, T0 + 1),
            alert("db2", Status::Resolved, T0 + 2),
        ])
        .await
        .unwrap();
    let pending = store.pending_journal(10).await.unwrap().entries;
    store.apply_journal(pending.into(), &policy).await.unwrap();
    let alice = Actor::new("alice", "api");
    let t1 = tocsin::store::TicketRef::Number(1);
    store
        .act(
            &t1,
            Action::Note {
                text: "checking the basalt array".into(),
                visibility: Visibility::Public,
            },
            &alice,
            Timestamp::from_millis(T0 + 10),
        )
        .await
        .unwrap();
    store
        .act(&t1, Action::Ack, &alice, Timestamp::from_millis(T0 + 11))
        .await
        .unwrap();
    store
        .append_journal(&[alert("db3", Status::Firing, T0 + 20)])
        .await
        .unwrap();
    store
        .create_silence(
            SilenceDraft {
                matchers: vec![Matcher::parse("alertname=db9").unwrap()],
                starts_at: Timestamp::from_millis(T0),
                ends_at: Timestamp::from_millis(T0 + 3_600_000),
                comment: "maintenance".into(),
                author: "alice".into(),
            },
            Timestamp::from_millis(T0),
        )
        .await
        .unwrap();
    store
        .set_presence(
            "alice",
            Presence {
                state: PresenceState::Online,
                since: Timestamp::from_millis(T0),
                source: "web".into(),
            },
        )
        .await
        .unwrap();
    store
        .set_unsubscribed("bob", true, Timestamp::from_millis(T0))
        .await
        .unwrap();
    store.end_sessions("carol").await.unwrap();
}

/// What a store holds, as the trait shows it, for comparing two stores.
async fn snapshot(store: &dyn Store) -> String {
    let all = TicketFilter {
        limit: 100,
        ..TicketFilter::default()
    };
    let tickets = store.list_tickets(&all).await.unwrap();
    let mut out = format!("{tickets:?}\n");
    for t in &tickets {
        out.push_str(&format!(
            "{:?}\n",
            store.timeline(&t.id, 0, 100).await.unwrap()
        ));
    }
    let feed = store
        .feed(&FeedQuery {
            limit: 100,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    out.push_str(&format!("{feed:?}\n"));
    let found = store
        .list_tickets(&TicketFilter {
            text: Some("basalt".into()),
            ..all.clone()
        })
        .await
        .unwrap();
    out.push_str(&format!(
        "search {:?}\n",
        found.iter().map(|t| t.number).collect::<Vec<_>>()
    ));
    out.push_str(&format!("{:?}\n", store.pending_journal(10).await.unwrap()));
    out.push_str(&format!("{:?}\n", store.silences(None).await.unwrap()));
    out.push_str(&format!("{:?}\n", store.presence().await.unwrap()));
    out.push_str(&format!("{:?}\n", store.unsubscribed().await.unwrap()));
    out.push_str(&format!(
        "{:?}\n",
        store.session_generation("carol").await.unwrap()
    ));
    out.push_str(&format!("{:?}\n", store.stats().await.unwrap()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_a_sqlite_install_into_an_empty_postgres_and_refuses_a_full_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let before = {
        let old = SqliteStore::open(&path).unwrap();
        fill(&old).await;
        snapshot(&old).await
    };
    // As the release before PostgreSQL left it: its schema had 11 migrations (no leases, instances,
    // plugin_kv or changes tables).
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE changes; DROP TABLE plugin_kv; DROP TABLE instances; DROP TABLE leases; PRAGMA user_version = 11;",
        )
        .unwrap();
    }
    let db = TestDatabase::create();
    let from = format!("sqlite://{}", path.display());
    let (code, out, err) = tokio::task::spawn_blocking({
        let (from, to) = (from.clone(), db.url.clone());
        move || run(&["migrate", "--from", &from, "--to", &to])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("tickets: 2"), "{out}");

    let moved: Arc<dyn Store> = Arc::new(PgStore::connect(&db.url).await.unwrap());
    assert_eq!(snapshot(moved.as_ref()).await, before);
    // It goes on where the old one stopped: the next ticket gets the next number, the next feed id
    // follows the last one.
    let head = *moved.feed_watch().borrow();
    let pending = moved.pending_journal(10).await.unwrap().entries;
    let applied = moved
        .apply_journal(
            pending.into(),
            &Policy {
                reopen_window: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
    assert_eq!(applied[0].outcome, "opened");
    let t3 = moved
        .get_ticket(&tocsin::store::TicketRef::Id(
            applied[0].ticket_id.clone().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(t3.number, 3);
    let next = moved
        .feed(&FeedQuery {
            after: head,
            limit: 10,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert!(next[0].id > head);
    drop(moved);

    // A database that is not empty is refused, and left as it was.
    let (code, out, err) = tokio::task::spawn_blocking({
        let to = db.url.clone();
        move || run(&["migrate", "--from", &from, "--to", &to])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_carries_plugins_kv_state_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kv.db");
    let entries = vec![
        KvEntry {
            key: "hold:prom/a".into(),
            value: "sent:1".into(),
            expires_at: Some(Timestamp::from_millis(T0 + 60_000)),
        },
        KvEntry {
            key: "hold:prom/b".into(),
            value: "pending:2".into(),
            expires_at: None,
        },
    ];
    SqliteStore::open(&path)
        .unwrap()
        .write_plugin_kv(
            "hold",
            entries.iter().cloned().map(KvChange::Put).collect(),
            Timestamp::from_millis(T0),
        )
        .await
        .unwrap();
    let db = TestDatabase::create();
    let (code, out, err) = tokio::task::spawn_blocking({
        let (from, to) = (format!("sqlite://{}", path.display()), db.url.clone());
        move || run(&["migrate", "--from", &from, "--to", &to])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("plugin_kv: 2"), "{out}");
    let moved = PgStore::connect(&db.url).await.unwrap();
    assert_eq!(
        moved
            .plugin_kv("hold", Timestamp::from_millis(T0))
            .await
            .unwrap(),
        entries
    );
}
