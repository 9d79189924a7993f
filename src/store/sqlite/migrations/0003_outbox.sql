CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room       TEXT NOT NULL,
    ticket_id  TEXT,
    kind       TEXT NOT NULL,
    content    TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending',
    attempts   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_at    INTEGER NOT NULL,
    last_error TEXT
);
CREATE INDEX outbox_room_pending ON outbox (room, id) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';
-- The root message of each ticket in each room, which later messages thread under or edit.
CREATE TABLE threads (
    ticket_id TEXT NOT NULL,
    room      TEXT NOT NULL,
    handle    TEXT NOT NULL,
    PRIMARY KEY (ticket_id, room)
) WITHOUT ROWID;
