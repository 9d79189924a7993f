//! Emails to members mentioned while not online: scheduled with the mention (not when online), due
//! after the delay, deferred and rechecked later, sent alone (threaded) or batched, cancelled,
//! failed then given up; a result for an email already settled changes nothing.

use std::sync::Arc;

use tocsin::domain::mail::MailReason;
use tocsin::domain::presence::{Presence, PresenceState};
use tocsin::domain::ticket::TicketState;
use tocsin::domain::timeline::EntryKind;
use tocsin::store::{EmailResult, EmailThread, PendingEmail, Store};

use super::support::*;

async fn due(store: &Arc<dyn Store>, now: i64) -> Vec<PendingEmail> {
    store.emails_due(at(now), 100).await.unwrap()
}

fn who(emails: &[PendingEmail]) -> Vec<(&str, i64)> {
    emails
        .iter()
        .map(|e| (e.member.as_str(), e.ticket.number))
        .collect()
}

async fn complete(store: &Arc<dyn Store>, result: EmailResult, now: i64) {
    store.emails_complete(vec![result], at(now)).await.unwrap();
}

/// A critical ticket mentions alice and bob: both offline, both get an email due after the delay,
/// with a timeline entry each; members come back by name, then by due time, at most `limit`.
pub async fn email_scheduled_when_offline(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[critical("c", T0)]).await;
    let scheduled = entries_of(&store, 1, EntryKind::EmailScheduled).await;
    assert_eq!(
        scheduled
            .iter()
            .map(|e| e.data["member"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert!(due(&store, T0 + EMAIL_DELAY - 1).await.is_empty());
    ingest(&store, &[critical("d", T0 + MIN)]).await;
    let emails = due(&store, T0 + MIN + EMAIL_DELAY).await;
    assert_eq!(
        who(&emails),
        [("alice", 1), ("alice", 2), ("bob", 1), ("bob", 2)]
    );
    let first = &emails[0];
    assert_eq!(
        (
            first.reason.clone(),
            first.created_at,
            first.attempts,
            first.ticket.state
        ),
        (MailReason::Member, at(T0), 0, TicketState::Open)
    );
    assert_eq!(first.ticket, ticket(&store, 1).await);
    assert_eq!(
        store
            .emails_due(at(T0 + MIN + EMAIL_DELAY), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // Carol has no address; a warning mentions nobody.
    ingest(&store, &[firing("w", T0 + 2 * MIN)]).await;
    assert!(entries_of(&store, 3, EntryKind::EmailScheduled)
        .await
        .is_empty());
    assert_eq!(due(&store, T0 + 60 * MIN).await.len(), 4);
}

/// A member online anywhere when mentioned gets no email; one away does.
pub async fn email_not_scheduled_when_online(store: Arc<dyn Store>) {
    route(&store);
    let report = |state, source: &str| Presence {
        state,
        since: at(T0 - MIN),
        source: source.into(),
    };
    store
        .set_presence("alice", report(PresenceState::Away, "web"))
        .await
        .unwrap();
    store
        .set_presence("alice", report(PresenceState::Online, "slack"))
        .await
        .unwrap();
    store
        .set_presence("bob", report(PresenceState::Away, "web"))
        .await
        .unwrap();
    ingest(&store, &[critical("c", T0)]).await;
    assert_eq!(who(&due(&store, T0 + EMAIL_DELAY).await), [("bob", 1)]);
    let scheduled = entries_of(&store, 1, EntryKind::EmailScheduled).await;
    assert_eq!(scheduled.len(), 1);
    assert_eq!(scheduled[0].data["presence"], "away");
}

/// Deferred: not due until then, no entry. Sent: out of the queue, the mailbox's last send, the
/// thread's root; a later email about the same ticket keeps the root and moves `last`.
pub async fn email_deferred_then_sent(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[critical("c", T0)]).await;
    let c = ticket(&store, 1).await;
    let alice = due(&store, T0 + EMAIL_DELAY).await[0].id;
    let seq = c.last_seq;
    complete(
        &store,
        EmailResult::Deferred {
            ids: vec![alice],
            until: at(T0 + 10 * MIN),
        },
        T0 + EMAIL_DELAY,
    )
    .await;
    assert_eq!(
        ticket(&store, 1).await.last_seq,
        seq,
        "a deferral writes no entry"
    );
    assert_eq!(who(&due(&store, T0 + 10 * MIN - 1).await), [("bob", 1)]);
    assert_eq!(
        who(&due(&store, T0 + 10 * MIN).await),
        [("alice", 1), ("bob", 1)]
    );
    assert_eq!(store.mailbox("alice").await.unwrap().last_sent, None);
    assert_eq!(store.email_thread("alice", &c.id).await.unwrap(), None);

    complete(
        &store,
        EmailResult::Sent {
            ids: vec![alice],
            message_id: "m1@tocsin".into(),
        },
        T0 + 10 * MIN,
    )
    .await;
    assert_eq!(who(&due(&store, T0 + 60 * MIN).await), [("bob", 1)]);
    assert_eq!(
        store.mailbox("alice").await.unwrap().last_sent,
        Some(at(T0 + 10 * MIN))
    );
    assert_eq!(store.mailbox("bob").await.unwrap().last_sent, None);
    let thread = EmailThread {
        root: "m1@tocsin".into(),
        last: "m1@tocsin".into(),
    };
    assert_eq!(
        store.email_thread("alice", &c.id).await.unwrap(),
        Some(thread)
    );
    assert_eq!(store.email_thread("bob", &c.id).await.unwrap(), None);
    let emailed = entries_of(&store, 1, EntryKind::Emailed).await;
    assert_eq!(emailed.len(), 1);
    assert_eq!(
        (
            emailed[0].data["member"].as_str(),
            emailed[0].data["message_id"].as_str()
        ),
        (Some("alice"), Some("m1@tocsin"))
    );

    // Resolved and reopened: a new mention, a new email, the same thread.
    ingest(&store, &[resolved("c", T0, T0 + 11 * MIN)]).await;
    ingest(
        &store,
        &[tocsin::domain::alert::Alert {
            starts_at: Some(at(T0 + 12 * MIN)),
            ..critical("c", T0 + 12 * MIN)
        }],
    )
    .await;
    let again: Vec<_> = due(&store, T0 + 12 * MIN + EMAIL_DELAY)
        .await
        .into_iter()
        .filter(|e| e.member == "alice")
        .collect();
    assert_eq!(again.len(), 1);
    complete(
        &store,
        EmailResult::Sent {
            ids: vec![again[0].id],
            message_id: "m2@tocsin".into(),
        },
        T0 + 15 * MIN,
    )
    .await;
    assert_eq!(
        store.email_thread("alice", &c.id).await.unwrap(),
        Some(EmailThread {
            root: "m1@tocsin".into(),
            last: "m2@tocsin".into()
        })
    );
    assert_eq!(
        store.mailbox("alice").await.unwrap().last_sent,
        Some(at(T0 + 15 * MIN))
    );
}

/// One email covering several tickets settles them all, with an entry on each saying it was a
/// digest; a digest starts no ticket's thread.
pub async fn email_batched(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[critical("c", T0), critical("d", T0)]).await;
    let ids: Vec<i64> = due(&store, T0 + EMAIL_DELAY)
        .await
        .iter()
        .filter(|e| e.member == "alice")
        .map(|e| e.id)
        .collect();
    assert_eq!(ids.len(), 2);
    complete(
        &store,
        EmailResult::Sent {
            ids,
            message_id: "digest@tocsin".into(),
        },
        T0 + 3 * MIN,
    )
    .await;
    assert_eq!(
        who(&due(&store, T0 + 60 * MIN).await),
        [("bob", 1), ("bob", 2)]
    );
    for n in [1, 2] {
        let emailed = entries_of(&store, n, EntryKind::Emailed).await;
        assert_eq!(emailed.len(), 1, "T-{n}");
        assert_eq!(emailed[0].data["tickets"].as_i64(), Some(2));
        let id = ticket(&store, n).await.id;
        assert_eq!(store.email_thread("alice", &id).await.unwrap(), None);
    }
    assert_eq!(
        store.mailbox("alice").await.unwrap().last_sent,
        Some(at(T0 + 3 * MIN))
    );
}

/// Cancelled: never sent, and the timeline says why. Failed: tried again later, counted. Given up:
/// gone for good. Results for emails already settled change nothing.
pub async fn email_cancelled_failed_gave_up(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[critical("c", T0)]).await;
    let emails = due(&store, T0 + EMAIL_DELAY).await;
    let (alice, bob) = (emails[0].id, emails[1].id);
    complete(
        &store,
        EmailResult::Cancelled {
            id: alice,
            reason: "alice came online".into(),
        },
        T0 + 3 * MIN,
    )
    .await;
    assert_eq!(who(&due(&store, T0 + 60 * MIN).await), [("bob", 1)]);
    let cancelled = entries_of(&store, 1, EntryKind::EmailCancelled).await;
    assert_eq!(cancelled.len(), 1);
    assert!(
        cancelled[0].text.contains("alice came online"),
        "{}",
        cancelled[0].text
    );

    complete(
        &store,
        EmailResult::Failed {
            ids: vec![bob],
            error: "421 try later".into(),
            next_at: at(T0 + 10 * MIN),
        },
        T0 + 3 * MIN,
    )
    .await;
    assert!(due(&store, T0 + 10 * MIN - 1).await.is_empty());
    let retry = due(&store, T0 + 10 * MIN).await;
    assert_eq!((retry[0].id, retry[0].attempts), (bob, 1));
    let failed = entries_of(&store, 1, EntryKind::EmailFailed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].data["error"], "421 try later");

    complete(
        &store,
        EmailResult::GaveUp {
            ids: vec![bob],
            error: "550 no such user".into(),
        },
        T0 + 10 * MIN,
    )
    .await;
    assert!(due(&store, T0 + 600 * MIN).await.is_empty());
    let failed = entries_of(&store, 1, EntryKind::EmailFailed).await;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1].data["final"], true);
    assert_eq!(store.mailbox("bob").await.unwrap().last_sent, None);

    // Settled emails: any later result is ignored (a second worker, a replay after a crash).
    let settled = timeline(&store, 1).await;
    store
        .emails_complete(
            vec![
                EmailResult::Sent {
                    ids: vec![alice, bob],
                    message_id: "late@tocsin".into(),
                },
                EmailResult::Cancelled {
                    id: bob,
                    reason: "late".into(),
                },
                EmailResult::Failed {
                    ids: vec![alice],
                    error: "late".into(),
                    next_at: at(T0),
                },
                EmailResult::Deferred {
                    ids: vec![bob],
                    until: at(T0),
                },
                EmailResult::GaveUp {
                    ids: vec![alice],
                    error: "late".into(),
                },
            ],
            at(T0 + 20 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(timeline(&store, 1).await, settled);
    assert!(due(&store, T0 + 600 * MIN).await.is_empty());
    assert_eq!(store.mailbox("alice").await.unwrap().last_sent, None);
    assert_eq!(
        store
            .email_thread("alice", &ticket(&store, 1).await.id)
            .await
            .unwrap(),
        None
    );
}
