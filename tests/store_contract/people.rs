//! What members set: presence reports per source, unsubscribing from email, and silences (created,
//! listed, in force over a span, expired, bounded in number, and what a silence does to a firing).

use std::sync::Arc;

use tocsin::domain::presence::{Presence, PresenceState};
use tocsin::domain::silence::{Matcher, SilenceDraft, MAX_SILENCES};
use tocsin::domain::timeline::EntryKind;
use tocsin::store::{Store, StoreError};

use super::support::*;

fn report(state: PresenceState, t: i64, source: &str) -> Presence {
    Presence {
        state,
        since: at(t),
        source: source.into(),
    }
}

/// Each source's latest report per member is kept, replacing that source's earlier one.
pub async fn presence_per_source(store: Arc<dyn Store>) {
    assert!(store.presence().await.unwrap().is_empty());
    store
        .set_presence("alice", report(PresenceState::Online, T0, "web"))
        .await
        .unwrap();
    store
        .set_presence("alice", report(PresenceState::Away, T0 + MIN, "slack"))
        .await
        .unwrap();
    store
        .set_presence("bob", report(PresenceState::Dnd, T0, "api"))
        .await
        .unwrap();
    store
        .set_presence("alice", report(PresenceState::Offline, T0 + 2 * MIN, "web"))
        .await
        .unwrap();
    let mut all = store.presence().await.unwrap();
    all.sort_by(|a, b| (&a.0, &a.1.source).cmp(&(&b.0, &b.1.source)));
    assert_eq!(
        all,
        [
            (
                "alice".to_string(),
                report(PresenceState::Away, T0 + MIN, "slack")
            ),
            (
                "alice".to_string(),
                report(PresenceState::Offline, T0 + 2 * MIN, "web")
            ),
            ("bob".to_string(), report(PresenceState::Dnd, T0, "api")),
        ]
    );
}

/// Unsubscribing says whether it changed anything, shows in the set and the mailbox, and stops new
/// emails to that member (not to others).
pub async fn unsubscribes(store: Arc<dyn Store>) {
    assert!(store.unsubscribed().await.unwrap().is_empty());
    assert!(!store
        .set_unsubscribed("alice", false, at(T0))
        .await
        .unwrap());
    assert!(store.set_unsubscribed("alice", true, at(T0)).await.unwrap());
    assert!(!store
        .set_unsubscribed("alice", true, at(T0 + MIN))
        .await
        .unwrap());
    assert_eq!(
        store
            .unsubscribed()
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["alice"]
    );
    assert!(store.mailbox("alice").await.unwrap().unsubscribed);
    assert!(!store.mailbox("bob").await.unwrap().unsubscribed);

    route(&store);
    ingest(&store, &[critical("c", T0 + MIN)]).await;
    let emails = store.emails_due(at(T0 + 60 * MIN), 10).await.unwrap();
    assert_eq!(
        emails.iter().map(|e| e.member.as_str()).collect::<Vec<_>>(),
        ["bob"]
    );

    assert!(store
        .set_unsubscribed("alice", false, at(T0 + 2 * MIN))
        .await
        .unwrap());
    assert!(!store
        .set_unsubscribed("alice", false, at(T0 + 2 * MIN))
        .await
        .unwrap());
    assert!(store.unsubscribed().await.unwrap().is_empty());
    assert!(!store.mailbox("alice").await.unwrap().unsubscribed);
    ingest(&store, &[critical("d", T0 + 3 * MIN)]).await;
    let emails = store.emails_due(at(T0 + 60 * MIN), 10).await.unwrap();
    assert_eq!(emails.iter().filter(|e| e.member == "alice").count(), 1);
}

fn draft(matcher: &str, start: i64, end: i64) -> SilenceDraft {
    SilenceDraft {
        matchers: vec![Matcher::parse(matcher).unwrap()],
        starts_at: at(start),
        ends_at: at(end),
        comment: "maintenance".into(),
        author: "alice".into(),
    }
}

