//! The outbox: deliveries planned with ticket changes (only with a router), backlog per room and
//! pending order, each way an attempt ends (sent with its thread root, failed and waiting, dead,
//! retried by an admin, skipped), storm digests, and a room's business hours holding deliveries.

use std::sync::Arc;

use tocsin::domain::message::{Content, Digest};
use tocsin::domain::routing::DeliveryKind;
use tocsin::domain::ticket::{Action, Actor};
use tocsin::domain::timeline::EntryKind;
use tocsin::store::{Delivery, DeliveryResult, Store, StoreError};

use super::support::*;

async fn pending(store: &Arc<dyn Store>, room: &str, now: i64) -> Vec<Delivery> {
    store.outbox_pending(room, at(now), 100).await.unwrap()
}

fn summary(ds: &[Delivery]) -> Vec<(Option<i64>, DeliveryKind)> {
    ds.iter()
        .map(|d| {
            let n = match &d.content {
                Content::Ticket(m) => Some(m.number),
                Content::Digest(_) => None,
            };
            (n, d.kind)
        })
        .collect()
}

/// Without a router nothing is planned; with one, changes are written to their rooms' outboxes in
/// order, due at the change's time, counted in the backlog.
pub async fn outbox_plans_deliveries(store: Arc<dyn Store>) {
    ingest(&store, &[firing("before", T0)]).await;
    assert!(store.outbox_backlog(at(T0 + MIN)).await.unwrap().is_empty());
    assert!(pending(&store, "ops", T0 + MIN).await.is_empty());

    route(&store);
    ingest(
        &store,
        &[critical("c", T0 + MIN), firing("w", T0 + 2 * MIN)],
    )
    .await;
    store
        .act(
            &by_number(2),
            Action::Ack,
            &Actor::new("bob", "web"),
            at(T0 + 3 * MIN),
        )
        .await
        .unwrap();
    let ops = pending(&store, "ops", T0 + 3 * MIN).await;
    assert_eq!(
        summary(&ops),
        [
            (Some(2), DeliveryKind::Root),
            (Some(3), DeliveryKind::Root),
            (Some(2), DeliveryKind::Reply),
            (Some(2), DeliveryKind::EditRoot),
        ]
    );
    assert!(ops.windows(2).all(|w| w[0].id < w[1].id));
    let root = &ops[0];
    let c = ticket(&store, 2).await;
    assert_eq!(
        (
            root.room.as_str(),
            root.ticket_id.as_deref(),
            root.state.as_str(),
            root.attempts
        ),
        ("ops", Some(c.id.as_str()), "pending", 0)
    );
    assert_eq!(
        (root.created_at, root.next_at, &root.last_error, &root.root),
        (at(T0 + MIN), at(T0 + MIN), &None, &None)
    );
    let mentioned: Vec<String> = root
        .content
        .mentions()
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    assert!(
        mentioned.iter().any(|m| m.contains("alice"))
            && mentioned.iter().any(|m| m.contains("bob")),
        "{mentioned:?}"
    );
    assert!(
        ops[1].content.mentions().is_empty(),
        "a warning mentions nobody"
    );

    let backlog = store.outbox_backlog(at(T0 + 3 * MIN)).await.unwrap();
    assert_eq!(backlog.len(), 1);
    assert_eq!(
        (
            backlog[0].room.as_str(),
            backlog[0].pending,
            backlog[0].head_next_at
        ),
        ("ops", 4, at(T0 + MIN))
    );
    assert_eq!(
        summary(
            &store
                .outbox_pending("ops", at(T0 + 3 * MIN), 2)
                .await
                .unwrap()
        ),
        summary(&ops[..2])
    );
    // Internal notes are not news for a room.
    store
        .act(
            &by_number(2),
            Action::Note {
                text: "internal".into(),
                visibility: tocsin::domain::timeline::Visibility::Internal,
            },
            &Actor::new("bob", "web"),
            at(T0 + 4 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(pending(&store, "ops", T0 + 4 * MIN).await.len(), 4);
}

/// A sent root message leaves the outbox and becomes the ticket's thread in that room, found both
/// ways; the ticket's later deliveries there carry it; a result for a delivery no longer in the
/// outbox is ignored.
pub async fn outbox_sent_records_thread_root(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[firing("a", T0)]).await;
    let a = ticket(&store, 1).await;
    let root = pending(&store, "ops", T0).await.remove(0);
    assert_eq!(root.kind, DeliveryKind::Root);
    store
        .outbox_complete(
            vec![DeliveryResult::Sent {
                id: root.id,
                handle: Some("msg-1".into()),
            }],
            at(T0 + MIN),
        )
        .await
        .unwrap();
    assert!(pending(&store, "ops", T0 + MIN).await.is_empty());
    assert!(store.outbox_backlog(at(T0 + MIN)).await.unwrap().is_empty());
    assert_eq!(
        store.ticket_root(&a.id, "ops").await.unwrap().as_deref(),
        Some("msg-1")
    );
    assert_eq!(
        store
            .ticket_by_root("ops", "msg-1")
            .await
            .unwrap()
            .map(|t| t.id),
        Some(a.id.clone())
    );
    assert_eq!(store.ticket_by_root("ops", "msg-2").await.unwrap(), None);
    assert_eq!(store.ticket_by_root("night", "msg-1").await.unwrap(), None);
    assert_eq!(store.ticket_root(&a.id, "night").await.unwrap(), None);
    let delivered = entries_of(&store, 1, EntryKind::Delivered).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        (delivered[0].at, delivered[0].data["room"].as_str()),
        (at(T0 + MIN), Some("ops"))
    );

    store
        .act(
            &by_number(1),
            Action::Ack,
            &Actor::new("bob", "web"),
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    let follow = pending(&store, "ops", T0 + 2 * MIN).await;
    assert_eq!(
        summary(&follow),
        [
            (Some(1), DeliveryKind::Reply),
            (Some(1), DeliveryKind::EditRoot)
        ]
    );
    assert!(follow.iter().all(|d| d.root.as_deref() == Some("msg-1")));
    // A reply sent with a handle of its own does not become the thread.
    let seq = ticket(&store, 1).await.last_seq;
    store
        .outbox_complete(
            vec![
                DeliveryResult::Sent {
                    id: follow[0].id,
                    handle: Some("msg-9".into()),
                },
                DeliveryResult::Sent {
                    id: follow[1].id,
                    handle: None,
                },
            ],
            at(T0 + 3 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        store.ticket_root(&a.id, "ops").await.unwrap().as_deref(),
        Some("msg-1")
    );
    assert_eq!(ticket(&store, 1).await.last_seq, seq + 2);
    // Reported again (a replay after a crash): nothing more happens.
    store
        .outbox_complete(
            vec![DeliveryResult::Sent {
                id: root.id,
                handle: Some("msg-x".into()),
            }],
            at(T0 + 4 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(ticket(&store, 1).await.last_seq, seq + 2);
    assert_eq!(
        store.ticket_root(&a.id, "ops").await.unwrap().as_deref(),
        Some("msg-1")
    );
}

/// A message sent leaves a `Delivered` record on the timeline that search does not index: every
/// ticket delivered has one saying the same, so "message" or a room's name would find them all. A
/// failed attempt's record stays searchable, by its error.
pub async fn outbox_send_records_not_searched(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[firing("a", T0), firing("b", T0 + MIN)]).await;
    let ops = pending(&store, "ops", T0 + MIN).await;
    store
        .outbox_complete(
            vec![
                DeliveryResult::Sent {
                    id: ops[0].id,
                    handle: Some("msg-1".into()),
                },
                DeliveryResult::Failed {
                    id: ops[1].id,
                    error: "upstream timeout".into(),
                    next_at: at(T0 + 5 * MIN),
                },
            ],
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(entries_of(&store, 1, EntryKind::Delivered).await.len(), 1);
    assert_eq!(
        entries_of(&store, 2, EntryKind::DeliveryFailed).await.len(),
        1
    );
    assert!(search(&store, "delivered", &[]).await.is_empty());
    assert_eq!(search(&store, "timeout", &[]).await, [2]);
    assert_eq!(
        search(&store, "message ops", &[]).await,
        [2],
        "the failed attempt's record only"
    );
}

/// One report of many results reads as the results one by one: each ticket's records take
/// consecutive seqs in the order reported, a delivery reported twice is recorded once, and a
/// failure then a success of the same delivery are both recorded, in that order.
pub async fn outbox_complete_many_in_order(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[firing("a", T0), firing("b", T0 + MIN)]).await;
    let ops = pending(&store, "ops", T0 + MIN).await;
    let (one, two) = (ticket(&store, 1).await, ticket(&store, 2).await);
    let sent = |id| DeliveryResult::Sent {
        id,
        handle: Some(format!("msg-{id}")),
    };
    store
        .outbox_complete(
            vec![
                sent(ops[0].id),
                DeliveryResult::Failed {
                    id: ops[1].id,
                    error: "HTTP 503".into(),
                    next_at: at(T0 + 2 * MIN),
                },
                sent(ops[0].id),
                sent(ops[1].id),
            ],
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert!(pending(&store, "ops", T0 + 3 * MIN).await.is_empty());
    assert_eq!(ticket(&store, 1).await.last_seq, one.last_seq + 1);
    assert_eq!(ticket(&store, 2).await.last_seq, two.last_seq + 2);
    let kinds = |t: Vec<tocsin::domain::timeline::Entry>, from: i64| {
        t.into_iter()
            .filter(|e| e.seq > from)
            .map(|e| (e.seq, e.kind))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        kinds(timeline(&store, 1).await, one.last_seq),
        [(one.last_seq + 1, EntryKind::Delivered)]
    );
    assert_eq!(
        kinds(timeline(&store, 2).await, two.last_seq),
        [
            (two.last_seq + 1, EntryKind::DeliveryFailed),
            (two.last_seq + 2, EntryKind::Delivered)
        ]
    );
    for (n, d) in [(1, &ops[0]), (2, &ops[1])] {
        let t = ticket(&store, n).await;
        assert_eq!(
            store.ticket_root(&t.id, "ops").await.unwrap(),
            Some(format!("msg-{}", d.id))
        );
    }

    // Many sends at once (the usual step): every ticket's record, in the order reported.
    ingest(
        &store,
        &[firing("c", T0 + 3 * MIN), firing("d", T0 + 3 * MIN)],
    )
    .await;
    let more = pending(&store, "ops", T0 + 3 * MIN).await;
    assert_eq!(more.len(), 2);
    let before = [
        ticket(&store, 3).await.last_seq,
        ticket(&store, 4).await.last_seq,
    ];
    store
        .outbox_complete(
            more.iter().rev().map(|d| sent(d.id)).collect(),
            at(T0 + 4 * MIN),
        )
        .await
        .unwrap();
    for (n, last) in [3, 4].into_iter().zip(before) {
        assert_eq!(
            kinds(timeline(&store, n).await, last),
            [(last + 1, EntryKind::Delivered)]
        );
    }
    assert!(pending(&store, "ops", T0 + 4 * MIN).await.is_empty());
}

/// A failed attempt stays pending with its count, error and next try (the room's head waits until
/// then); a dead one leaves the line and is listed, newest first; an admin puts it back, due now with
/// a fresh age; only dead deliveries can be retried. Each step is on the ticket's timeline.
pub async fn outbox_failed_dead_retry(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[firing("a", T0), firing("b", T0 + MIN)]).await;
    let ops = pending(&store, "ops", T0 + MIN).await;
    let (first, second) = (ops[0].clone(), ops[1].clone());
    store
        .outbox_complete(
            vec![DeliveryResult::Failed {
                id: first.id,
                error: "HTTP 502".into(),
                next_at: at(T0 + 5 * MIN),
            }],
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    let now = pending(&store, "ops", T0 + 2 * MIN).await;
    assert_eq!(now[0].id, first.id, "still first in line");
    assert_eq!(
        (
            now[0].attempts,
            now[0].next_at,
            now[0].last_error.as_deref(),
            now[0].state.as_str()
        ),
        (1, at(T0 + 5 * MIN), Some("HTTP 502"), "pending")
    );
    let backlog = store.outbox_backlog(at(T0 + 2 * MIN)).await.unwrap();
    assert_eq!(
        (backlog[0].pending, backlog[0].head_next_at),
        (2, at(T0 + 5 * MIN))
    );
    let failed = entries_of(&store, 1, EntryKind::DeliveryFailed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (
            failed[0].data["attempt"].as_i64(),
            failed[0].data["error"].as_str()
        ),
        (Some(1), Some("HTTP 502"))
    );

    store
        .outbox_complete(
            vec![DeliveryResult::Dead {
                id: first.id,
                error: "HTTP 410".into(),
            }],
            at(T0 + 6 * MIN),
        )
        .await
        .unwrap();
    store
        .outbox_complete(
            vec![DeliveryResult::Dead {
                id: second.id,
                error: "HTTP 404".into(),
            }],
            at(T0 + 7 * MIN),
        )
        .await
        .unwrap();
    assert!(pending(&store, "ops", T0 + 7 * MIN).await.is_empty());
    assert!(store
        .outbox_backlog(at(T0 + 7 * MIN))
        .await
        .unwrap()
        .is_empty());
    let dead = store.outbox_dead(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.id).collect::<Vec<_>>(),
        [second.id, first.id]
    );
    assert_eq!(
        (
            dead[1].state.as_str(),
            dead[1].attempts,
            dead[1].last_error.as_deref()
        ),
        ("dead", 2, Some("HTTP 410"))
    );
    assert_eq!(store.outbox_dead(1).await.unwrap().len(), 1);
    let given_up = entries_of(&store, 1, EntryKind::DeliveryDead).await;
    assert_eq!(given_up.len(), 1);
    assert_eq!(
        (
            given_up[0].data["attempt"].as_i64(),
            given_up[0].data["delivery"].as_i64(),
            given_up[0].data["kind"].as_str()
        ),
        (Some(2), Some(first.id), Some(first.kind.as_str())),
        "the second attempt, on the row as it was"
    );

    let back = store
        .outbox_retry(first.id, "alice", at(T0 + 8 * MIN))
        .await
        .unwrap();
    assert_eq!(
        (
            back.id,
            back.state.as_str(),
            back.attempts,
            back.created_at,
            back.next_at
        ),
        (first.id, "pending", 0, at(T0 + 8 * MIN), at(T0 + 8 * MIN))
    );
    assert_eq!(
        pending(&store, "ops", T0 + 8 * MIN)
            .await
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        [first.id]
    );
    assert_eq!(
        store
            .outbox_dead(10)
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        [second.id]
    );
    let last = timeline(&store, 1).await.pop().unwrap();
    assert_eq!(
        (last.actor.as_str(), last.data["retried_by"].as_str()),
        ("member:alice", Some("alice"))
    );
    for not_dead in [first.id, second.id + 1000] {
        assert!(matches!(
            store
                .outbox_retry(not_dead, "alice", at(T0 + 9 * MIN))
                .await,
            Err(StoreError::NotFound)
        ));
    }
}

/// A skipped delivery leaves the outbox without a timeline entry.
pub async fn outbox_skipped(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[firing("a", T0)]).await;
    let root = pending(&store, "ops", T0).await.remove(0);
    let before = timeline(&store, 1).await;
    store
        .outbox_complete(
            vec![DeliveryResult::Skipped {
                id: root.id,
                reason: "nothing to edit".into(),
            }],
            at(T0 + MIN),
        )
        .await
        .unwrap();
    assert!(pending(&store, "ops", T0 + MIN).await.is_empty());
    assert!(store.outbox_dead(10).await.unwrap().is_empty());
    assert_eq!(timeline(&store, 1).await, before);
    assert_eq!(
        store
            .ticket_root(&ticket(&store, 1).await.id, "ops")
            .await
            .unwrap(),
        None
    );
}

/// A storm digest replaces the deliveries it covers by one digest delivery (no ticket), at the end of
/// the room's line; each covered ticket's timeline says its change went into the digest.
pub async fn outbox_digest(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[firing("a", T0), firing("b", T0), firing("c", T0)]).await;
    let ops = pending(&store, "ops", T0).await;
    assert_eq!(ops.len(), 3);
    let content = Content::Digest(Digest {
        room: "ops".into(),
        changes: 2,
        firing: 2,
        acked: 0,
        resolved: 0,
        by_severity: vec![(tocsin::domain::alert::Severity::Warning, 2)],
        top: Vec::new(),
        more: 2,
        link: "https://tocsin.test/tickets".into(),
        mentions: Vec::new(),
        at: at(T0 + MIN),
    });
    let id = store
        .outbox_digest(
            "ops",
            vec![ops[0].id, ops[1].id],
            content.clone(),
            at(T0 + MIN),
        )
        .await
        .unwrap();
    let now = pending(&store, "ops", T0 + MIN).await;
    assert_eq!(
        now.iter().map(|d| d.id).collect::<Vec<_>>(),
        [ops[2].id, id]
    );
    let digest = &now[1];
    assert_eq!(
        (
            digest.kind,
            digest.ticket_id.as_deref(),
            &digest.content,
            digest.created_at
        ),
        (DeliveryKind::Digest, None, &content, at(T0 + MIN))
    );
    for n in [1, 2] {
        let d = entries_of(&store, n, EntryKind::Digested).await;
        assert_eq!(d.len(), 1, "T-{n}");
        assert_eq!(d[0].data["digest"].as_i64(), Some(id));
    }
    assert!(entries_of(&store, 3, EntryKind::Digested).await.is_empty());
    // A row already taken into a digest is not taken again; the rest are.
    let again = store
        .outbox_digest("ops", vec![ops[0].id, ops[2].id], content, at(T0 + MIN))
        .await
        .unwrap();
    assert_eq!(entries_of(&store, 1, EntryKind::Digested).await.len(), 1);
    let third = entries_of(&store, 3, EntryKind::Digested).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].data["digest"].as_i64(), Some(again));
    assert_eq!(
        pending(&store, "ops", T0 + MIN)
            .await
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        [id, again]
    );
    // The digest is sent like any delivery, and names no ticket's thread.
    store
        .outbox_complete(
            vec![DeliveryResult::Sent {
                id,
                handle: Some("digest-1".into()),
            }],
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(store.ticket_by_root("ops", "digest-1").await.unwrap(), None);
    assert_eq!(pending(&store, "ops", T0 + 2 * MIN).await.len(), 1);
}

