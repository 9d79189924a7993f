//! The journal and applying it: append order and ids, pending limits, apply exactly once, what each
//! alert does to its ticket (resend, refire, acknowledge, resolve, reopen within the window, a new
//! ticket after it) and lease expiry.

use std::sync::Arc;

use tocsin::domain::alert::Status;
use tocsin::domain::ticket::{Resolution, TicketState};
use tocsin::domain::timeline::EntryKind;
use tocsin::store::Store;

use super::support::*;

/// Appends come back in order with increasing ids, across calls; `pending_journal` gives the oldest
/// first, at most `limit`, as they were appended; stats and health see them.
pub async fn journal_appends_in_order(store: Arc<dyn Store>) {
    assert!(store.append_journal(&[]).await.unwrap().is_empty());
    assert!(store.pending_journal(10).await.unwrap().is_empty());
    let first = store
        .append_journal(&[firing("a", T0), firing("b", T0 + MIN)])
        .await
        .unwrap();
    let second = store
        .append_journal(&[firing("c", T0 + 2 * MIN)])
        .await
        .unwrap();
    assert_eq!((first.len(), second.len()), (2, 1));
    assert!(
        first[0] < first[1] && first[1] < second[0],
        "{first:?} {second:?}"
    );

    let two = store.pending_journal(2).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_eq!(two.entries.iter().map(|e| e.id).collect::<Vec<_>>(), first);
    assert_eq!(two.entries[0].alert, firing("a", T0));
    assert_eq!(two.entries[1].alert, firing("b", T0 + MIN));
    assert!(two
        .entries
        .iter()
        .all(|e| e.failures.is_empty() && e.dropped.is_none() && e.silences.is_none()));
    let all = store.pending_journal(10).await.unwrap();
    assert_eq!(all.entries.len(), 3);
    assert_eq!(all.entries[2].alert, firing("c", T0 + 2 * MIN));
    // Read on from a cursor: only rows after it, oldest first, at most `limit`.
    let after = |b: tocsin::store::JournalBatch| b.entries.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        after(store.pending_journal_after(first[0], 10).await.unwrap()),
        [first[1], second[0]]
    );
    assert_eq!(
        after(store.pending_journal_after(first[0], 1).await.unwrap()),
        [first[1]]
    );
    assert!(store
        .pending_journal_after(second[0], 10)
        .await
        .unwrap()
        .is_empty());

    let stats = store.stats().await.unwrap();
    assert_eq!(stats.journal_backlog, 3);
    assert!(stats.journal_bytes > 0);
    assert_eq!(store.health().await.unwrap().oldest_pending, Some(at(T0)));
    // Nothing is a ticket before it is applied.
    assert!(numbers(&store, Default::default()).await.is_empty());
}

/// Applying removes entries from the journal and takes effect once: the same entries again, or a
/// batch overlapping one already applied, change nothing more.
pub async fn apply_takes_effect_once(store: Arc<dyn Store>) {
    let ids = store
        .append_journal(&[firing("a", T0), firing("b", T0), firing("c", T0)])
        .await
        .unwrap();
    let pending = store.pending_journal(10).await.unwrap().entries;
    let applied = store
        .apply_journal(pending[..1].to_vec().into(), &policy())
        .await
        .unwrap();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        (applied[0].journal_id, applied[0].outcome),
        (ids[0], "opened")
    );
    let a = ticket(&store, 1).await;
    assert_eq!(applied[0].ticket_id.as_deref(), Some(a.id.as_str()));
    assert_eq!(store.stats().await.unwrap().journal_backlog, 2);

    // The whole batch again (a crashed worker's retry): only the two not yet applied take effect.
    let again = store
        .apply_journal(pending.clone().into(), &policy())
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|a| a.journal_id).collect::<Vec<_>>(),
        ids[1..]
    );
    assert!(store
        .apply_journal(pending.into(), &policy())
        .await
        .unwrap()
        .is_empty());
    assert!(store.pending_journal(10).await.unwrap().is_empty());
    assert_eq!(numbers(&store, Default::default()).await, [3, 2, 1]);
    assert_eq!(kinds(&store, 1).await, [EntryKind::Opened]);
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.open, stats.journal_backlog, stats.journal_bytes),
        (3, 0, 0)
    );
    assert_eq!(store.health().await.unwrap().oldest_pending, None);
}

