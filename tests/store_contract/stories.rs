//! The two stories the suite grew from: accept, apply once, resend, act, expire, list and count; then
//! what hardening added (dead journal, health, silences over a span, session generations, replies by
//! email taken once, retention). Kept whole, as every backend must still tell them.

use std::sync::Arc;
use std::time::Duration;

use tocsin::domain::alert::Status;
use tocsin::domain::silence::{Matcher, SilenceDraft};
use tocsin::domain::ticket::{Action, Actor, Policy, TicketState};
use tocsin::domain::time::Timestamp;
use tocsin::domain::timeline::{EntryKind, Visibility};
use tocsin::store::{
    EmailReply, FeedQuery, ReplyAction, Store, StoreError, TicketFilter, TicketRef,
};

use super::support::{alert, MIN, T0};

/// The story: accept, apply exactly once, resend, act, expire, list, count.
pub async fn story(store: Arc<dyn Store>) {
    let policy = Policy {
        reopen_window: Duration::from_secs(3600),
    };
    store.ping().await.unwrap();
    assert_eq!(store.stats().await.unwrap().journal_backlog, 0);

    // Accepted alerts wait in the journal, in order.
    let ids = store
        .append_journal(&[
            alert("a", Status::Firing, T0, T0, Some(T0 + 4 * MIN)),
            alert("b", Status::Firing, T0, T0, None),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    let more = store
        .append_journal(&[alert("a", Status::Firing, T0, T0 + MIN, Some(T0 + 5 * MIN))])
        .await
        .unwrap();
    assert!(more[0] > ids[1]);
    let pending = store.pending_journal(10).await.unwrap().entries;
    assert_eq!(
        pending.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[0], ids[1], more[0]]
    );
    assert_eq!(store.stats().await.unwrap().journal_backlog, 3);

    // Applying takes effect once: applying the same entries again (a crashed worker's retry) does nothing.
    let applied = store
        .apply_journal(pending.clone().into(), &policy)
        .await
        .unwrap();
    assert_eq!(
        applied.iter().map(|a| a.outcome).collect::<Vec<_>>(),
        ["opened", "opened", "resent"]
    );
    assert!(store
        .apply_journal(pending.into(), &policy)
        .await
        .unwrap()
        .is_empty());
    assert!(store.pending_journal(10).await.unwrap().is_empty());

    let a = store.get_ticket(&TicketRef::Number(1)).await.unwrap();
    assert_eq!(
        (a.fingerprint.as_str(), a.resend_count, a.last_seq),
        ("a", 1, 1)
    );
    assert_eq!(a.ends_at, Some(Timestamp::from_millis(T0 + 5 * MIN)));
    assert_eq!(
        store
            .get_ticket(&TicketRef::Id(a.id.clone()))
            .await
            .unwrap()
            .number,
        1
    );
    assert!(matches!(
        store.get_ticket(&TicketRef::Number(99)).await,
        Err(StoreError::NotFound)
    ));

    // Member actions append entries with the next seq, and refuse what the state machine refuses.
    let bob = Actor::new("bob", "web");
    let feed_before = *store.feed_watch().borrow();
    let (t, e) = store
        .act(
            &TicketRef::Number(2),
            Action::Ack,
            &bob,
            Timestamp::from_millis(T0 + MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        (t.state, e.seq, e.kind),
        (TicketState::Acked, 2, EntryKind::Acked)
    );
    let err = store
        .act(
            &TicketRef::Number(2),
            Action::Ack,
            &bob,
            Timestamp::from_millis(T0 + MIN),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)));
    let note = Action::Note {
        text: "on it".into(),
        visibility: Visibility::Public,
    };
    let (_, e) = store
        .act(
            &TicketRef::Number(2),
            note,
            &bob,
            Timestamp::from_millis(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(e.seq, 3);
    let (t, e) = store
        .act(
            &TicketRef::Number(2),
            Action::Assign {
                member: Some("alice".into()),
            },
            &bob,
            Timestamp::from_millis(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        (t.assignee.as_deref(), e.kind, e.data["via"].as_str()),
        (Some("alice"), EntryKind::Assigned, Some("web"))
    );
    let (_, secret) = store
        .act(
            &TicketRef::Number(2),
            Action::Note {
                text: "the password is in the vault".into(),
                visibility: Visibility::Internal,
            },
            &bob,
            Timestamp::from_millis(T0 + 2 * MIN),
        )
        .await
        .unwrap();

    // The feed has every entry in commit order across tickets, resumable from any id, filterable by
    // ticket and visibility; its watch moved on with the commits.
    let all = store
        .feed(&FeedQuery {
            limit: 100,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(*store.feed_watch().borrow(), all.last().unwrap().id);
    assert!(feed_before < all.last().unwrap().id);
    let after = store
        .feed(&FeedQuery {
            after: all[3].id,
            ticket_id: Some(t.id.clone()),
            limit: 100,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        after
            .iter()
            .map(|f| (f.ticket.as_str(), f.entry.seq))
            .collect::<Vec<_>>(),
        [("T-2", 4), ("T-2", 5)]
    );
    let public = store
        .feed(&FeedQuery {
            visible: vec![Visibility::Public, Visibility::System],
            limit: 100,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    assert!(public
        .iter()
        .all(|f| f.entry.seq != secret.seq || f.ticket != "T-2"));
    assert_eq!(public.len(), 5);

    // Full-text search finds titles and timeline texts, as word prefixes, and not what the reader may
    // not see; operators typed into it mean nothing.
    let search = |text: &str, visible: Vec<Visibility>| {
        let store = Arc::clone(&store);
        let text = text.to_string();
        async move {
            store
                .list_tickets(&TicketFilter {
                    limit: 10,
                    text: Some(text),
                    visible,
                    ..TicketFilter::default()
                })
                .await
                .unwrap()
                .iter()
                .map(|t| t.number)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("alert b", vec![]).await, [2]);
    assert_eq!(search("vau", vec![]).await, [2]);
    assert!(
        search("vault", vec![Visibility::Public, Visibility::System])
            .await
            .is_empty()
    );
    assert!(search("\"on\" OR NEAR(", vec![]).await.is_empty());
    assert_eq!(search("on it", vec![]).await, [2]);
    assert!(matches!(
        store
            .act(
                &TicketRef::Number(7),
                Action::Ack,
                &bob,
                Timestamp::from_millis(T0)
            )
            .await,
        Err(StoreError::NotFound)
    ));

    // Leases: only tickets whose lease ended by `now` expire, once.
    assert!(store
        .expire_leases(Timestamp::from_millis(T0 + 4 * MIN), 10)
        .await
        .unwrap()
        .is_empty());
    let expired = store
        .expire_leases(Timestamp::from_millis(T0 + 6 * MIN), 10)
        .await
        .unwrap();
    assert_eq!(expired, std::slice::from_ref(&a.id));
    assert!(store
        .expire_leases(Timestamp::from_millis(T0 + 7 * MIN), 10)
        .await
        .unwrap()
        .is_empty());

    // Timelines page by seq.
    let tl = store.timeline(&t.id, 0, 100).await.unwrap();
    assert_eq!(
        tl.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(store.timeline(&t.id, 1, 1).await.unwrap()[0].seq, 2);
    let tl = store.timeline(&a.id, 0, 100).await.unwrap();
    assert_eq!(tl.last().unwrap().kind, EntryKind::Resolved);

    // After the reopen window, the same key opens a new ticket; the old one stays, linked.
    let late = T0 + 3 * 60 * MIN;
    store
        .append_journal(&[alert("a", Status::Firing, late, late, Some(late + 4 * MIN))])
        .await
        .unwrap();
    let pending = store.pending_journal(10).await.unwrap().entries;
    let applied = store.apply_journal(pending.into(), &policy).await.unwrap();
    assert_eq!(applied[0].outcome, "opened");
    let newer = store.get_ticket(&TicketRef::Number(3)).await.unwrap();
    assert_eq!(newer.previous_id.as_deref(), Some(a.id.as_str()));

    // Lists: newest first, filtered, paged by number.
    let all = store
        .list_tickets(&TicketFilter {
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.iter().map(|t| t.number).collect::<Vec<_>>(), [3, 2, 1]);
    let page = store
        .list_tickets(&TicketFilter {
            limit: 10,
            before_number: Some(3),
            states: vec![TicketState::Resolved, TicketState::Acked],
            source: Some("prom".into()),
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|t| t.number).collect::<Vec<_>>(), [2, 1]);
    let none = store
        .list_tickets(&TicketFilter {
            limit: 10,
            source: Some("other".into()),
            ..TicketFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    let stats = store.stats().await.unwrap();
    assert_eq!(
        (
            stats.open,
            stats.acked,
            stats.resolved,
            stats.journal_backlog
        ),
        (1, 1, 1, 0)
    );
}

/// The operations hardening added: the dead journal, health, retention, silences over a span, session
/// generations and replies by email taken once.
pub async fn hardening_story(store: Arc<dyn Store>) {
    let policy = Policy {
        reopen_window: Duration::from_secs(3600),
    };
    let health = store.health().await.unwrap();
    assert_eq!(
        (health.oldest_pending, health.dead_journal, health.problem),
        (None, 0, None)
    );

    // A row moved aside: out of the journal, kept with why, a notice about it in its place.
    let ids = store
        .append_journal(&[
            alert("x", Status::Firing, T0, T0, None),
            alert("y", Status::Firing, T0, T0 + MIN, None),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.health().await.unwrap().oldest_pending,
        Some(Timestamp::from_millis(T0))
    );
    assert!(store
        .bury_journal(ids[0], "broken", Timestamp::from_millis(T0 + MIN))
        .await
        .unwrap());
    assert!(!store
        .bury_journal(ids[0], "again", Timestamp::from_millis(T0 + MIN))
        .await
        .unwrap());
    let dead = store.dead_journal(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].journal_id, dead[0].reason.as_str()),
        (ids[0], "broken")
    );
    assert_eq!(store.health().await.unwrap().dead_journal, 1);
    let pending = store.pending_journal(10).await.unwrap();
    assert!(pending.unreadable.is_empty());
    let sources: Vec<&str> = pending
        .entries
        .iter()
        .map(|e| e.alert.source.as_str())
        .collect();
    assert_eq!(
        sources,
        ["prom", "tocsin"],
        "the row behind it, then the notice"
    );

    // Retried: back at the end of the journal as it was; deleting what is gone is NotFound.
    let back = store
        .retry_dead_journal(dead[0].id, "alice", Timestamp::from_millis(T0 + 2 * MIN))
        .await
        .unwrap();
    assert!(back > ids[1]);
    assert!(store.dead_journal(10).await.unwrap().is_empty());
    assert!(matches!(
        store
            .delete_dead_journal(dead[0].id, "alice", Timestamp::from_millis(T0))
            .await,
        Err(StoreError::NotFound)
    ));
    let all = store.pending_journal(10).await.unwrap().entries;
    store.apply_journal(all.into(), &policy).await.unwrap();
    assert_eq!(store.health().await.unwrap().oldest_pending, None);

    // Silences over a span: in force at some moment of it.
    let draft = |start: i64, end: i64| SilenceDraft {
        matchers: vec![Matcher::parse("alertname=x").unwrap()],
        starts_at: Timestamp::from_millis(start),
        ends_at: Timestamp::from_millis(end),
        comment: "maintenance".into(),
        author: "alice".into(),
    };
    let early = store
        .create_silence(draft(T0, T0 + 10 * MIN), Timestamp::from_millis(T0))
        .await
        .unwrap();
    let late = store
        .create_silence(
            draft(T0 + 20 * MIN, T0 + 30 * MIN),
            Timestamp::from_millis(T0),
        )
        .await
        .unwrap();
    let between = |a: i64, b: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .silences_between(Timestamp::from_millis(a), Timestamp::from_millis(b))
                .await
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(between(T0 + 5 * MIN, T0 + 5 * MIN).await, [early.id]);
    assert_eq!(
        between(T0 + 10 * MIN, T0 + 19 * MIN).await,
        Vec::<i64>::new()
    );
    assert_eq!(between(T0, T0 + 25 * MIN).await, [early.id, late.id]);

    // Session generations: 0 until the first sign-out, then counted up.
    assert_eq!(store.session_generation("alice").await.unwrap(), 0);
    let next = store.end_sessions("alice").await.unwrap();
    assert!(next > 0);
    assert_eq!(store.session_generation("alice").await.unwrap(), next);

    // A reply by email is taken once, whatever number of times it comes.
    let x = store
        .list_tickets(&TicketFilter {
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.fingerprint == "x")
        .unwrap();
    let reply = || {
        vec![EmailReply {
            ticket: TicketRef::Id(x.id.clone()),
            actor: Actor::new("alice", "email"),
            actions: vec![ReplyAction {
                action: Action::Note {
                    text: "on it".into(),
                    visibility: Visibility::Public,
                },
                optional: false,
            }],
        }]
    };
    let until = Timestamp::from_millis(T0 + 60 * MIN);
    let now = Timestamp::from_millis(T0 + 3 * MIN);
    assert_eq!(
        store
            .take_email_reply("<m1@x>", reply(), until, now)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .take_email_reply("<m1@x>", reply(), until, now)
            .await
            .unwrap(),
        0
    );

    // Retention: resolved tickets past the cutoff go; numbers are not given out again.
    store
        .act(
            &TicketRef::Id(x.id.clone()),
            Action::Resolve,
            &Actor::new("alice", "api"),
            now,
        )
        .await
        .unwrap();
    let highest = store
        .list_tickets(&TicketFilter {
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap()[0]
        .number;
    // The dead-journal notice's ticket resolved at T0 + 2 min (the retry), x at T0 + 3 min.
    assert_eq!(
        store
            .purge_tickets(Timestamp::from_millis(T0 + 2 * MIN), 10)
            .await
            .unwrap(),
        0,
        "resolved at, not before, the cutoff"
    );
    assert_eq!(
        store
            .purge_tickets(Timestamp::from_millis(T0 + 4 * MIN), 10)
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store.get_ticket(&TicketRef::Id(x.id.clone())).await,
        Err(StoreError::NotFound)
    ));
    store
        .append_journal(&[alert("z", Status::Firing, T0, T0 + 5 * MIN, None)])
        .await
        .unwrap();
    let all = store.pending_journal(10).await.unwrap().entries;
    store.apply_journal(all.into(), &policy).await.unwrap();
    let newest = store
        .list_tickets(&TicketFilter {
            limit: 10,
            ..TicketFilter::default()
        })
        .await
        .unwrap()[0]
        .number;
    assert!(newest > highest, "{newest} after {highest}");
}
