//! Rows into domain values on PostgreSQL, column for column as on SQLite (`sqlite/rows.rs`).

use tokio_postgres::Row;

use super::get;
use crate::domain::alert::Severity;
use crate::domain::routing::DeliveryKind;
use crate::domain::silence::Silence;
use crate::domain::ticket::{Ticket, TicketState};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind, Visibility};
use crate::store::tx::Settled;
use crate::store::{Delivery, Result, StoreError};

pub(super) const TICKET_COLUMNS: &str =
    "id, number, source, fingerprint, title, severity, state, resolution, \
    labels, annotations, description, url, starts_at, ends_at, created_at, updated_at, last_seen, \
    resolved_at, acked_by, firing_count, resend_count, previous_id, last_seq, routing, assignee";

pub(super) const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at, ends_at, comment, author, created_at, expired_by";

pub(super) const DELIVERY_COLUMNS: &str =
    "o.id, o.room, o.ticket_id, o.kind, o.content, o.state, o.attempts, \
    o.created_at, o.next_at, o.last_error, th.handle";

fn unknown(i: usize, what: &str, value: &str) -> StoreError {
    StoreError::Other(format!("column {i}: unknown {what} `{value}`"))
}

fn json<T: serde::de::DeserializeOwned>(row: &Row, i: usize) -> Result<T> {
    serde_json::from_str(get::<&str>(row, i)?)
        .map_err(|e| StoreError::Other(format!("column {i} is not the JSON expected: {e}")))
}

fn ts(row: &Row, i: usize) -> Result<Timestamp> {
    get(row, i).map(Timestamp::from_millis)
}

fn ts_opt(row: &Row, i: usize) -> Result<Option<Timestamp>> {
    get::<Option<i64>>(row, i).map(|v| v.map(Timestamp::from_millis))
}

pub(super) fn ticket(row: &Row) -> Result<Ticket> {
    let severity: &str = get(row, 5)?;
    let state: &str = get(row, 6)?;
    let resolution: Option<&str> = get(row, 7)?;
    Ok(Ticket {
        id: get(row, 0)?,
        number: get(row, 1)?,
        source: get(row, 2)?,
        fingerprint: get(row, 3)?,
        title: get(row, 4)?,
        severity: Severity::from_name(severity).ok_or_else(|| unknown(5, "severity", severity))?,
        state: TicketState::from_name(state).ok_or_else(|| unknown(6, "state", state))?,
        resolution: resolution
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::Other(format!("column 7 is not the JSON expected: {e}")))?,
        labels: json(row, 8)?,
        annotations: json(row, 9)?,
        description: get(row, 10)?,
        url: get(row, 11)?,
        starts_at: ts_opt(row, 12)?,
        ends_at: ts_opt(row, 13)?,
        created_at: ts(row, 14)?,
        updated_at: ts(row, 15)?,
        last_seen: ts(row, 16)?,
        resolved_at: ts_opt(row, 17)?,
        acked_by: get(row, 18)?,
        firing_count: get(row, 19)?,
        resend_count: get(row, 20)?,
        previous_id: get(row, 21)?,
        last_seq: get(row, 22)?,
        routing: json(row, 23)?,
        assignee: get(row, 24)?,
    })
}

/// An entry from `seq, at, kind, visibility, actor, text, data`, starting at column `i`.
pub(super) fn entry_at(row: &Row, i: usize) -> Result<Entry> {
    let kind: &str = get(row, i + 2)?;
    let visibility: &str = get(row, i + 3)?;
    Ok(Entry {
        seq: get(row, i)?,
        at: ts(row, i + 1)?,
        kind: EntryKind::from_name(kind).ok_or_else(|| unknown(i + 2, "entry kind", kind))?,
        visibility: Visibility::from_name(visibility)
            .ok_or_else(|| unknown(i + 3, "visibility", visibility))?,
        actor: get(row, i + 4)?,
        text: get(row, i + 5)?,
        data: json(row, i + 6)?,
    })
}

pub(super) fn silence(row: &Row) -> Result<Silence> {
    Ok(Silence {
        id: get(row, 0)?,
        matchers: json(row, 1)?,
        starts_at: ts(row, 2)?,
        ends_at: ts(row, 3)?,
        comment: get(row, 4)?,
        author: get(row, 5)?,
        created_at: ts(row, 6)?,
        expired_by: get(row, 7)?,
    })
}

/// `room, ticket_id, kind, attempts` of a settled delivery.
pub(super) fn settled(row: &Row) -> Result<Settled> {
    let kind: &str = get(row, 2)?;
    Ok(Settled {
        room: get(row, 0)?,
        ticket_id: get(row, 1)?,
        kind: DeliveryKind::from_name(kind).ok_or_else(|| unknown(2, "delivery kind", kind))?,
        attempts: get::<i64>(row, 3)? as u32,
    })
}

pub(super) fn delivery(row: &Row) -> Result<Delivery> {
    let kind: &str = get(row, 3)?;
    Ok(Delivery {
        id: get(row, 0)?,
        room: get(row, 1)?,
        ticket_id: get(row, 2)?,
        kind: DeliveryKind::from_name(kind).ok_or_else(|| unknown(3, "delivery kind", kind))?,
        content: json(row, 4)?,
        state: get(row, 5)?,
        attempts: get::<i64>(row, 6)? as u32,
        created_at: ts(row, 7)?,
        next_at: ts(row, 8)?,
        last_error: get(row, 9)?,
        root: get(row, 10)?,
    })
}
