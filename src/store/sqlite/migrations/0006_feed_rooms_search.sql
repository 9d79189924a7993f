ALTER TABLE tickets ADD COLUMN assignee TEXT;
-- Every timeline entry in commit order, across tickets: the ids live clients resume from
-- (`Last-Event-ID`). Written with the entry, in the same transaction.
CREATE TABLE feed (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL,
    seq       INTEGER NOT NULL
);
INSERT INTO feed (ticket_id, seq) SELECT ticket_id, seq FROM timeline ORDER BY at, ticket_id, seq;
-- The rooms routing sent each ticket to, for room filters (lists, live streams, chat `status`).
CREATE TABLE ticket_rooms (
    room      TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    PRIMARY KEY (room, ticket_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO ticket_rooms (room, ticket_id) SELECT room, ticket_id FROM threads;
-- Full-text search over titles and timeline texts.
CREATE VIRTUAL TABLE search USING fts5(body, ticket_id UNINDEXED, visibility UNINDEXED);
INSERT INTO search (body, ticket_id, visibility) SELECT title, id, 'public' FROM tickets;
INSERT INTO search (body, ticket_id, visibility) SELECT text, ticket_id, visibility FROM timeline;
