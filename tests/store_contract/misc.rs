//! The rest of the trait: alerts plugins dropped, plugin failures on the timeline, the dead journal,
//! health, retention (purge), session generations and replies by email taken once.

use std::sync::Arc;

use tocsin::domain::alert::Status;
use tocsin::domain::plugin::{DropInfo, FailureKind, PluginFailure};
use tocsin::domain::ticket::{Action, ActionError, Actor, TicketState};
use tocsin::domain::timeline::{EntryKind, Visibility};
use tocsin::store::{EmailReply, FeedQuery, ReplyAction, Store, StoreError, TicketRef};

use super::support::*;

fn dropped_by(
    plugin: &str,
    reason: &str,
) -> impl FnMut(tocsin::store::JournalEntry) -> tocsin::store::JournalEntry {
    let drop = DropInfo {
        plugin: plugin.into(),
        reason: reason.into(),
    };
    move |mut e| {
        e.dropped = Some(drop.clone());
        e
    }
}

/// A dropped alert makes no ticket; the dropped list has it, newest first, at most `limit`.
pub async fn dropped_alerts(store: Arc<dyn Store>) {
    assert!(store.dropped(10).await.unwrap().is_empty());
    let first = ingest_entry(
        &store,
        firing("noise", T0),
        dropped_by("filter", "test alert"),
    )
    .await;
    assert_eq!((first.outcome, first.ticket_id.clone()), ("dropped", None));
    ingest_entry(
        &store,
        firing("spam", T0 + MIN),
        dropped_by("dedupe", "seen"),
    )
    .await;
    assert!(numbers(&store, Default::default()).await.is_empty());
    assert!(store.pending_journal(10).await.unwrap().is_empty());
    let list = store.dropped(10).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|d| (d.plugin.as_str(), d.reason.as_str(), d.at))
            .collect::<Vec<_>>(),
        [
            ("dedupe", "seen", at(T0 + MIN)),
            ("filter", "test alert", at(T0))
        ]
    );
    assert!(list[0].id > list[1].id);
    assert_eq!(list[1].alert, firing("noise", T0));
    assert_eq!(store.dropped(1).await.unwrap(), list[..1]);
}

/// The dropped list keeps the newest 1,000.
pub async fn dropped_keeps_the_last_thousand(store: Arc<dyn Store>) {
    let alerts: Vec<_> = (0..1001)
        .map(|i| firing(&format!("d{i}"), T0 + i))
        .collect();
    store.append_journal(&alerts).await.unwrap();
    let entries: Vec<_> = store
        .pending_journal(2000)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(dropped_by("filter", "noise"))
        .collect();
    let applied = store
        .apply_journal(entries.into(), &policy())
        .await
        .unwrap();
    assert_eq!(applied.len(), 1001);
    let kept = store.dropped(2000).await.unwrap();
    assert_eq!(kept.len(), 1000);
    assert_eq!(kept[0].alert.fingerprint, "d1000");
    assert_eq!(kept[999].alert.fingerprint, "d1");
}

/// Plugin failures go on the timeline when the alert changed the ticket, not on a plain resend.
pub async fn plugin_failures(store: Arc<dyn Store>) {
    let failed = |e: tocsin::store::JournalEntry| tocsin::store::JournalEntry {
        failures: vec![PluginFailure {
            plugin: "enrich".into(),
            kind: FailureKind::Trap,
            message: "unreachable".into(),
            logs: Vec::new(),
        }],
        ..e
    };
    ingest_entry(&store, firing("a", T0), failed).await;
    assert_eq!(
        kinds(&store, 1).await,
        [EntryKind::Opened, EntryKind::PluginFailed]
    );
    let f = &timeline(&store, 1).await[1];
    assert_eq!(
        (f.actor.as_str(), f.visibility, f.at),
        ("plugin:enrich", Visibility::System, at(T0))
    );
    assert_eq!(
        (
            f.data["plugin"].as_str(),
            f.data["kind"].as_str(),
            f.data["message"].as_str()
        ),
        (Some("enrich"), Some("trap"), Some("unreachable"))
    );
    assert_eq!(ticket(&store, 1).await.last_seq, 2);

    let resend = ingest_entry(
        &store,
        alert("a", Status::Firing, T0, T0 + MIN, None),
        failed,
    )
    .await;
    assert_eq!(resend.outcome, "resent");
    assert_eq!(kinds(&store, 1).await.len(), 2, "no entry for a heartbeat");
    ingest_entry(&store, firing("a", T0 + 2 * MIN), failed).await;
    assert_eq!(
        kinds(&store, 1).await,
        [
            EntryKind::Opened,
            EntryKind::PluginFailed,
            EntryKind::Refired,
            EntryKind::PluginFailed
        ]
    );
}

