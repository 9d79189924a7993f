-- Silences: label matchers with a window. Changes of tickets they match are recorded, not sent.
CREATE TABLE silences (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    matchers   TEXT NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    comment    TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expired_by TEXT
);
CREATE INDEX silences_ends ON silences (ends_at);
-- The rooms each ticket's firing (opening, refire, reopening) was queued for: where a resolution of a
-- silenced ticket still goes.
CREATE TABLE fired_rooms (
    ticket_id TEXT NOT NULL,
    room      TEXT NOT NULL,
    PRIMARY KEY (ticket_id, room)
) WITHOUT ROWID;
INSERT OR IGNORE INTO fired_rooms (ticket_id, room) SELECT ticket_id, room FROM threads;
INSERT OR IGNORE INTO fired_rooms (ticket_id, room)
    SELECT ticket_id, room FROM outbox WHERE kind = 'root' AND ticket_id IS NOT NULL;
-- Business hours: a delivery held until its room's hours start is not due before `held_until`.
ALTER TABLE outbox ADD COLUMN held_until INTEGER;
-- The off-hours period each room last got its notice for (one notice per period).
CREATE TABLE off_hours_notices (
    room         TEXT PRIMARY KEY,
    period_start INTEGER NOT NULL,
    posted_at    INTEGER NOT NULL
) WITHOUT ROWID;
