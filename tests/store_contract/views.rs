//! Reading tickets back: timeline visibility, full-text search, the feed (replay after an id, limits,
//! room, ticket and visibility filters, its watch), ticket lists (filters and paging) and stats.

use std::sync::Arc;

use tocsin::domain::alert::Severity;
use tocsin::domain::ticket::{Action, Actor, TicketState};
use tocsin::domain::timeline::{EntryKind, Visibility};
use tocsin::store::{FeedQuery, Store, TicketFilter};

use super::support::*;

async fn note(store: &Arc<dyn Store>, number: i64, text: &str, visibility: Visibility, t: i64) {
    store
        .act(
            &by_number(number),
            Action::Note {
                text: text.into(),
                visibility,
            },
            &Actor::new("bob", "web"),
            at(t),
        )
        .await
        .unwrap();
}

const PUBLIC: &[Visibility] = &[Visibility::Public, Visibility::System];

/// Internal notes are on the timeline, but a reader who may see only public and system entries gets
/// neither them in the feed nor tickets found by their words.
pub async fn timeline_visibility(store: Arc<dyn Store>) {
    ingest(&store, &[firing("a", T0)]).await;
    note(&store, 1, "public words", Visibility::Public, T0 + MIN).await;
    note(
        &store,
        1,
        "secret bastion",
        Visibility::Internal,
        T0 + 2 * MIN,
    )
    .await;
    let tl = timeline(&store, 1).await;
    assert_eq!(
        tl.iter().map(|e| e.visibility).collect::<Vec<_>>(),
        [Visibility::System, Visibility::Public, Visibility::Internal]
    );
    let feed = |visible: Vec<Visibility>| {
        let store = Arc::clone(&store);
        async move {
            store
                .feed(&FeedQuery {
                    visible,
                    limit: 100,
                    ..FeedQuery::default()
                })
                .await
                .unwrap()
                .iter()
                .map(|f| f.entry.seq)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(feed(vec![]).await, [1, 2, 3]);
    assert_eq!(feed(PUBLIC.to_vec()).await, [1, 2]);
    assert_eq!(feed(vec![Visibility::Internal]).await, [3]);
    assert_eq!(feed(vec![Visibility::Public]).await, [2]);
    assert!(search(&store, "bastion", PUBLIC).await.is_empty());
    assert_eq!(search(&store, "bastion", &[]).await, [1]);
    assert_eq!(
        search(&store, "bastion", &[Visibility::Internal]).await,
        [1]
    );
    assert_eq!(search(&store, "words", PUBLIC).await, [1]);
    assert!(search(&store, "words", &[Visibility::Internal])
        .await
        .is_empty());
}

/// Search: every word must occur, as a whole word or a word's start, in the title or a timeline
/// text, whatever the case; word order does not matter; quotes, punctuation and operators are not
/// syntax. A word inside another (not at its start) is not a match. (Whether words found in
/// different texts of one ticket, e.g. its title and a note, add up is left open.)
pub async fn search_words_and_prefixes(store: Arc<dyn Store>) {
    let mut disk = firing("disk", T0);
    disk.title = "Disk almost full on database server".into();
    let mut memory = firing("memory", T0);
    memory.title = "Memory pressure on cache server".into();
    let mut quiet = firing("quiet", T0);
    quiet.title = "Certificate expires soon".into();
    ingest(&store, &[disk, memory, quiet]).await;
    note(
        &store,
        3,
        "Renewal scheduled with the vendor",
        Visibility::Public,
        T0 + MIN,
    )
    .await;

    assert_eq!(search(&store, "disk", &[]).await, [1]);
    assert_eq!(search(&store, "DISK", &[]).await, [1]);
    assert_eq!(search(&store, "Memory", &[]).await, [2]);
    assert_eq!(search(&store, "server", &[]).await, [2, 1]);
    assert_eq!(search(&store, "serv", &[]).await, [2, 1], "a word's start");
    assert_eq!(search(&store, "full disk", &[]).await, [1], "any order");
    assert!(
        search(&store, "disk cache", &[]).await.is_empty(),
        "every word"
    );
    assert!(
        search(&store, "isk", &[]).await.is_empty(),
        "not inside a word"
    );
    assert!(search(&store, "nothing", &[]).await.is_empty());
    assert_eq!(search(&store, "vendor", &[]).await, [3], "a timeline text");
    assert_eq!(
        search(&store, "\"disk\"", &[]).await,
        [1],
        "quotes are not syntax"
    );
    assert_eq!(search(&store, "disk,", &[]).await, [1]);
    assert_eq!(search(&store, "(memory)", &[]).await, [2]);
    assert!(
        search(&store, "disk OR memory", &[]).await.is_empty(),
        "OR is a word"
    );
    assert!(
        search(&store, "disk NOT full", &[]).await.is_empty(),
        "NOT is a word"
    );
    for odd in [
        "\"",
        "*",
        "(",
        "-disk",
        "disk*",
        "a:b",
        "NEAR(disk memory)",
        "'",
    ] {
        store
            .list_tickets(&TicketFilter {
                limit: 10,
                text: Some(odd.into()),
                ..TicketFilter::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{odd}: {e}"));
    }
    // Search combines with the other filters.
    store
        .act(
            &by_number(1),
            Action::Ack,
            &Actor::new("bob", "web"),
            at(T0 + MIN),
        )
        .await
        .unwrap();
    assert_eq!(
        numbers(
            &store,
            TicketFilter {
                text: Some("server".into()),
                states: vec![TicketState::Open],
                ..TicketFilter::default()
            }
        )
        .await,
        [2]
    );
}

/// The feed: every entry in commit order, ids increasing across tickets, resumable after any id, at
/// most `limit`, filtered by ticket and by the rooms routing sent tickets to; its watch holds the
/// latest id, and moves only when entries were written.
pub async fn feed_replay(store: Arc<dyn Store>) {
    route(&store);
    let watch = store.feed_watch();
    let start = *watch.borrow();
    ingest(&store, &[firing("a", T0), for_night("n", T0)]).await;
    note(&store, 1, "first", Visibility::Public, T0 + MIN).await;
    note(&store, 2, "second", Visibility::Public, T0 + 2 * MIN).await;
    let all = store
        .feed(&FeedQuery {
            after: start,
            limit: 100,
            ..FeedQuery::default()
        })
        .await
        .unwrap();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "{all:?}");
    assert!(all[0].id > start);
    assert_eq!(*store.feed_watch().borrow(), all.last().unwrap().id);
    let a = ticket(&store, 1).await;
    for f in &all {
        let t = ticket(&store, f.ticket[2..].parse().unwrap()).await;
        assert_eq!((&f.ticket_id, &f.title), (&t.id, &t.title));
        let stored = store.timeline(&t.id, f.entry.seq - 1, 1).await.unwrap();
        assert_eq!(stored[0], f.entry, "the feed carries the stored entry");
    }
    let notes: Vec<_> = all
        .iter()
        .filter(|f| f.entry.kind == EntryKind::Note)
        .collect();
    assert_eq!(
        notes
            .iter()
            .map(|f| (f.ticket.as_str(), f.entry.text.as_str()))
            .collect::<Vec<_>>(),
        [("T-1", "first"), ("T-2", "second")]
    );

    let page = |after: i64, limit: usize| FeedQuery {
        after,
        limit,
        ..FeedQuery::default()
    };
    let first_two = store.feed(&page(start, 2)).await.unwrap();
    assert_eq!(first_two, all[..2]);
    let rest = store.feed(&page(first_two[1].id, 100)).await.unwrap();
    assert_eq!(rest, all[2..]);
    assert!(store
        .feed(&page(all.last().unwrap().id, 100))
        .await
        .unwrap()
        .is_empty());

    let only = |q: FeedQuery| {
        let store = Arc::clone(&store);
        async move {
            store
                .feed(&FeedQuery { limit: 100, ..q })
                .await
                .unwrap()
                .iter()
                .map(|f| f.ticket.clone())
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        only(FeedQuery {
            ticket_id: Some(a.id.clone()),
            ..Default::default()
        })
        .await,
        set(&["T-1"])
    );
    assert_eq!(
        only(FeedQuery {
            room: Some("night".into()),
            ..Default::default()
        })
        .await,
        set(&["T-2"])
    );
    assert_eq!(
        only(FeedQuery {
            room: Some("ops".into()),
            ..Default::default()
        })
        .await,
        set(&["T-1"])
    );
    assert!(only(FeedQuery {
        room: Some("elsewhere".into()),
        ..Default::default()
    })
    .await
    .is_empty());

    // A commit that wrote no entry (a resend, a presence report) leaves the watch where it was.
    let latest = *store.feed_watch().borrow();
    ingest(
        &store,
        &[alert(
            "a",
            tocsin::domain::alert::Status::Firing,
            T0,
            T0 + 3 * MIN,
            None,
        )],
    )
    .await;
    assert_eq!(*store.feed_watch().borrow(), latest);
    note(&store, 1, "third", Visibility::Internal, T0 + 4 * MIN).await;
    let moved = *store.feed_watch().borrow();
    assert!(moved > latest);
    assert_eq!(
        store
            .feed(&page(latest, 100))
            .await
            .unwrap()
            .last()
            .unwrap()
            .id,
        moved
    );
}

/// Lists: newest first, by state, severity, source and room, paged by number with a limit.
pub async fn list_filters_and_paging(store: Arc<dyn Store>) {
    route(&store);
    let mut other = firing("o", T0);
    other.source = "hooks".into();
    ingest(
        &store,
        &[
            critical("c", T0),
            firing("w", T0),
            for_night("n", T0),
            other,
        ],
    )
    .await;
    store
        .act(
            &by_number(2),
            Action::Ack,
            &Actor::new("bob", "web"),
            at(T0 + MIN),
        )
        .await
        .unwrap();
    store
        .act(
            &by_number(3),
            Action::Resolve,
            &Actor::new("bob", "web"),
            at(T0 + MIN),
        )
        .await
        .unwrap();
    let list = |f: TicketFilter| numbers(&store, f);
    assert_eq!(list(TicketFilter::default()).await, [4, 3, 2, 1]);
    assert_eq!(
        list(TicketFilter {
            limit: 2,
            ..Default::default()
        })
        .await,
        [4, 3]
    );
    assert_eq!(
        list(TicketFilter {
            limit: 2,
            before_number: Some(3),
            ..Default::default()
        })
        .await,
        [2, 1]
    );
    assert!(list(TicketFilter {
        before_number: Some(1),
        ..Default::default()
    })
    .await
    .is_empty());
    assert_eq!(
        list(TicketFilter {
            states: vec![TicketState::Open],
            ..Default::default()
        })
        .await,
        [4, 1]
    );
    assert_eq!(
        list(TicketFilter {
            states: vec![TicketState::Acked, TicketState::Resolved],
            ..Default::default()
        })
        .await,
        [3, 2]
    );
    assert_eq!(
        list(TicketFilter {
            severities: vec![Severity::Critical],
            ..Default::default()
        })
        .await,
        [1]
    );
    assert_eq!(
        list(TicketFilter {
            severities: vec![Severity::Critical, Severity::Warning],
            states: vec![TicketState::Open],
            ..Default::default()
        })
        .await,
        [4, 1]
    );
    assert_eq!(
        list(TicketFilter {
            source: Some("hooks".into()),
            ..Default::default()
        })
        .await,
        [4]
    );
    assert_eq!(
        list(TicketFilter {
            source: Some("prom".into()),
            ..Default::default()
        })
        .await,
        [3, 2, 1]
    );
    assert_eq!(
        list(TicketFilter {
            room: Some("night".into()),
            ..Default::default()
        })
        .await,
        [3]
    );
    assert_eq!(
        list(TicketFilter {
            room: Some("ops".into()),
            limit: 2,
            ..Default::default()
        })
        .await,
        [4, 2]
    );
    assert!(list(TicketFilter {
        room: Some("nowhere".into()),
        ..Default::default()
    })
    .await
    .is_empty());
}

/// Stats count tickets by state and the journal not yet applied.
pub async fn stats_count(store: Arc<dyn Store>) {
    assert_eq!(store.stats().await.unwrap(), Default::default());
    ingest(&store, &[firing("a", T0), firing("b", T0), firing("c", T0)]).await;
    store
        .act(
            &by_number(1),
            Action::Ack,
            &Actor::new("bob", "web"),
            at(T0 + MIN),
        )
        .await
        .unwrap();
    ingest(&store, &[resolved("b", T0, T0 + MIN)]).await;
    store
        .append_journal(&[firing("d", T0 + 2 * MIN)])
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (
            stats.open,
            stats.acked,
            stats.resolved,
            stats.journal_backlog
        ),
        (1, 1, 1, 1)
    );
    assert!(stats.journal_bytes > 0);
    // A reopening moves a ticket back to open.
    ingest(&store, &[firing("b", T0 + 3 * MIN)]).await;
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (
            stats.open,
            stats.acked,
            stats.resolved,
            stats.journal_backlog,
            stats.journal_bytes
        ),
        (3, 1, 0, 0, 0)
    );
}
