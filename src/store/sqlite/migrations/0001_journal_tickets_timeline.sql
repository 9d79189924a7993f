CREATE TABLE journal (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    alert       TEXT NOT NULL
);
CREATE TABLE tickets (
    id           TEXT PRIMARY KEY,
    number       INTEGER NOT NULL UNIQUE,
    source       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    title        TEXT NOT NULL,
    severity     TEXT NOT NULL,
    state        TEXT NOT NULL,
    resolution   TEXT,
    labels       TEXT NOT NULL,
    annotations  TEXT NOT NULL,
    description  TEXT,
    url          TEXT,
    starts_at    INTEGER,
    ends_at      INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_seen    INTEGER NOT NULL,
    resolved_at  INTEGER,
    acked_by     TEXT,
    firing_count INTEGER NOT NULL,
    resend_count INTEGER NOT NULL,
    previous_id  TEXT,
    last_seq     INTEGER NOT NULL,
    is_latest    INTEGER NOT NULL
);
-- At most one current ticket per key: the database itself refuses a second.
CREATE UNIQUE INDEX tickets_latest_key ON tickets (source, fingerprint) WHERE is_latest = 1;
CREATE INDEX tickets_state_number ON tickets (state, number);
CREATE INDEX tickets_source_number ON tickets (source, number);
CREATE INDEX tickets_lease ON tickets (ends_at) WHERE state <> 'resolved' AND ends_at IS NOT NULL;
CREATE TABLE timeline (
    ticket_id  TEXT NOT NULL REFERENCES tickets (id),
    seq        INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    visibility TEXT NOT NULL,
    actor      TEXT NOT NULL,
    text       TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
) WITHOUT ROWID;
