//! Change events: stored and listed newest first with a cursor and a source filter; put on the
//! timelines of the open tickets of their system when they arrive, and on tickets of that system that
//! open within their window afterwards; never on other systems', other sources' or resolved tickets;
//! purged with resolved tickets.

use std::sync::Arc;

use tocsin::domain::alert::{Alert, Labels};
use tocsin::domain::change::{ChangeDraft, Link};
use tocsin::domain::timeline::EntryKind;
use tocsin::store::{ChangeFilter, Store, TicketFilter};

use super::support::*;

/// A firing of source `pd` about system `system` (its `source` label, as PagerDuty triggers set it).
fn pd_firing(fp: &str, system: &str, t: i64) -> Alert {
    let mut a = firing(fp, t);
    a.source = "pd".into();
    a.labels = Labels::from([("source".to_string(), system.to_string())]);
    a
}

/// Its resolution.
fn pd_resolved(fp: &str, t: i64) -> Alert {
    let mut a = resolved(fp, t, t);
    a.source = "pd".into();
    a
}

fn change(source: &str, system: Option<&str>, summary: &str, t: i64, window: i64) -> ChangeDraft {
    ChangeDraft {
        source: source.into(),
        payload_source: system.map(str::to_string),
        summary: summary.into(),
        at: at(t - 1_000),
        received_at: at(t),
        attach_until: at(t + window),
        details: serde_json::json!({"build": "42", "nested": {"ok": true}}),
        links: vec![Link {
            href: "https://ci.example.com/42".into(),
            text: Some("Build".into()),
        }],
    }
}

async fn change_entries(store: &Arc<dyn Store>, number: i64) -> Vec<String> {
    entries_of(store, number, EntryKind::Change)
        .await
        .into_iter()
        .map(|e| e.data["summary"].as_str().unwrap().to_string())
        .collect()
}