/// A resend renews without an entry; a new start is a refire; a sender's ack acknowledges; a
/// resolution of an earlier firing is ignored; the sender's resolution resolves, and a late copy of
/// One batch holding several alerts for the same keys applies them in order, each seeing what the
/// ones before it did: heartbeats, a content change between them, a resolution, and a new ticket for a
/// key whose ticket resolved earlier in the batch.
pub async fn one_batch_many_alerts_per_key(store: Arc<dyn Store>) {
    let mut worse = alert("a", Status::Firing, T0, T0 + 2 * MIN, Some(T0 + 6 * MIN));
    worse.title = "a, worse".into();
    let out: Vec<_> = ingest(
        &store,
        &[
            alert("a", Status::Firing, T0, T0, Some(T0 + 4 * MIN)),
            alert("b", Status::Firing, T0, T0, Some(T0 + 4 * MIN)),
            alert("a", Status::Firing, T0, T0 + MIN, Some(T0 + 5 * MIN)),
            worse,
            alert("a", Status::Firing, T0, T0 + 3 * MIN, Some(T0 + 7 * MIN)),
            alert("b", Status::Firing, T0, T0 + MIN, Some(T0 + 5 * MIN)),
            alert("b", Status::Resolved, T0, T0 + 2 * MIN, Some(T0 + 2 * MIN)),
            alert(
                "b",
                Status::Firing,
                T0 + 600 * MIN,
                T0 + 600 * MIN,
                Some(T0 + 604 * MIN),
            ),
            alert(
                "b",
                Status::Firing,
                T0 + 600 * MIN,
                T0 + 601 * MIN,
                Some(T0 + 605 * MIN),
            ),
        ],
    )
    .await
    .iter()
    .map(|a| a.outcome)
    .collect();
    assert_eq!(
        out,
        [
            "opened", "opened", "resent", "resent", "resent", "resent", "resolved", "opened",
            "resent"
        ]
    );
    let a = ticket(&store, 1).await;
    assert_eq!(
        (a.title.as_str(), a.resend_count, a.last_seen, a.ends_at),
        ("alert a", 3, at(T0 + 3 * MIN), Some(at(T0 + 7 * MIN)))
    );
    let b = ticket(&store, 2).await;
    assert_eq!(
        (b.state, b.resend_count, b.resolved_at),
        (TicketState::Resolved, 1, Some(at(T0 + 2 * MIN)))
    );
    let b2 = ticket(&store, 3).await;
    assert_eq!(
        (
            b2.state,
            b2.resend_count,
            b2.last_seen,
            b2.ends_at,
            b2.previous_id
        ),
        (
            TicketState::Open,
            1,
            at(T0 + 601 * MIN),
            Some(at(T0 + 605 * MIN)),
            Some(b.id)
        )
    );
    assert!(store.pending_journal(10).await.unwrap().is_empty());
}

