//! Leases for several instances on one database: one holder at a time, renewals keep the token, a
//! lease that expired goes to the next asker with a larger token (fencing), releasing frees it at once.
//! Writes under a lease are refused once it changed hands; instances heartbeat and are forgotten.

use std::sync::Arc;
use std::time::Duration;

use tocsin::domain::lease::Fence;
use tocsin::domain::time::Timestamp;
use tocsin::store::{fenced, Instance, Store, StoreError};

use super::support::T0;

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

const TTL: Duration = Duration::from_secs(10);

pub async fn leases_one_holder_at_a_time(store: Arc<dyn Store>) {
    assert!(store
        .leases()
        .await
        .unwrap()
        .iter()
        .all(|l| l.holder.is_empty()));
    let a = store
        .acquire_lease("journal", "a", TTL, at(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a.holder.as_str(), a.token, a.expires_at),
        ("a", 1, at(10_000))
    );
    assert_eq!(
        store
            .acquire_lease("journal", "b", TTL, at(1))
            .await
            .unwrap(),
        None
    );
    // Another lease is independent.
    let room = store
        .acquire_lease("room:ops", "b", TTL, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((room.holder.as_str(), room.token), ("b", 1));

    // Renewing keeps the token and moves the expiry.
    let renewed = store
        .acquire_lease("journal", "a", TTL, at(5_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((renewed.token, renewed.expires_at), (1, at(15_000)));
    assert_eq!(
        store
            .acquire_lease("journal", "b", TTL, at(14_999))
            .await
            .unwrap(),
        None
    );

    // Expired: the next asker takes it, with a larger token; the old holder is refused.
    let b = store
        .acquire_lease("journal", "b", TTL, at(15_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.holder.as_str(), b.token), ("b", 2));
    assert_eq!(
        store
            .acquire_lease("journal", "a", TTL, at(15_001))
            .await
            .unwrap(),
        None
    );
    let listed = store.leases().await.unwrap();
    let journal = listed.iter().find(|l| l.name == "journal").unwrap();
    assert_eq!(journal, &b);

    // Releasing: only by the holder; then anyone may take it at once.
    store.release_lease("journal", "a").await.unwrap();
    assert_eq!(
        store
            .acquire_lease("journal", "a", TTL, at(15_002))
            .await
            .unwrap(),
        None
    );
    store.release_lease("journal", "b").await.unwrap();
    let a2 = store
        .acquire_lease("journal", "a", TTL, at(15_003))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a2.holder.as_str(), a2.token), ("a", 3));
    // Releasing a lease nobody ever took is nothing.
    store.release_lease("never", "a").await.unwrap();
}

/// Many instances asking at once: exactly one gets the lease.
pub async fn leases_race_has_one_winner(store: Arc<dyn Store>) {
    let mut asks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        asks.push(tokio::spawn(async move {
            store
                .acquire_lease("outbox", &format!("instance-{i}"), TTL, at(0))
                .await
                .unwrap()
        }));
    }
    let mut winners = Vec::new();
    for a in asks {
        winners.extend(a.await.unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].token, 1);
}

/// A write made under a fence runs while the fence's holder holds the lease with its token, and is
/// refused (changing nothing) once the lease went to another instance; writes outside any fence are
/// never refused.
pub async fn writes_under_a_lost_lease_are_refused(store: Arc<dyn Store>) {
    let a = store
        .acquire_lease("sweeps", "a", TTL, at(0))
        .await
        .unwrap()
        .unwrap();
    let fence = Fence {
        lease: "sweeps".into(),
        holder: "a".into(),
        token: a.token,
    };
    let write = |store: Arc<dyn Store>, member: &'static str| async move {
        store.end_sessions(member).await
    };
    let first = fenced(fence.clone(), write(Arc::clone(&store), "alice"))
        .await
        .unwrap();
    assert_eq!(store.session_generation("alice").await.unwrap(), first);
    // a was paused past its lease; b took it over.
    store
        .acquire_lease("sweeps", "b", TTL, at(20_000))
        .await
        .unwrap()
        .unwrap();
    let refused = fenced(fence.clone(), write(Arc::clone(&store), "alice")).await;
    assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
    assert_eq!(store.session_generation("alice").await.unwrap(), first);
    // Even when a takes the lease back later, the old token stays refused.
    store.release_lease("sweeps", "b").await.unwrap();
    store
        .acquire_lease("sweeps", "a", TTL, at(20_001))
        .await
        .unwrap()
        .unwrap();
    let stale = fenced(fence, write(Arc::clone(&store), "alice")).await;
    assert!(matches!(stale, Err(StoreError::Fenced(_))), "{stale:?}");
    // Reads are not fenced, and neither is work outside a fence.
    assert_eq!(store.session_generation("alice").await.unwrap(), first);
    assert!(write(Arc::clone(&store), "alice").await.unwrap() > first);
}

fn instance(id: &str, heartbeat_ms: i64) -> Instance {
    Instance {
        id: id.into(),
        address: format!("127.0.0.1:90{}", id.len()),
        version: "0.1.0".into(),
        started_at: at(0),
        heartbeat_at: at(heartbeat_ms),
    }
}

/// Instances heartbeat (a second heartbeat moves the first), are listed by id, and those silent since
/// before a time are forgotten.
pub async fn instances_heartbeat_and_are_forgotten(store: Arc<dyn Store>) {
    assert!(store.instances().await.unwrap().is_empty());
    store.heartbeat(&instance("b", 100)).await.unwrap();
    store.heartbeat(&instance("a", 100)).await.unwrap();
    store.heartbeat(&instance("a", 5_000)).await.unwrap();
    assert_eq!(
        store.instances().await.unwrap(),
        [instance("a", 5_000), instance("b", 100)]
    );
    assert_eq!(store.forget_instances(at(100)).await.unwrap(), 0);
    assert_eq!(store.forget_instances(at(101)).await.unwrap(), 1);
    assert_eq!(store.instances().await.unwrap(), [instance("a", 5_000)]);
}
