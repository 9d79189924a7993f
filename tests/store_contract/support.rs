//! What every contract case shares: alerts with explicit times, applying the journal, a small router
//! built from config, and short ways to list, search and read timelines. Nothing here knows a backend.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tocsin::config::Config;
use tocsin::domain::alert::{Alert, Labels, Severity, Status};
use tocsin::domain::message::Capabilities;
use tocsin::domain::routing::Router;
use tocsin::domain::ticket::{Policy, Ticket};
use tocsin::domain::time::Timestamp;
use tocsin::domain::timeline::{Entry, EntryKind, Visibility};
use tocsin::store::{Applied, JournalEntry, Store, TicketFilter, TicketRef};

pub const MIN: i64 = 60_000;
/// Friday 2027-01-15 08:00 UTC: before the `night` room's hours (Mon–Fri 09:00–17:00 UTC) start.
pub const T0: i64 = 1_800_000_000_000;

pub fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// The policy every case uses: a one-hour reopen window.
pub fn policy() -> Policy {
    Policy {
        reopen_window: Duration::from_secs(3600),
    }
}

/// A warning from source `prom`, titled `alert <fp>`, labelled `alertname=<fp>`.
pub fn alert(fp: &str, status: Status, starts: i64, received: i64, lease: Option<i64>) -> Alert {
    Alert {
        source: "prom".into(),
        fingerprint: fp.into(),
        status,
        title: format!("alert {fp}"),
        severity: Severity::Warning,
        labels: Labels::from([("alertname".to_string(), fp.to_string())]),
        annotations: Labels::new(),
        description: None,
        url: None,
        starts_at: Some(at(starts)),
        ends_at: lease.map(at),
        received_at: at(received),
        routing: Default::default(),
        raw: None,
    }
}

/// A firing without a lease, started and received at `t`.
pub fn firing(fp: &str, t: i64) -> Alert {
    alert(fp, Status::Firing, t, t, None)
}

/// The same, critical: routing sends it to `ops` mentioning alice and bob.
pub fn critical(fp: &str, t: i64) -> Alert {
    Alert {
        severity: Severity::Critical,
        ..firing(fp, t)
    }
}

/// The sender's resolution of the firing that started at `starts`.
pub fn resolved(fp: &str, starts: i64, t: i64) -> Alert {
    alert(fp, Status::Resolved, starts, t, None)
}

/// Appends alerts to the journal and applies all that is pending, returning the outcomes.
pub async fn ingest(store: &Arc<dyn Store>, alerts: &[Alert]) -> Vec<Applied> {
    store.append_journal(alerts).await.unwrap();
    apply_pending(store).await
}

/// Applies every pending journal entry as it is.
pub async fn apply_pending(store: &Arc<dyn Store>) -> Vec<Applied> {
    let pending = store.pending_journal(1000).await.unwrap();
    assert!(pending.unreadable.is_empty(), "{pending:?}");
    store
        .apply_journal(pending.entries.into(), &policy())
        .await
        .unwrap()
}

/// Appends one journal entry built by `build` from the alert's journal id, and applies it alone.
pub async fn ingest_entry(
    store: &Arc<dyn Store>,
    alert: Alert,
    build: impl FnOnce(JournalEntry) -> JournalEntry,
) -> Applied {
    let id = store.append_journal(&[alert]).await.unwrap()[0];
    let pending = store.pending_journal(1000).await.unwrap().entries;
    let entry = pending.into_iter().find(|e| e.id == id).unwrap();
    let mut applied = store
        .apply_journal(vec![build(entry)].into(), &policy())
        .await
        .unwrap();
    assert_eq!(applied.len(), 1);
    applied.remove(0)
}

pub async fn ticket(store: &Arc<dyn Store>, number: i64) -> Ticket {
    store.get_ticket(&TicketRef::Number(number)).await.unwrap()
}

pub fn by_number(number: i64) -> TicketRef {
    TicketRef::Number(number)
}