/// The dead journal: a row moved aside is listed newest first, counted by health, with a system
/// ticket about it that resolves when an admin deletes or retries the row; gone rows are NotFound.
pub async fn dead_journal_delete_and_retry(store: Arc<dyn Store>) {
    let ids = store
        .append_journal(&[firing("x", T0), firing("y", T0 + MIN)])
        .await
        .unwrap();
    assert!(store
        .bury_journal(ids[0], "bad x", at(T0 + 2 * MIN))
        .await
        .unwrap());
    assert!(store
        .bury_journal(ids[1], "bad y", at(T0 + 3 * MIN))
        .await
        .unwrap());
    let dead = store.dead_journal(10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.journal_id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    assert_eq!(
        (
            dead[1].received_at,
            dead[1].buried_at,
            dead[1].reason.as_str()
        ),
        (at(T0), at(T0 + 2 * MIN), "bad x")
    );
    assert!(dead[1].alert.contains("\"x\""), "{}", dead[1].alert);
    assert_eq!(store.dead_journal(1).await.unwrap(), dead[..1]);
    assert_eq!(store.health().await.unwrap().dead_journal, 2);
    // What is left are the notices, which make system tickets.
    let notices = apply_pending(&store).await;
    assert_eq!(
        notices.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        ["opened", "opened"]
    );
    assert_eq!(store.stats().await.unwrap().open, 2);

    store
        .delete_dead_journal(dead[0].id, "alice", at(T0 + 4 * MIN))
        .await
        .unwrap();
    let back = store
        .retry_dead_journal(dead[1].id, "alice", at(T0 + 5 * MIN))
        .await
        .unwrap();
    assert!(store.dead_journal(10).await.unwrap().is_empty());
    assert_eq!(store.health().await.unwrap().dead_journal, 0);
    for gone in [dead[0].id, dead[1].id] {
        assert!(matches!(
            store.delete_dead_journal(gone, "alice", at(T0)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.retry_dead_journal(gone, "alice", at(T0)).await,
            Err(StoreError::NotFound)
        ));
    }
    let pending = store.pending_journal(10).await.unwrap().entries;
    assert!(pending
        .iter()
        .any(|e| e.id == back && e.alert == firing("x", T0)));
    apply_pending(&store).await;
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.open, stats.resolved),
        (1, 2),
        "x opened; both notices resolved"
    );
    let health = store.health().await.unwrap();
    assert_eq!((health.oldest_pending, health.problem), (None, None));
}

/// A notice about a buried row is itself buried without a notice about it (no endless chain).
pub async fn dead_journal_notice_not_renoticed(store: Arc<dyn Store>) {
    let id = store.append_journal(&[firing("x", T0)]).await.unwrap()[0];
    assert!(store.bury_journal(id, "bad", at(T0 + MIN)).await.unwrap());
    let notice = store.pending_journal(10).await.unwrap().entries;
    assert_eq!(notice.len(), 1);
    assert!(store
        .bury_journal(notice[0].id, "bad too", at(T0 + 2 * MIN))
        .await
        .unwrap());
    assert!(store.pending_journal(10).await.unwrap().is_empty());
    assert_eq!(store.health().await.unwrap().dead_journal, 2);
}

/// Retention deletes resolved tickets from before the cutoff, oldest first, `limit` at a time, with
/// their timelines, feed and search; open tickets stay whatever their age; numbers are not reused.
pub async fn purge_resolved_tickets(store: Arc<dyn Store>) {
    route(&store);
    ingest(
        &store,
        &[
            firing("a", T0),
            firing("b", T0),
            firing("c", T0),
            firing("keep", T0),
        ],
    )
    .await;
    let bob = Actor::new("bob", "web");
    for (n, t) in [(2, T0 + MIN), (1, T0 + 2 * MIN), (3, T0 + 30 * MIN)] {
        store
            .act(&by_number(n), Action::Resolve, &bob, at(t))
            .await
            .unwrap();
    }
    let a = ticket(&store, 1).await;
    assert_eq!(store.purge_tickets(at(T0 + 10 * MIN), 1).await.unwrap(), 1);
    assert_eq!(
        numbers(&store, Default::default()).await,
        [4, 3, 1],
        "the oldest resolution went first"
    );
    assert_eq!(store.purge_tickets(at(T0 + 10 * MIN), 10).await.unwrap(), 1);
    assert_eq!(store.purge_tickets(at(T0 + 10 * MIN), 10).await.unwrap(), 0);
    assert_eq!(numbers(&store, Default::default()).await, [4, 3]);
    assert!(store.timeline(&a.id, 0, 10).await.unwrap().is_empty());
    assert!(search(&store, "a", &[]).await.iter().all(|n| *n > 2));
    let feed = store
        .feed(&FeedQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        feed.iter().all(|f| f.ticket == "T-3" || f.ticket == "T-4"),
        "{feed:?}"
    );
    assert!(store
        .outbox_pending("ops", at(T0 + 60 * MIN), 100)
        .await
        .unwrap()
        .iter()
        .all(|d| d.ticket_id.as_deref() != Some(a.id.as_str())));
    assert_eq!(store.stats().await.unwrap().resolved, 1);
    assert_eq!(
        store.purge_tickets(at(T0 + 600 * MIN), 10).await.unwrap(),
        1
    );
    assert_eq!(numbers(&store, Default::default()).await, [4]);
    ingest(&store, &[firing("a", T0 + 601 * MIN)]).await;
    assert_eq!(numbers(&store, Default::default()).await, [5, 4]);
    assert_eq!(
        ticket(&store, 5).await.previous_id,
        None,
        "its predecessor is gone"
    );
}