/// that firing does not reopen it; a resolution with no ticket is ignored.
pub async fn alerts_resend_refire_ack_resolve(store: Arc<dyn Store>) {
    let out = |a: Vec<tocsin::store::Applied>| a.iter().map(|a| a.outcome).collect::<Vec<_>>();
    assert_eq!(
        out(ingest(
            &store,
            &[alert("a", Status::Firing, T0, T0, Some(T0 + 4 * MIN))]
        )
        .await),
        ["opened"]
    );
    assert_eq!(
        out(ingest(
            &store,
            &[alert("a", Status::Firing, T0, T0 + MIN, Some(T0 + 5 * MIN))]
        )
        .await),
        ["resent"]
    );
    let a = ticket(&store, 1).await;
    assert_eq!(
        (
            a.resend_count,
            a.firing_count,
            a.last_seq,
            a.last_seen,
            a.ends_at
        ),
        (1, 1, 1, at(T0 + MIN), Some(at(T0 + 5 * MIN)))
    );
    // A resend whose content changed is saved whole, not only as a heartbeat.
    let mut changed = alert("a", Status::Firing, T0, T0 + 2 * MIN, Some(T0 + 6 * MIN));
    changed.title = "a, now worse".into();
    changed.annotations.insert("summary".into(), "worse".into());
    assert_eq!(out(ingest(&store, &[changed]).await), ["resent"]);
    let a = ticket(&store, 1).await;
    assert_eq!(
        (
            a.title.as_str(),
            a.annotations.get("summary").map(String::as_str)
        ),
        ("a, now worse", Some("worse"))
    );
    assert_eq!((a.resend_count, a.ends_at), (2, Some(at(T0 + 6 * MIN))));
    assert_eq!(
        out(ingest(&store, &[firing("a", T0 + 10 * MIN)]).await),
        ["refired"]
    );
    let a = ticket(&store, 1).await;
    assert_eq!((a.firing_count, a.starts_at), (2, Some(at(T0 + 10 * MIN))));
    assert_eq!(
        kinds(&store, 1).await,
        [EntryKind::Opened, EntryKind::Refired]
    );

    assert_eq!(
        out(ingest(
            &store,
            &[alert("a", Status::Acknowledged, T0, T0 + 11 * MIN, None)]
        )
        .await),
        ["acknowledged"]
    );
    let a = ticket(&store, 1).await;
    assert_eq!(a.state, TicketState::Acked);
    assert_eq!(
        out(ingest(&store, &[resolved("a", T0, T0 + 12 * MIN)]).await),
        ["ignored"],
        "the resolution of the first firing, after the second began"
    );
    assert_eq!(ticket(&store, 1).await.state, TicketState::Acked);
    let applied = ingest(&store, &[resolved("a", T0 + 10 * MIN, T0 + 13 * MIN)]).await;
    assert_eq!(out(applied.clone()), ["resolved"]);
    assert_eq!(applied[0].ticket_id.as_deref(), Some(a.id.as_str()));
    let a = ticket(&store, 1).await;
    assert_eq!(
        (a.state, a.resolution.clone(), a.resolved_at),
        (
            TicketState::Resolved,
            Some(Resolution::Source),
            Some(at(T0 + 13 * MIN))
        )
    );
    assert_eq!(
        out(ingest(
            &store,
            &[alert(
                "a",
                Status::Firing,
                T0 + 10 * MIN,
                T0 + 14 * MIN,
                None
            )]
        )
        .await),
        ["ignored"],
        "a late copy of the firing the sender resolved"
    );
    let applied = ingest(&store, &[resolved("nobody", T0, T0 + 15 * MIN)]).await;
    assert_eq!(
        (applied[0].outcome, applied[0].ticket_id.clone()),
        ("ignored", None)
    );
    assert_eq!(
        kinds(&store, 1).await,
        [
            EntryKind::Opened,
            EntryKind::Refired,
            EntryKind::Acked,
            EntryKind::Resolved
        ]
    );
    assert_eq!(numbers(&store, Default::default()).await, [1]);
}

