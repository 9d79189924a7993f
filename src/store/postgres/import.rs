//! Moving an install: `tocsin migrate --from sqlite://old.db --to postgres://...` copies every table
//! of a SQLite database (migrated to the current schema first) into an empty PostgreSQL database in
//! one transaction, keeping ids (feed positions, journal, outbox, email and silence ids), so live
//! clients, Message-IDs and thread roots carry over. Search rows are rebuilt; sequences are moved past
//! the copied ids and past every ticket number ever used.

use std::path::Path;

use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::{err, search, PgBackend};
use crate::domain::timeline::EntryKind;
use crate::store::{Result, SqliteStore, StoreError};

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
}

use Kind::{Bool, Int, Text};

/// Tables in an order that satisfies references, with their columns as both schemas have them.
const TABLES: &[(&str, &[(&str, Kind)])] = &[
    (
        "journal",
        &[("id", Int), ("received_at", Int), ("alert", Text)],
    ),
    (
        "tickets",
        &[
            ("id", Text),
            ("number", Int),
            ("source", Text),
            ("fingerprint", Text),
            ("title", Text),
            ("severity", Text),
            ("state", Text),
            ("resolution", Text),
            ("labels", Text),
            ("annotations", Text),
            ("description", Text),
            ("url", Text),
            ("starts_at", Int),
            ("ends_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("last_seen", Int),
            ("resolved_at", Int),
            ("acked_by", Text),
            ("firing_count", Int),
            ("resend_count", Int),
            ("previous_id", Text),
            ("last_seq", Int),
            ("is_latest", Bool),
            ("routing", Text),
            ("assignee", Text),
        ],
    ),
    (
        "timeline",
        &[
            ("ticket_id", Text),
            ("seq", Int),
            ("at", Int),
            ("kind", Text),
            ("visibility", Text),
            ("actor", Text),
            ("text", Text),
            ("data", Text),
        ],
    ),
    ("feed", &[("id", Int), ("ticket_id", Text), ("seq", Int)]),
    (
        "dropped",
        &[
            ("id", Int),
            ("at", Int),
            ("plugin", Text),
            ("reason", Text),
            ("alert", Text),
        ],
    ),
    (
        "outbox",
        &[
            ("id", Int),
            ("room", Text),
            ("ticket_id", Text),
            ("kind", Text),
            ("content", Text),
            ("state", Text),
            ("attempts", Int),
            ("created_at", Int),
            ("next_at", Int),
            ("last_error", Text),
            ("held_until", Int),
        ],
    ),
    (
        "threads",
        &[("ticket_id", Text), ("room", Text), ("handle", Text)],
    ),
    (
        "presence",
        &[
            ("member", Text),
            ("source", Text),
            ("state", Text),
            ("since", Int),
        ],
    ),
    (
        "emails",
        &[
            ("id", Int),
            ("member", Text),
            ("ticket_id", Text),
            ("reason", Text),
            ("created_at", Int),
            ("next_at", Int),
            ("state", Text),
            ("attempts", Int),
            ("last_error", Text),
            ("message_id", Text),
            ("sent_at", Int),
        ],
    ),
    (
        "email_threads",
        &[
            ("member", Text),
            ("ticket_id", Text),
            ("root", Text),
            ("last", Text),
        ],
    ),
    ("unsubscribed", &[("member", Text), ("at", Int)]),
    ("ticket_rooms", &[("room", Text), ("ticket_id", Text)]),
    (
        "silences",
        &[
            ("id", Int),
            ("matchers", Text),
            ("starts_at", Int),
            ("ends_at", Int),
            ("comment", Text),
            ("author", Text),
            ("created_at", Int),
            ("expired_by", Text),
        ],
    ),
    ("fired_rooms", &[("ticket_id", Text), ("room", Text)]),
    (
        "off_hours_notices",
        &[("room", Text), ("period_start", Int), ("posted_at", Int)],
    ),
    (
        "dead_journal",
        &[
            ("id", Int),
            ("journal_id", Int),
            ("received_at", Int),
            ("buried_at", Int),
            ("reason", Text),
            ("alert", Text),
        ],
    ),
    (
        "session_generations",
        &[("member", Text), ("generation", Int)],
    ),
    (
        "inbound_seen",
        &[
            ("message_id", Text),
            ("ticket_id", Text),
            ("member", Text),
            ("until", Int),
        ],
    ),
    (
        "plugin_kv",
        &[
            ("plugin", Text),
            ("key", Text),
            ("value", Text),
            ("expires_at", Int),
        ],
    ),
    (
        "changes",
        &[
            ("id", Int),
            ("source", Text),
            ("payload_source", Text),
            ("summary", Text),
            ("at", Int),
            ("received_at", Int),
            ("attach_until", Int),
            ("details", Text),
            ("links", Text),
        ],
    ),
];

/// Tables with a serial id, whose sequence must move past the copied ids.
const SERIAL: &[&str] = &[
    "journal",
    "feed",
    "dropped",
    "outbox",
    "emails",
    "silences",
    "dead_journal",
    "changes",
];

/// What a copy moved, per table.
pub type Copied = Vec<(&'static str, usize)>;

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

/// One SQLite value as the PostgreSQL column's type wants it.
fn param(v: Value, kind: Kind, table: &str, col: &str) -> Result<Box<dyn ToSql + Sync + Send>> {
    let bad = || other(format!("{table}.{col} holds a value of the wrong type"));
    Ok(match (kind, v) {
        (Int, Value::Null) => Box::new(None::<i64>),
        (Text, Value::Null) => Box::new(None::<String>),
        (Bool, Value::Null) => Box::new(None::<bool>),
        (Int, Value::Integer(i)) => Box::new(Some(i)),
        (Bool, Value::Integer(i)) => Box::new(Some(i != 0)),
        (Text, Value::Text(s)) => Box::new(Some(s)),
        (Text, Value::Blob(b)) => Box::new(Some(String::from_utf8(b).map_err(|_| bad())?)),
        _ => return Err(bad()),
    })
}

/// Copies the SQLite database at `from` into the PostgreSQL database at `to`, which must hold no
/// tickets, journal rows or anything else tocsin writes. Returns the rows copied per table.
pub async fn from_sqlite(from: &Path, to: &str) -> Result<Copied> {
    if !from.exists() {
        return Err(other(format!("{} does not exist", from.display())));
    }
    // Opening migrates an older database to the current schema first.
    let path = from.to_path_buf();
    tokio::task::spawn_blocking(move || SqliteStore::open(&path).map(drop))
        .await
        .map_err(other)??;
    // Connecting migrates the target; the copy then runs on a connection of its own.
    let target = PgBackend::connect(to).await?;
    let mut client = super::connect_async(&target.target).await?;
    let t = client.transaction().await.map_err(err)?;
    for (table, _) in TABLES {
        let any: bool = t
            .query_one(&format!("SELECT EXISTS (SELECT 1 FROM {table})"), &[])
            .await
            .map_err(err)?
            .get(0);
        if any {
            return Err(other(format!(
                "{} is not empty (table {table} has rows); tocsin copies only into an empty database",
                target.shown
            )));
        }
    }
    let source =
        rusqlite::Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(other)?;
    let mut copied = Vec::new();
    for (table, cols) in TABLES {
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let insert = t
            .prepare(&format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                marks.join(", ")
            ))
            .await
            .map_err(err)?;
        let rows: Vec<Vec<Value>> = {
            let mut stmt = source
                .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
                .map_err(other)?;
            let rows = stmt
                .query_map([], |r| {
                    (0..cols.len()).map(|i| r.get::<_, Value>(i)).collect()
                })
                .map_err(other)?;
            rows.collect::<rusqlite::Result<_>>().map_err(other)?
        };
        for row in &rows {
            let params = row
                .iter()
                .zip(cols.iter())
                .map(|(v, (c, k))| param(v.clone(), *k, table, c))
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            t.execute(&insert, &refs).await.map_err(err)?;
        }
        copied.push((*table, rows.len()));
    }
    // Search rows, rebuilt from titles and entries (FTS5's rows are not portable).
    let titles: Vec<(String, String)> = {
        let mut stmt = source
            .prepare("SELECT id, title FROM tickets")
            .map_err(other)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(other)?;
        rows.collect::<rusqlite::Result<_>>().map_err(other)?
    };
    for (id, title) in titles {
        t.execute(
            "INSERT INTO search (ticket_id, feed_id, visibility, body) VALUES ($1, NULL, 'public', $2::text::tsvector)",
            &[&id, &search::document(&title)],
        )
        .await
        .map_err(err)?;
    }
    // As written since: no search rows for the kinds search does not index.
    let entries: Vec<(i64, String, String, String, String)> = {
        let mut stmt = source
            .prepare(
                "SELECT f.id, t.ticket_id, t.visibility, t.text, t.kind FROM timeline t \
                 JOIN feed f ON f.ticket_id = t.ticket_id AND f.seq = t.seq",
            )
            .map_err(other)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(other)?;
        rows.collect::<rusqlite::Result<_>>().map_err(other)?
    };
    for (feed_id, ticket, visibility, text, kind) in entries {
        if EntryKind::from_name(&kind).is_some_and(|k| !k.searchable()) {
            continue;
        }
        t.execute(
            "INSERT INTO search (ticket_id, feed_id, visibility, body) VALUES ($1, $2, $3, $4::text::tsvector)",
            &[&ticket, &feed_id, &visibility, &search::document(&text)],
        )
        .await
        .map_err(err)?;
    }
    for table in SERIAL {
        t.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                 GREATEST((SELECT MAX(id) FROM {table}), 1), (SELECT MAX(id) FROM {table}) IS NOT NULL)"
            ),
            &[],
        )
        .await
        .map_err(err)?;
    }
    let counter: i64 = source
        .query_row(
            "SELECT MAX(COALESCE((SELECT MAX(number) FROM tickets), 0), \
             COALESCE((SELECT value FROM counters WHERE name = 'ticket_number'), 0))",
            [],
            |r| r.get(0),
        )
        .map_err(other)?;
    if counter > 0 {
        t.execute("SELECT setval('ticket_numbers', $1)", &[&counter])
            .await
            .map_err(err)?;
    }
    t.commit().await.map_err(err)?;
    Ok(copied)
}