/// Silences are stored as drafted, listed newest first (all, or those in force at a moment, the end
/// excluded), found over a span, and ended early by a member; ending an ended one changes nothing.
pub async fn silences_lifecycle(store: Arc<dyn Store>) {
    let now = T0;
    let a = store
        .create_silence(draft("alertname=a", T0, T0 + 10 * MIN), at(now))
        .await
        .unwrap();
    let b = store
        .create_silence(draft("alertname=b", T0 + 5 * MIN, T0 + 20 * MIN), at(now))
        .await
        .unwrap();
    assert!(a.id < b.id);
    assert_eq!(
        (
            a.starts_at,
            a.ends_at,
            a.comment.as_str(),
            a.author.as_str(),
            a.created_at,
            a.expired_by.clone()
        ),
        (
            at(T0),
            at(T0 + 10 * MIN),
            "maintenance",
            "alice",
            at(now),
            None
        )
    );
    assert_eq!(a.matchers, vec![Matcher::parse("alertname=a").unwrap()]);
    let ids = |v: Vec<tocsin::domain::silence::Silence>| v.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(store.silences(None).await.unwrap()), [b.id, a.id]);
    assert_eq!(store.silences(None).await.unwrap()[1], a);
    assert_eq!(
        ids(store.silences(Some(at(T0 + MIN))).await.unwrap()),
        [a.id]
    );
    assert_eq!(
        ids(store.silences(Some(at(T0 + 6 * MIN))).await.unwrap()),
        [b.id, a.id]
    );
    assert_eq!(
        ids(store.silences(Some(at(T0 + 10 * MIN))).await.unwrap()),
        [b.id],
        "the end is excluded"
    );
    assert_eq!(
        ids(store
            .silences_between(at(T0 - 5 * MIN), at(T0 - MIN))
            .await
            .unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(store
            .silences_between(at(T0 + 9 * MIN), at(T0 + 30 * MIN))
            .await
            .unwrap()),
        [a.id, b.id]
    );

    let ended = store
        .expire_silence(b.id, "bob", at(T0 + 7 * MIN))
        .await
        .unwrap();
    assert_eq!(
        (ended.ends_at, ended.expired_by.as_deref()),
        (at(T0 + 7 * MIN), Some("bob"))
    );
    assert_eq!(
        ids(store.silences(Some(at(T0 + 8 * MIN))).await.unwrap()),
        [a.id]
    );
    assert_eq!(
        store
            .expire_silence(b.id, "carol", at(T0 + 9 * MIN))
            .await
            .unwrap(),
        ended
    );
    // One that has not started yet ends before it ever applied.
    let c = store
        .create_silence(draft("alertname=c", T0 + 60 * MIN, T0 + 90 * MIN), at(now))
        .await
        .unwrap();
    let c = store
        .expire_silence(c.id, "alice", at(T0 + 8 * MIN))
        .await
        .unwrap();
    assert!(
        c.starts_at <= c.ends_at && c.ends_at == at(T0 + 8 * MIN),
        "{c:?}"
    );
    assert!(!ids(store
        .silences_between(at(T0 + 8 * MIN), at(T0 + 200 * MIN))
        .await
        .unwrap())
    .contains(&c.id));
    assert!(matches!(
        store.expire_silence(c.id + 100, "alice", at(T0)).await,
        Err(StoreError::NotFound)
    ));
}

/// At most `MAX_SILENCES` in force or upcoming: one more is `Full`; ended ones do not count.
pub async fn silences_full(store: Arc<dyn Store>) {
    let mut last = None;
    for i in 0..MAX_SILENCES {
        last = Some(
            store
                .create_silence(draft(&format!("alertname=s{i}"), T0, T0 + 60 * MIN), at(T0))
                .await
                .unwrap(),
        );
    }
    assert!(matches!(
        store
            .create_silence(draft("alertname=more", T0, T0 + 60 * MIN), at(T0))
            .await,
        Err(StoreError::Full(_))
    ));
    store
        .expire_silence(last.unwrap().id, "alice", at(T0 + MIN))
        .await
        .unwrap();
    store
        .create_silence(
            draft("alertname=more", T0 + MIN, T0 + 60 * MIN),
            at(T0 + MIN),
        )
        .await
        .unwrap();
    assert_eq!(store.silences(None).await.unwrap().len(), MAX_SILENCES + 1);
}