async fn number_of(store: &Arc<dyn Store>, fingerprint: &str) -> i64 {
    let all = store
        .list_tickets(&TicketFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    all.iter()
        .find(|t| t.fingerprint == fingerprint)
        .map(|t| t.number)
        .unwrap()
}

pub async fn changes_are_stored_listed_and_paged(store: Arc<dyn Store>) {
    let none = store
        .changes(&ChangeFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    let draft = change("pd", Some("web-1"), "first", T0, 60 * MIN);
    let (first, on) = store.record_change(draft.clone(), at(T0)).await.unwrap();
    assert!(on.is_empty(), "no tickets yet");
    assert_eq!(first, draft.with_id(first.id), "stored as given");
    store
        .record_change(change("pd", None, "second", T0 + MIN, 0), at(T0 + MIN))
        .await
        .unwrap();
    store
        .record_change(
            change("other", Some("web-1"), "third", T0 + 2 * MIN, 0),
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();

    let page = |source: Option<&str>, before_id, limit| ChangeFilter {
        source: source.map(str::to_string),
        before_id,
        limit,
    };
    let all = store.changes(&page(None, None, 10)).await.unwrap();
    let summaries: Vec<&str> = all.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(summaries, ["third", "second", "first"], "newest first");
    assert!(all[0].id > all[1].id && all[1].id > all[2].id);
    let next = store
        .changes(&page(None, Some(all[0].id), 1))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].summary, "second", "the cursor continues below it");
    let pd = store.changes(&page(Some("pd"), None, 10)).await.unwrap();
    assert_eq!(pd.len(), 2);
    assert!(pd.iter().all(|c| c.source == "pd"));
    assert_eq!(pd[1].links[0].href, "https://ci.example.com/42");
    assert_eq!(pd[1].details["nested"]["ok"], true);
}

pub async fn changes_land_on_open_tickets_of_their_system(store: Arc<dyn Store>) {
    ingest(
        &store,
        &[
            pd_firing("a", "web-1", T0),
            pd_firing("b", "web-1", T0),
            pd_firing("c", "db-1", T0),
            pd_firing("d", "web-1", T0),
        ],
    )
    .await;
    // Another source's ticket about a system of the same name is not this source's.
    let mut foreign = firing("e", T0);
    foreign.labels = Labels::from([("source".to_string(), "web-1".to_string())]);
    ingest(&store, &[foreign]).await;
    ingest(&store, &[pd_resolved("d", T0 + MIN)]).await;
    let (a, b, c, d, e) = (
        number_of(&store, "a").await,
        number_of(&store, "b").await,
        number_of(&store, "c").await,
        number_of(&store, "d").await,
        number_of(&store, "e").await,
    );
    store
        .act(
            &by_number(b),
            tocsin::domain::ticket::Action::Ack,
            &tocsin::domain::ticket::Actor::new("alice", "api"),
            at(T0 + MIN),
        )
        .await
        .unwrap();

    let (_, on) = store
        .record_change(
            change("pd", Some("web-1"), "deploy", T0 + 2 * MIN, 60 * MIN),
            at(T0 + 2 * MIN),
        )
        .await
        .unwrap();
    assert_eq!(on.len(), 2, "open a and acked b, not resolved d: {on:?}");
    assert_eq!(change_entries(&store, a).await, ["deploy"]);
    assert_eq!(change_entries(&store, b).await, ["deploy"]);
    for other in [c, d, e] {
        assert!(change_entries(&store, other).await.is_empty(), "T-{other}");
    }
    let entry = &entries_of(&store, a, EntryKind::Change).await[0];
    assert_eq!(entry.at, at(T0 + 2 * MIN));
    assert_eq!(entry.data["links"][0]["text"], "Build");
    // A change naming no system is kept but put on no ticket.
    let (_, on) = store
        .record_change(
            change("pd", None, "anon", T0 + 3 * MIN, 0),
            at(T0 + 3 * MIN),
        )
        .await
        .unwrap();
    assert!(on.is_empty());
    // The ticket's later entries keep counting after the change's.
    let before = timeline(&store, a).await.last().unwrap().seq;
    ingest(&store, &[pd_resolved("a", T0 + 4 * MIN)]).await;
    assert_eq!(timeline(&store, a).await.last().unwrap().seq, before + 1);
}

pub async fn tickets_opening_within_the_window_show_earlier_changes(store: Arc<dyn Store>) {
    let window = 30 * MIN;
    store
        .record_change(
            change("pd", Some("web-1"), "old deploy", T0, window),
            at(T0),
        )
        .await
        .unwrap();
    store
        .record_change(
            change("pd", Some("web-1"), "new deploy", T0 + 10 * MIN, window),
            at(T0 + 10 * MIN),
        )
        .await
        .unwrap();
    store
        .record_change(
            change("pd", Some("db-1"), "db migration", T0 + 10 * MIN, window),
            at(T0 + 10 * MIN),
        )
        .await
        .unwrap();

    // Within both windows: both, oldest first, after the opening entry.
    ingest(&store, &[pd_firing("a", "web-1", T0 + 20 * MIN)]).await;
    let a = number_of(&store, "a").await;
    assert_eq!(
        change_entries(&store, a).await,
        ["old deploy", "new deploy"]
    );
    let kinds = kinds(&store, a).await;
    assert_eq!(kinds[0], EntryKind::Opened);
    // Past the first change's window, within the second's; in one batch with another system's.
    ingest(
        &store,
        &[
            pd_firing("b", "web-1", T0 + 35 * MIN),
            pd_firing("c", "db-1", T0 + 35 * MIN),
        ],
    )
    .await;
    let (b, c) = (number_of(&store, "b").await, number_of(&store, "c").await);
    assert_eq!(change_entries(&store, b).await, ["new deploy"]);
    assert_eq!(change_entries(&store, c).await, ["db migration"]);
    // Past every window; another source's; no source label: nothing.
    ingest(&store, &[pd_firing("d", "web-1", T0 + 41 * MIN)]).await;
    let mut foreign = firing("e", T0 + 20 * MIN);
    foreign.labels = Labels::from([("source".to_string(), "web-1".to_string())]);
    let mut unlabelled = pd_firing("f", "web-1", T0 + 20 * MIN);
    unlabelled.labels = Labels::new();
    ingest(&store, &[foreign, unlabelled]).await;
    for fp in ["d", "e", "f"] {
        let n = number_of(&store, fp).await;
        assert!(change_entries(&store, n).await.is_empty(), "{fp}");
    }
    // A refiring of an open ticket is no opening: nothing is added twice.
    ingest(&store, &[pd_firing("a", "web-1", T0 + 25 * MIN)]).await;
    assert_eq!(change_entries(&store, a).await.len(), 2);
}

pub async fn changes_are_purged_with_resolved_tickets(store: Arc<dyn Store>) {
    store
        .record_change(change("pd", Some("web-1"), "old", T0, 0), at(T0))
        .await
        .unwrap();
    store
        .record_change(change("pd", Some("web-1"), "new", T0 + 20 * MIN, 0), at(T0))
        .await
        .unwrap();
    store.purge_tickets(at(T0 + 10 * MIN), 10).await.unwrap();
    let left = store
        .changes(&ChangeFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let summaries: Vec<&str> = left.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(summaries, ["new"], "received before the cutoff: gone");
}
