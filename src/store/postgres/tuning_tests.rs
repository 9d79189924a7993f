//! What makes PostgreSQL cheaper per alert, against a real PostgreSQL: room for next versions on
//! `tickets` pages (migration 0006), so a resend's heartbeat keeps the ticket's row on its page, which
//! is what lets PostgreSQL skip every index; reads without a transaction around them, still refusing
//! to write; a batch's tickets found through the index however small `tickets` was when the
//! connection first looked keys up.

use std::time::Duration;

use super::order_tests::{alert, Scratch};
use super::{get, PgStore, PgTx, Session};
use crate::domain::alert::Alert;
use crate::domain::ticket::Policy;
use crate::domain::time::Timestamp;
use crate::store::engine::Backend;
use crate::store::tx::TicketRows;
use crate::store::{Store, StoreError, TicketRef};

/// Appends and applies `alerts`; returns the ticket of each, in order.
async fn apply(store: &PgStore, alerts: &[Alert]) -> Vec<String> {
    store.append_journal(alerts).await.unwrap();
    let entries = store.pending_journal(1000).await.unwrap().entries;
    assert_eq!(entries.len(), alerts.len());
    let policy = Policy {
        reopen_window: Duration::from_secs(3600),
    };
    let applied = store.apply_journal(entries.into(), &policy).await.unwrap();
    applied.into_iter().map(|a| a.ticket_id.unwrap()).collect()
}

/// The page (block number) each ticket's current row version is on.
async fn page(client: &tokio_postgres::Client, id: &str) -> i64 {
    client
        .query_one(
            "SELECT (ctid::text::point)[0]::bigint FROM tickets WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resend_keeps_its_tickets_row_on_its_page() {
    let scratch = Scratch::create().await;
    let store = PgStore::connect(&scratch.url).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&scratch.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(conn);

    // Enough tickets to fill more than one page, so the first page was closed by its fill limit.
    let alerts: Vec<Alert> = (0..60).map(|i| alert(&format!("fp{i}"))).collect();
    let tickets = apply(&store, &alerts).await;
    let last_page = page(&client, tickets.last().unwrap()).await;
    assert!(last_page > 0, "60 tickets all fit on one page");
    let first = &tickets[0];
    assert_eq!(page(&client, first).await, 0);

    let mut resend = alerts[0].clone();
    resend.received_at = Timestamp::from_millis(resend.received_at.as_millis() + 60_000);
    assert_eq!(apply(&store, &[resend]).await, vec![first.clone()]);
    let resends: i64 = client
        .query_one("SELECT resend_count FROM tickets WHERE id = $1", &[first])
        .await
        .unwrap()
        .get(0);
    assert_eq!(resends, 1, "the resend was applied to the ticket");
    assert_eq!(
        page(&client, first).await,
        0,
        "the heartbeat's row version left the ticket's page"
    );

    drop(client);
    let _ = driver.await;
    drop(store);
    scratch.drop_now().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_sees_the_database_and_cannot_write() {
    let scratch = Scratch::create().await;
    let store = PgStore::connect(&scratch.url).await.unwrap();
    let id = apply(&store, &[alert("seen")]).await.remove(0);

    let found = store
        .backend
        .read(move |tx| tx.find_ticket(&TicketRef::Id(id)))
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.fingerprint).as_deref(), Some("seen"));

    let at = Timestamp::from_millis(1_800_000_000_000);
    let wrote = store
        .backend
        .read(move |tx| tx.append_journal_raw(at, "{}"))
        .await;
    match wrote {
        Err(StoreError::Other(e)) => assert!(e.contains("a write in a read"), "{e}"),
        other => panic!("a read wrote: {other:?}"),
    }
    assert!(store.pending_journal(10).await.unwrap().entries.is_empty());

    drop(store);
    scratch.drop_now().await;
}

/// Sequential scans of `tickets` in `tx`'s transaction so far.
fn seq_scans(tx: &mut PgTx) -> i64 {
    let row = tx
        .query_one(
            "SELECT COALESCE(SUM(seq_scan), 0)::bigint FROM pg_stat_xact_user_tables \
             WHERE relname = 'tickets'",
            &[],
        )
        .unwrap();
    get(&row, 0).unwrap()
}

/// Runs `f` in a transaction of its own on `conn`, and commits.
fn in_tx<T>(
    conn: &mut super::pool::Conn,
    f: impl FnOnce(&mut PgTx) -> crate::store::Result<T>,
) -> crate::store::Result<T> {
    let t = conn.client.transaction().map_err(super::err)?;
    let mut tx = PgTx::new(Session::Tx(t), &mut conn.stmts, false);
    let out = f(&mut tx)?;
    tx.t.commit()?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batchs_tickets_are_found_through_the_index_after_the_table_grew() {
    let scratch = Scratch::create().await;
    let store = PgStore::connect(&scratch.url).await.unwrap();
    let (found, scans) = store
        .backend
        .pool
        .run(|conn| {
            let keys = [("prom".to_string(), "fp7".to_string())];
            // While `tickets` is empty, more lookups than PostgreSQL runs before it keeps one plan
            // for a prepared statement (five): the plan it would keep scans the (empty) table.
            for _ in 0..8 {
                in_tx(conn, |tx| tx.latest_for_keys(&keys))?;
            }
            // Then a storm's worth of tickets, with no ANALYZE since (autovacuum takes a minute).
            in_tx(conn, |tx| {
                tx.exec(
                    "INSERT INTO tickets (id, number, source, fingerprint, title, severity, state, \
                     labels, annotations, created_at, updated_at, last_seen, firing_count, \
                     resend_count, last_seq, is_latest) \
                     SELECT 't' || g, g, 'prom', 'fp' || g, 'x', 'warning', 'open', '{}', '{}', \
                     0, 0, 0, 1, 0, 0, true FROM generate_series(1, 5000) g",
                    &[],
                )
            })?;
            in_tx(conn, |tx| {
                let found = tx.latest_for_keys(&keys)?;
                Ok((found, seq_scans(tx)))
            })
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "t7");
    assert_eq!(
        scans, 0,
        "looking up one key read all 5,000 tickets: a plan made for the empty table"
    );

    drop(store);
    scratch.drop_now().await;
}