/// Session generations count per member.
pub async fn session_generations(store: Arc<dyn Store>) {
    assert_eq!(store.session_generation("alice").await.unwrap(), 0);
    let one = store.end_sessions("alice").await.unwrap();
    let two = store.end_sessions("alice").await.unwrap();
    assert!(0 < one && one < two);
    assert_eq!(store.session_generation("alice").await.unwrap(), two);
    assert_eq!(store.session_generation("bob").await.unwrap(), 0);
}

fn reply(ticket: TicketRef, member: &str, actions: Vec<(Action, bool)>) -> EmailReply {
    EmailReply {
        ticket,
        actor: Actor::new(member, "email"),
        actions: actions
            .into_iter()
            .map(|(action, optional)| ReplyAction { action, optional })
            .collect(),
    }
}

fn note(text: &str) -> Action {
    Action::Note {
        text: text.into(),
        visibility: Visibility::Public,
    }
}

/// Replies by email: applied in order, an optional refusal skipped, any other failure rolling back
/// the whole message; each reply taken once per message until `until`, then forgotten.
pub async fn email_replies(store: Arc<dyn Store>) {
    ingest(&store, &[firing("a", T0), firing("b", T0)]).await;
    let until = at(T0 + 60 * MIN);
    let both = || {
        vec![
            reply(
                by_number(1),
                "alice",
                vec![(Action::Ack, true), (note("on it"), false)],
            ),
            reply(by_number(2), "alice", vec![(Action::Resolve, false)]),
        ]
    };
    assert_eq!(
        store
            .take_email_reply("<m1@x>", both(), until, at(T0 + MIN))
            .await
            .unwrap(),
        2
    );
    assert_eq!(ticket(&store, 1).await.state, TicketState::Acked);
    assert_eq!(ticket(&store, 2).await.state, TicketState::Resolved);
    let note_entry = timeline(&store, 1).await.pop().unwrap();
    assert_eq!(
        (
            note_entry.kind,
            note_entry.actor.as_str(),
            note_entry.data["via"].as_str()
        ),
        (EntryKind::Note, "member:alice", Some("email"))
    );
    assert_eq!(
        store
            .take_email_reply("<m1@x>", both(), until, at(T0 + 2 * MIN))
            .await
            .unwrap(),
        0
    );
    // The same message from another member, or to another ticket, is new.
    let bob = vec![reply(by_number(1), "bob", vec![(note("me too"), false)])];
    assert_eq!(
        store
            .take_email_reply("<m1@x>", bob, until, at(T0 + 2 * MIN))
            .await
            .unwrap(),
        1
    );

    // A refusal that is not optional rolls everything back, the other reply included.
    let seqs = (
        ticket(&store, 1).await.last_seq,
        ticket(&store, 2).await.last_seq,
    );
    let bad = vec![
        reply(by_number(1), "carol", vec![(note("first"), false)]),
        reply(by_number(2), "carol", vec![(Action::Resolve, false)]),
    ];
    assert!(matches!(
        store
            .take_email_reply("<m2@x>", bad.clone(), until, at(T0 + 3 * MIN))
            .await,
        Err(StoreError::Rejected(ActionError::Resolved(_)))
    ));
    assert_eq!(
        (
            ticket(&store, 1).await.last_seq,
            ticket(&store, 2).await.last_seq
        ),
        seqs
    );
    let missing = vec![
        reply(by_number(1), "carol", vec![(note("first"), false)]),
        reply(by_number(9), "carol", vec![(note("lost"), false)]),
    ];
    assert!(matches!(
        store
            .take_email_reply("<m3@x>", missing, until, at(T0 + 3 * MIN))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(ticket(&store, 1).await.last_seq, seqs.0);
    // Nothing of a rolled-back message was remembered: fixed, it is taken.
    let fixed = vec![reply(by_number(1), "carol", vec![(note("first"), false)])];
    assert_eq!(
        store
            .take_email_reply("<m2@x>", fixed, until, at(T0 + 4 * MIN))
            .await
            .unwrap(),
        1
    );

    // After `until` the message is forgotten: a replay then counts again.
    let late = vec![reply(by_number(1), "alice", vec![(note("again"), false)])];
    assert_eq!(
        store
            .take_email_reply("<m1@x>", late.clone(), until, at(T0 + 59 * MIN))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .take_email_reply("<m1@x>", late, at(T0 + 120 * MIN), at(T0 + 61 * MIN))
            .await
            .unwrap(),
        1
    );
}