/// A room outside its business hours holds non-critical deliveries until its hours start: until then
/// they are neither pending nor in the backlog, and hold up nothing behind them (a critical ticket
/// goes now); the timeline says so.
pub async fn business_hours_hold(store: Arc<dyn Store>) {
    route(&store);
    let mut urgent = for_night("urgent", T0 + MIN);
    urgent.severity = tocsin::domain::alert::Severity::Critical;
    ingest(&store, &[for_night("later", T0), urgent]).await;
    let off = entries_of(&store, 1, EntryKind::OffHours).await;
    assert_eq!(off.len(), 1);
    assert_eq!(
        (
            off[0].data["room"].as_str(),
            off[0].data["action"].as_str(),
            serde_json::from_value(off[0].data["until"].clone()).ok()
        ),
        (Some("night"), Some("hold"), Some(at(NIGHT_OPENS)))
    );
    assert!(
        entries_of(&store, 2, EntryKind::OffHours).await.is_empty(),
        "critical: not held"
    );

    let before = NIGHT_OPENS - 1;
    assert_eq!(
        summary(&pending(&store, "night", before).await),
        [(Some(2), DeliveryKind::Root)]
    );
    let backlog = store.outbox_backlog(at(before)).await.unwrap();
    assert_eq!(backlog.len(), 1);
    assert_eq!(
        (
            backlog[0].room.as_str(),
            backlog[0].pending,
            backlog[0].head_next_at
        ),
        ("night", 1, at(T0 + MIN))
    );

    let now = pending(&store, "night", NIGHT_OPENS).await;
    assert_eq!(
        summary(&now),
        [(Some(1), DeliveryKind::Root), (Some(2), DeliveryKind::Root)]
    );
    let backlog = store.outbox_backlog(at(NIGHT_OPENS)).await.unwrap();
    assert_eq!((backlog[0].pending, backlog[0].head_next_at), (2, at(T0)));
}
