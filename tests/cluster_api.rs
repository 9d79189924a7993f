//! `GET /api/cluster` and the cluster's gauges, in process: admins only; the instance, its mode, its
//! heartbeat and the leases it holds. (Several real instances: tests/cluster.rs.)

mod common;

use common::{expect, spawn_app_with, ADMIN, EDITOR};

#[tokio::test]
async fn the_cluster_view_is_for_admins_and_shows_this_instance_and_its_work() {
    let app =
        spawn_app_with("rooms:\n  ops: {sink: {kind: webhook, url: \"http://127.0.0.1:9/x\"}}\n")
            .await;
    expect(app.api_get("/api/cluster", EDITOR).await, 403).await;

    // Before the first heartbeat nothing is listed; the instance answering names itself.
    let view = expect(app.api_get("/api/cluster", ADMIN).await, 200).await;
    let me = app.app.cluster.id.clone();
    assert_eq!(view["instance"], me.as_str());
    let storage = if common::storage::on_postgres() {
        "shared"
    } else {
        "solo"
    };
    assert_eq!(view["mode"], storage);
    assert_eq!(view["lease_ttl_ms"], 10_000);
    assert_eq!(view["instances"], serde_json::json!([]));

    app.app.cluster.set_address("tocsin-a.internal:9077".into());
    app.app.cluster.round().await.unwrap();
    let view = expect(app.api_get("/api/cluster", ADMIN).await, 200).await;
    let listed = &view["instances"][0];
    assert_eq!(listed["id"], me.as_str());
    assert_eq!(listed["address"], "tocsin-a.internal:9077");
    assert_eq!(listed["state"], "live");
    assert_eq!(listed["version"], env!("CARGO_PKG_VERSION"));

    // Its work: the journal, the sweeps and the room's outbox, held (by itself alone).
    let metrics = app.metrics().await;
    for lease in ["journal", "sweeps", "outbox:ops"] {
        assert!(
            metrics.contains(&format!("tocsin_lease_held{{lease=\"{lease}\"}} 1")),
            "{lease} not held in:\n{metrics}"
        );
    }
    assert!(metrics.contains("tocsin_cluster_instances 1"), "{metrics}");
}
