//! Members' actions through `act`: ack, notes, resolve, assign, each with its entry; every refusal
//! the state machine makes (as `StoreError::Rejected`), which writes nothing; unknown tickets; and
//! naming tickets by id or by `T-n`.

use std::sync::Arc;

use tocsin::domain::ticket::{Action, ActionError, Actor, Resolution, TicketState};
use tocsin::domain::timeline::{EntryKind, Visibility};
use tocsin::store::{Store, StoreError, TicketRef};

use super::support::*;

fn note(text: &str, visibility: Visibility) -> Action {
    Action::Note {
        text: text.into(),
        visibility,
    }
}

fn assign(member: Option<&str>) -> Action {
    Action::Assign {
        member: member.map(str::to_string),
    }
}

/// Each action appends the next entry, naming the member and channel, and changes the ticket.
pub async fn act_ack_note_assign_resolve(store: Arc<dyn Store>) {
    ingest(&store, &[firing("a", T0)]).await;
    let bob = Actor::new("bob", "web");
    let (t, e) = store
        .act(&by_number(1), Action::Ack, &bob, at(T0 + MIN))
        .await
        .unwrap();
    assert_eq!(
        (t.state, t.acked_by.as_deref(), t.last_seq, t.updated_at),
        (TicketState::Acked, Some("bob"), 2, at(T0 + MIN))
    );
    assert_eq!(
        (e.seq, e.kind, e.visibility, e.actor.as_str(), e.at),
        (
            2,
            EntryKind::Acked,
            Visibility::Public,
            "member:bob",
            at(T0 + MIN)
        )
    );
    assert_eq!(e.data["via"], "web");

    let in_chat = Actor::new("alice", "slack").in_room("ops");
    let (_, e) = store
        .act(
            &by_number(1),
            note("looking", Visibility::Public),
            &in_chat,
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        (e.seq, e.kind, e.text.as_str()),
        (3, EntryKind::Note, "looking")
    );
    assert_eq!(
        (e.data["via"].as_str(), e.data["room"].as_str()),
        (Some("slack"), Some("ops"))
    );
    let (_, e) = store
        .act(
            &by_number(1),
            note("creds rotated", Visibility::Internal),
            &bob,
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!((e.seq, e.visibility), (4, Visibility::Internal));

    let (t, e) = store
        .act(&by_number(1), assign(Some("bob")), &bob, at(T0 + 3 * MIN))
        .await
        .unwrap();
    assert_eq!(
        (t.assignee.as_deref(), e.kind),
        (Some("bob"), EntryKind::Assigned)
    );
    assert_eq!(e.data["assignee"], "bob");
    let (t, e) = store
        .act(&by_number(1), assign(Some("alice")), &bob, at(T0 + 3 * MIN))
        .await
        .unwrap();
    assert_eq!(t.assignee.as_deref(), Some("alice"));
    assert_eq!(
        (e.data["assignee"].as_str(), e.data["previous"].as_str()),
        (Some("alice"), Some("bob"))
    );
    let (t, _) = store
        .act(&by_number(1), assign(None), &bob, at(T0 + 3 * MIN))
        .await
        .unwrap();
    assert_eq!(t.assignee, None);

    let (t, e) = store
        .act(
            &by_number(1),
            Action::Resolve,
            &Actor::new("alice", "api"),
            at(T0 + 4 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        (t.state, t.resolution.clone(), t.resolved_at),
        (
            TicketState::Resolved,
            Some(Resolution::Member {
                name: "alice".into()
            }),
            Some(at(T0 + 4 * MIN))
        )
    );
    assert_eq!((e.seq, e.kind), (8, EntryKind::Resolved));
    // What `act` returned is what is stored.
    assert_eq!(ticket(&store, 1).await, t);
    let tl = timeline(&store, 1).await;
    assert_eq!(
        tl.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(tl.last().unwrap(), &e);
    // A resolved ticket still takes notes (and assignment).
    let (_, e) = store
        .act(
            &by_number(1),
            note("postmortem tomorrow", Visibility::Public),
            &bob,
            at(T0 + 5 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(e.seq, 9);
    // Timelines page by seq.
    let page = store.timeline(&t.id, 2, 3).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5]);
    assert!(store.timeline(&t.id, 9, 10).await.unwrap().is_empty());
}

async fn refused(store: &Arc<dyn Store>, number: i64, action: Action) -> ActionError {
    let before = ticket(store, number).await;
    let err = store
        .act(
            &by_number(number),
            action,
            &Actor::new("bob", "web"),
            at(T0 + 9 * MIN),
        )
        .await
        .unwrap_err();
    assert_eq!(
        ticket(store, number).await,
        before,
        "a refusal writes nothing"
    );
    match err {
        StoreError::Rejected(e) => e,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// What the state machine refuses comes back as `Rejected` with its reason and changes nothing;
/// an unknown ticket is `NotFound`.
pub async fn act_refusals(store: Arc<dyn Store>) {
    ingest(&store, &[firing("a", T0), firing("b", T0)]).await;
    let bob = Actor::new("bob", "web");
    store
        .act(&by_number(1), Action::Ack, &bob, at(T0 + MIN))
        .await
        .unwrap();
    assert_eq!(
        refused(&store, 1, Action::Ack).await,
        ActionError::AlreadyAcked("T-1".into())
    );
    assert_eq!(
        refused(&store, 1, note("  ", Visibility::Public)).await,
        ActionError::EmptyNote
    );
    assert_eq!(
        refused(&store, 1, note("hi", Visibility::System)).await,
        ActionError::SystemVisibility
    );
    assert_eq!(
        refused(&store, 1, assign(None)).await,
        ActionError::NotAssigned("T-1".into())
    );
    store
        .act(&by_number(1), assign(Some("bob")), &bob, at(T0 + MIN))
        .await
        .unwrap();
    assert_eq!(
        refused(&store, 1, assign(Some("bob"))).await,
        ActionError::AlreadyAssigned("T-1".into(), "bob".into())
    );
    store
        .act(&by_number(2), Action::Resolve, &bob, at(T0 + MIN))
        .await
        .unwrap();
    assert_eq!(
        refused(&store, 2, Action::Ack).await,
        ActionError::Resolved("T-2".into())
    );
    assert_eq!(
        refused(&store, 2, Action::Resolve).await,
        ActionError::Resolved("T-2".into())
    );
    assert_eq!(timeline(&store, 2).await.len(), 2);

    for missing in [TicketRef::Number(3), TicketRef::Id("no-such-ticket".into())] {
        assert!(matches!(
            store.act(&missing, Action::Ack, &bob, at(T0)).await,
            Err(StoreError::NotFound)
        ));
    }
}

/// Tickets are found by id and by number in any of the spellings `TicketRef::parse` takes.
pub async fn get_ticket_by_id_and_number(store: Arc<dyn Store>) {
    ingest(&store, &[firing("a", T0), firing("b", T0), firing("c", T0)]).await;
    let third = store.get_ticket(&TicketRef::parse("T-3")).await.unwrap();
    assert_eq!((third.number, third.fingerprint.as_str()), (3, "c"));
    assert_eq!(third.reference(), "T-3");
    for text in ["t-3", "3"] {
        assert_eq!(
            store.get_ticket(&TicketRef::parse(text)).await.unwrap(),
            third
        );
    }
    assert_eq!(TicketRef::parse(&third.id), TicketRef::Id(third.id.clone()));
    assert_eq!(
        store
            .get_ticket(&TicketRef::parse(&third.id))
            .await
            .unwrap(),
        third
    );
    assert_eq!(
        (
            third.source.as_str(),
            third.title.as_str(),
            third.created_at,
            third.last_seq
        ),
        ("prom", "alert c", at(T0), 1)
    );
    for missing in ["T-4", "T-0", "nope"] {
        assert!(
            matches!(
                store.get_ticket(&TicketRef::parse(missing)).await,
                Err(StoreError::NotFound)
            ),
            "{missing}"
        );
    }
    // Ids are unique.
    let ids: std::collections::BTreeSet<String> = store
        .list_tickets(&tocsin::store::TicketFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids.len(), 3);
}
