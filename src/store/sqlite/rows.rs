//! Rows into domain values: tickets, entries, silences, deliveries. A row that does not decode is an
//! error for that row alone (callers decide whether it holds anything up).

use rusqlite::types::Type;
use rusqlite::Row;

use crate::domain::alert::Severity;
use crate::domain::routing::DeliveryKind;
use crate::domain::silence::Silence;
use crate::domain::ticket::{Resolution, Ticket, TicketState};
use crate::domain::time::Timestamp;
use crate::domain::timeline::{Entry, EntryKind, Visibility};
use crate::store::tx::Settled;
use crate::store::Delivery;

pub(super) const TICKET_COLUMNS: &str =
    "id, number, source, fingerprint, title, severity, state, resolution, \
    labels, annotations, description, url, starts_at, ends_at, created_at, updated_at, last_seen, \
    resolved_at, acked_by, firing_count, resend_count, previous_id, last_seq, routing, assignee";

pub(super) const SILENCE_COLUMNS: &str =
    "id, matchers, starts_at, ends_at, comment, author, created_at, expired_by";

pub(super) const DELIVERY_COLUMNS: &str =
    "o.id, o.room, o.ticket_id, o.kind, o.content, o.state, o.attempts, \
    o.created_at, o.next_at, o.last_error, th.handle";

fn unknown(i: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, Type::Text, format!("unknown {what}").into())
}

/// Column `i`'s JSON, parsed from the row's own text (no copy of it first: every resend reads three).
fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text = row.get_ref(i)?.as_str()?;
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_millis)
}

pub(super) fn ticket(row: &Row<'_>) -> rusqlite::Result<Ticket> {
    let severity: String = row.get(5)?;
    let state: String = row.get(6)?;
    let resolution: Option<String> = row.get(7)?;
    Ok(Ticket {
        id: row.get(0)?,
        number: row.get(1)?,
        source: row.get(2)?,
        fingerprint: row.get(3)?,
        title: row.get(4)?,
        severity: Severity::from_name(&severity).ok_or_else(|| unknown(5, "severity"))?,
        state: TicketState::from_name(&state).ok_or_else(|| unknown(6, "state"))?,
        resolution: resolution
            .map(|r| serde_json::from_str::<Resolution>(&r))
            .transpose()
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(7, Type::Text, Box::new(e)))?,
        labels: json(row, 8)?,
        annotations: json(row, 9)?,
        description: row.get(10)?,
        url: row.get(11)?,
        starts_at: ts(row.get(12)?),
        ends_at: ts(row.get(13)?),
        created_at: Timestamp::from_millis(row.get(14)?),
        updated_at: Timestamp::from_millis(row.get(15)?),
        last_seen: Timestamp::from_millis(row.get(16)?),
        resolved_at: ts(row.get(17)?),
        acked_by: row.get(18)?,
        firing_count: row.get(19)?,
        resend_count: row.get(20)?,
        previous_id: row.get(21)?,
        last_seq: row.get(22)?,
        routing: json(row, 23)?,
        assignee: row.get(24)?,
    })
}

/// An entry from `seq, at, kind, visibility, actor, text, data`, starting at column `i`.
pub(super) fn entry_at(row: &Row<'_>, i: usize) -> rusqlite::Result<Entry> {
    let kind: String = row.get(i + 2)?;
    let visibility: String = row.get(i + 3)?;
    Ok(Entry {
        seq: row.get(i)?,
        at: Timestamp::from_millis(row.get(i + 1)?),
        kind: EntryKind::from_name(&kind).ok_or_else(|| unknown(i + 2, "entry kind"))?,
        visibility: Visibility::from_name(&visibility)
            .ok_or_else(|| unknown(i + 3, "visibility"))?,
        actor: row.get(i + 4)?,
        text: row.get(i + 5)?,
        data: json(row, i + 6)?,
    })
}

pub(super) fn entry(row: &Row<'_>) -> rusqlite::Result<Entry> {
    entry_at(row, 0)
}

pub(super) fn silence(row: &Row<'_>) -> rusqlite::Result<Silence> {
    Ok(Silence {
        id: row.get(0)?,
        matchers: json(row, 1)?,
        starts_at: Timestamp::from_millis(row.get(2)?),
        ends_at: Timestamp::from_millis(row.get(3)?),
        comment: row.get(4)?,
        author: row.get(5)?,
        created_at: Timestamp::from_millis(row.get(6)?),
        expired_by: row.get(7)?,
    })
}

/// `room, ticket_id, kind, attempts` of a settled delivery.
pub(super) fn settled(row: &Row<'_>) -> rusqlite::Result<Settled> {
    let kind: String = row.get(2)?;
    Ok(Settled {
        room: row.get(0)?,
        ticket_id: row.get(1)?,
        kind: DeliveryKind::from_name(&kind).ok_or_else(|| unknown(2, "delivery kind"))?,
        attempts: row.get(3)?,
    })
}

pub(super) fn delivery(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = row.get(3)?;
    Ok(Delivery {
        id: row.get(0)?,
        room: row.get(1)?,
        ticket_id: row.get(2)?,
        kind: DeliveryKind::from_name(&kind).ok_or_else(|| unknown(3, "delivery kind"))?,
        content: json(row, 4)?,
        state: row.get(5)?,
        attempts: row.get(6)?,
        created_at: Timestamp::from_millis(row.get(7)?),
        next_at: Timestamp::from_millis(row.get(8)?),
        last_error: row.get(9)?,
        root: row.get(10)?,
    })
}