/// Ticket numbers a filter lists, in the order listed.
pub async fn numbers(store: &Arc<dyn Store>, filter: TicketFilter) -> Vec<i64> {
    let filter = TicketFilter {
        limit: if filter.limit == 0 { 100 } else { filter.limit },
        ..filter
    };
    store
        .list_tickets(&filter)
        .await
        .unwrap()
        .iter()
        .map(|t| t.number)
        .collect()
}

/// Ticket numbers a full-text search finds, for a reader who may see `visible` (empty: everything).
pub async fn search(store: &Arc<dyn Store>, text: &str, visible: &[Visibility]) -> Vec<i64> {
    numbers(
        store,
        TicketFilter {
            text: Some(text.to_string()),
            visible: visible.to_vec(),
            ..TicketFilter::default()
        },
    )
    .await
}

pub async fn timeline(store: &Arc<dyn Store>, number: i64) -> Vec<Entry> {
    let t = ticket(store, number).await;
    store.timeline(&t.id, 0, 1000).await.unwrap()
}

pub async fn kinds(store: &Arc<dyn Store>, number: i64) -> Vec<EntryKind> {
    timeline(store, number)
        .await
        .iter()
        .map(|e| e.kind)
        .collect()
}

pub async fn entries_of(store: &Arc<dyn Store>, number: i64, kind: EntryKind) -> Vec<Entry> {
    timeline(store, number)
        .await
        .into_iter()
        .filter(|e| e.kind == kind)
        .collect()
}

/// Routing for the cases that need deliveries and emails, from config as the server builds it:
///
/// - room `ops` (threads and edits; members alice and bob) gets everything not for `night`;
///   critical tickets there mention alice and bob;
/// - room `night` (no threads, no edits) gets tickets labelled `team=night`, and holds non-critical
///   ones outside Mon–Fri 09:00–17:00 UTC (at [`T0`] it is an hour before opening);
/// - alice and bob can be emailed (2 minutes after the mention; batches over 10 minutes); carol
///   has no address.
pub const ROUTING_YAML: &str = r#"
public_url: https://tocsin.test
members:
  alice: {role: admin, token: contract-admin-token-0001, email: alice@example.test}
  bob: {role: editor, token: contract-editor-token-0001, email: bob@example.test}
  carol: {role: viewer, token: contract-viewer-token-0001}
rooms:
  ops:
    sink: {kind: webhook, url: "http://127.0.0.1:9/ops"}
    members: [alice, bob]
  night:
    sink: {kind: webhook, url: "http://127.0.0.1:9/night"}
    hours: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "17:00", timezone: UTC, off_hours: hold}
routes:
  - {match: {team: night}, rooms: [night]}
  - {match: {severity: critical}, rooms: [ops], mention: [alice, bob]}
  - {rooms: [ops]}
email:
  smtp: smtp://127.0.0.1:9
  from: "tocsin <alerts@tocsin.test>"
  secret: a-test-secret-of-32-characters!!
  delay: 2m
  batch_window: 10m
"#;

/// When the `night` room's hours start after [`T0`]: Friday 09:00 UTC.
pub const NIGHT_OPENS: i64 = T0 + 60 * MIN;
/// How long after a mention its email is due.
pub const EMAIL_DELAY: i64 = 2 * MIN;

/// Builds the router from [`ROUTING_YAML`] and gives it to the store.
pub fn route(store: &Arc<dyn Store>) -> Arc<Router> {
    let config = Config::from_yaml(ROUTING_YAML, Path::new("contract.yaml"))
        .unwrap_or_else(|e| panic!("{:?}", e.problems));
    let capabilities = BTreeMap::from([(
        "ops".to_string(),
        Capabilities {
            threads: true,
            edits: true,
        },
    )]);
    let router = Arc::new(tocsin::outbox::router(&config, &capabilities));
    store.set_router(Arc::clone(&router));
    router
}

/// A firing that routing sends to the `night` room.
pub fn for_night(fp: &str, t: i64) -> Alert {
    let mut a = firing(fp, t);
    a.labels.insert("team".into(), "night".into());
    a
}