/// A firing within the reopen window of the resolution reopens the ticket; after the window, the
/// same key opens a new ticket that names the old one, which stays as it was.
pub async fn reopen_within_window_new_ticket_after(store: Arc<dyn Store>) {
    ingest(&store, &[firing("a", T0)]).await;
    ingest(&store, &[resolved("a", T0, T0 + MIN)]).await;
    let applied = ingest(&store, &[firing("a", T0 + 61 * MIN)]).await;
    assert_eq!(
        applied[0].outcome, "reopened",
        "60 minutes after: within the window"
    );
    let a = ticket(&store, 1).await;
    assert_eq!(
        (a.state, a.resolution.clone(), a.resolved_at, a.firing_count),
        (TicketState::Open, None, None, 2)
    );
    assert_eq!(
        kinds(&store, 1).await,
        [EntryKind::Opened, EntryKind::Resolved, EntryKind::Reopened]
    );

    ingest(&store, &[resolved("a", T0 + 61 * MIN, T0 + 62 * MIN)]).await;
    let applied = ingest(&store, &[firing("a", T0 + 123 * MIN)]).await;
    assert_eq!(
        applied[0].outcome, "opened",
        "61 minutes after: past the window"
    );
    let newer = ticket(&store, 2).await;
    assert_eq!(newer.previous_id.as_deref(), Some(a.id.as_str()));
    assert_eq!((newer.firing_count, newer.state), (1, TicketState::Open));
    let old = ticket(&store, 1).await;
    assert_eq!(old.state, TicketState::Resolved);
    let opened = &timeline(&store, 2).await[0];
    assert_eq!(opened.data["follows"]["ref"], "T-1");
    // Later alerts for the key go to the newest ticket.
    let applied = ingest(&store, &[resolved("a", T0 + 123 * MIN, T0 + 124 * MIN)]).await;
    assert_eq!(applied[0].ticket_id.as_deref(), Some(newer.id.as_str()));
    assert_eq!(ticket(&store, 1).await, old);
}