/// A silenced firing gets a `silenced` entry and sends nothing to chat or email; its resolution stays
/// quiet too. A ticket whose firing a room was told of still tells that room it resolved, silence or
/// not. After the silence, a new firing speaks again.
pub async fn silenced_firing(store: Arc<dyn Store>) {
    route(&store);
    ingest(&store, &[critical("told", T0)]).await;
    let told = store.outbox_pending("ops", at(T0), 10).await.unwrap();
    assert_eq!(told.len(), 1);
    let s = store
        .create_silence(
            SilenceDraft {
                matchers: vec![Matcher::parse("severity=critical").unwrap()],
                ..draft("x=y", T0 + MIN, T0 + 30 * MIN)
            },
            at(T0 + MIN),
        )
        .await
        .unwrap();
    ingest(&store, &[critical("quiet", T0 + 2 * MIN)]).await;
    let silenced = entries_of(&store, 2, EntryKind::Silenced).await;
    assert_eq!(silenced.len(), 1);
    assert_eq!(
        (
            silenced[0].data["silence"].as_i64(),
            silenced[0].actor.as_str()
        ),
        (Some(s.id), "member:alice")
    );
    assert!(entries_of(&store, 2, EntryKind::EmailScheduled)
        .await
        .is_empty());
    assert_eq!(
        store
            .outbox_pending("ops", at(T0 + 2 * MIN), 10)
            .await
            .unwrap(),
        told,
        "nothing new queued"
    );
    let emails = store.emails_due(at(T0 + 60 * MIN), 10).await.unwrap();
    assert!(emails.iter().all(|e| e.ticket.number == 1), "{emails:?}");

    ingest(
        &store,
        &[
            resolved("quiet", T0 + 2 * MIN, T0 + 3 * MIN),
            resolved("told", T0, T0 + 3 * MIN),
        ],
    )
    .await;
    let after = store
        .outbox_pending("ops", at(T0 + 3 * MIN), 10)
        .await
        .unwrap();
    let tickets: Vec<_> = after.iter().map(|d| d.ticket_id.clone().unwrap()).collect();
    let told_id = ticket(&store, 1).await.id;
    assert!(
        after.len() > told.len(),
        "the resolution of a firing ops was told of goes out"
    );
    assert!(
        tickets.iter().all(|t| *t == told_id),
        "nothing about the silenced ticket"
    );

    // The silence found by the processor (`JournalEntry::silences`) is the one named.
    let applied = ingest_entry(&store, critical("picked", T0 + 4 * MIN), |mut e| {
        e.silences = Some(vec![s.clone()]);
        e
    })
    .await;
    assert_eq!(applied.outcome, "opened");
    assert_eq!(entries_of(&store, 3, EntryKind::Silenced).await.len(), 1);

    // After it ends, a new firing is news again.
    store
        .expire_silence(s.id, "bob", at(T0 + 5 * MIN))
        .await
        .unwrap();
    let mut back = critical("quiet", T0 + 6 * MIN);
    back.starts_at = Some(at(T0 + 6 * MIN));
    assert_eq!(ingest(&store, &[back]).await[0].outcome, "reopened");
    assert_eq!(entries_of(&store, 2, EntryKind::Silenced).await.len(), 1);
    let quiet_id = ticket(&store, 2).await.id;
    let now = store
        .outbox_pending("ops", at(T0 + 6 * MIN), 10)
        .await
        .unwrap();
    assert!(now
        .iter()
        .any(|d| d.ticket_id.as_deref() == Some(quiet_id.as_str())));
}
