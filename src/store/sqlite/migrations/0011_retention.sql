-- Ticket numbers are never reused, even after the highest ones were deleted.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
-- Tickets by state, kept by triggers, so /metrics never counts every ticket ever made.
CREATE TABLE ticket_counts (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO ticket_counts (state, n) SELECT state, COUNT(*) FROM tickets GROUP BY state;
CREATE TRIGGER ticket_counts_insert AFTER INSERT ON tickets BEGIN
    INSERT INTO ticket_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER ticket_counts_update AFTER UPDATE OF state ON tickets
    WHEN OLD.state <> NEW.state BEGIN
    UPDATE ticket_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO ticket_counts (state, n) VALUES (NEW.state, 1)
        ON CONFLICT (state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER ticket_counts_delete AFTER DELETE ON tickets BEGIN
    UPDATE ticket_counts SET n = n - 1 WHERE state = OLD.state;
END;
-- What deleting a ticket looks up.
CREATE INDEX tickets_resolved_at ON tickets (resolved_at) WHERE state = 'resolved';
CREATE INDEX feed_ticket ON feed (ticket_id);
CREATE INDEX ticket_rooms_ticket ON ticket_rooms (ticket_id);
CREATE INDEX outbox_ticket ON outbox (ticket_id);
CREATE INDEX emails_ticket ON emails (ticket_id);
CREATE INDEX email_threads_ticket ON email_threads (ticket_id);
-- Search rows get known rowids (an entry's feed id; minus the ticket number for its title), so a
-- ticket's rows can be deleted without scanning the index.
DROP TABLE search;
CREATE VIRTUAL TABLE search USING fts5(body, ticket_id UNINDEXED, visibility UNINDEXED);
INSERT INTO search (rowid, body, ticket_id, visibility) SELECT -number, title, id, 'public' FROM tickets;
INSERT INTO search (rowid, body, ticket_id, visibility)
    SELECT f.id, t.text, t.ticket_id, t.visibility
    FROM timeline t JOIN feed f ON f.ticket_id = t.ticket_id AND f.seq = t.seq;