/// Leases: tickets whose lease ended at or before `now` resolve as expired, at the lease's end, once,
/// at most `limit` per call; tickets without a lease never do; a resend of an expired firing reopens.
pub async fn lease_expiry(store: Arc<dyn Store>) {
    ingest(
        &store,
        &[
            alert("a", Status::Firing, T0, T0, Some(T0 + 4 * MIN)),
            alert("b", Status::Firing, T0, T0, Some(T0 + 5 * MIN)),
            firing("c", T0),
        ],
    )
    .await;
    let (a, b) = (ticket(&store, 1).await, ticket(&store, 2).await);
    assert!(store
        .expire_leases(at(T0 + 4 * MIN - 1), 10)
        .await
        .unwrap()
        .is_empty());
    let mut expired = store.expire_leases(at(T0 + 60 * MIN), 1).await.unwrap();
    assert_eq!(expired.len(), 1, "at most `limit` per call");
    expired.extend(store.expire_leases(at(T0 + 60 * MIN), 10).await.unwrap());
    expired.sort();
    let mut want = vec![a.id.clone(), b.id.clone()];
    want.sort();
    assert_eq!(expired, want);
    assert!(store
        .expire_leases(at(T0 + 600 * MIN), 10)
        .await
        .unwrap()
        .is_empty());
    let a = ticket(&store, 1).await;
    assert_eq!(
        (a.state, a.resolution.clone(), a.resolved_at),
        (
            TicketState::Resolved,
            Some(Resolution::Expired),
            Some(at(T0 + 4 * MIN))
        )
    );
    let last = timeline(&store, 1).await.pop().unwrap();
    assert_eq!(
        (last.kind, last.at),
        (EntryKind::Resolved, at(T0 + 4 * MIN))
    );
    assert_eq!(ticket(&store, 3).await.state, TicketState::Open);

    // A resend of the expired firing means it is still on: the same ticket reopens.
    let applied = ingest(
        &store,
        &[alert(
            "a",
            Status::Firing,
            T0,
            T0 + 6 * MIN,
            Some(T0 + 10 * MIN),
        )],
    )
    .await;
    assert_eq!(applied[0].outcome, "reopened");
    assert_eq!(ticket(&store, 1).await.state, TicketState::Open);
    // An acked ticket's lease runs out too.
    store
        .act(
            &by_number(1),
            tocsin::domain::ticket::Action::Ack,
            &tocsin::domain::ticket::Actor::new("bob", "web"),
            at(T0 + 7 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        store.expire_leases(at(T0 + 10 * MIN), 10).await.unwrap(),
        std::slice::from_ref(&a.id)
    );
}

/// A sender's update (Zabbix's comments and severity changes): a new severity with its
/// `severity_changed` entry, a comment as a public note, both saved with the ticket; an update of an
/// unknown key, or one that changes nothing, is ignored. Acked in the same batch, first.
pub async fn sender_updates_change_severity_and_add_notes(store: Arc<dyn Store>) {
    use tocsin::domain::alert::{Alert, Severity};
    use tocsin::domain::timeline::Visibility;
    let out = |a: Vec<tocsin::store::Applied>| a.iter().map(|a| a.outcome).collect::<Vec<_>>();
    ingest(&store, &[firing("a", T0)]).await;
    let update = |severity, comment: Option<&str>, t| Alert {
        severity,
        description: comment.map(str::to_string),
        ..alert("a", Status::Updated, T0, t, None)
    };
    let applied = ingest(
        &store,
        &[
            alert("a", Status::Acknowledged, T0, T0 + MIN, None),
            update(Severity::Critical, Some("Failing over to db-3"), T0 + MIN),
            Alert {
                fingerprint: "nobody".into(),
                ..update(Severity::Critical, Some("x"), T0 + MIN)
            },
        ],
    )
    .await;
    assert_eq!(out(applied), ["acknowledged", "updated", "ignored"]);
    let a = ticket(&store, 1).await;
    assert_eq!(
        (a.state, a.severity),
        (TicketState::Acked, Severity::Critical)
    );
    assert_eq!(a.title, "alert a", "an update changes nothing else");
    assert_eq!(
        kinds(&store, 1).await,
        [
            EntryKind::Opened,
            EntryKind::Acked,
            EntryKind::SeverityChanged,
            EntryKind::Note
        ]
    );
    let changed = &entries_of(&store, 1, EntryKind::SeverityChanged).await[0];
    assert_eq!(
        (changed.data["from"].as_str(), changed.data["to"].as_str()),
        (Some("warning"), Some("critical"))
    );
    let note = &entries_of(&store, 1, EntryKind::Note).await[0];
    assert_eq!(
        (note.text.as_str(), note.visibility, note.actor.as_str()),
        ("Failing over to db-3", Visibility::Public, "source:prom")
    );
    assert_eq!(
        out(ingest(&store, &[update(Severity::Critical, None, T0 + 2 * MIN)]).await),
        ["ignored"]
    );
    assert_eq!(kinds(&store, 1).await.len(), 4);
}

/// Ticket numbers follow the order tickets open in, without gaps, within a batch and across batches:
/// a key that opens twice in one batch, resends and a resolve among them. (PostgreSQL takes a batch's
/// numbers ahead in one statement; they must come out as if taken one by one.)
pub async fn ticket_numbers_follow_openings(store: Arc<dyn Store>) {
    let out: Vec<_> = ingest(
        &store,
        &[
            firing("a", T0),
            firing("b", T0),
            firing("a", T0 + MIN),
            resolved("b", T0, T0 + 2 * MIN),
            firing("b", T0 + 600 * MIN),
            firing("c", T0 + 600 * MIN),
        ],
    )
    .await
    .iter()
    .map(|a| a.outcome)
    .collect();
    assert_eq!(
        out,
        ["opened", "opened", "refired", "resolved", "opened", "opened"]
    );
    ingest(&store, &[firing("d", T0 + 601 * MIN)]).await;
    let mut numbered = Vec::new();
    for n in 1..=5 {
        numbered.push((n, ticket(&store, n).await.fingerprint));
    }
    assert_eq!(
        numbered,
        [
            (1, "a".to_string()),
            (2, "b".to_string()),
            (3, "b".to_string()),
            (4, "c".to_string()),
            (5, "d".to_string())
        ]
    );
}
