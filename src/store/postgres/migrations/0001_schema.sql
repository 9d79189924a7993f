-- tocsin's schema on PostgreSQL: the same tables as SQLite's migrations 0001..0011 arrive at.
-- Times are milliseconds since the epoch (BIGINT), JSON is stored as text, as on SQLite, so both
-- backends read and write the same values.
CREATE TABLE journal (
    id          BIGSERIAL PRIMARY KEY,
    received_at BIGINT NOT NULL,
    alert       TEXT NOT NULL
);
CREATE TABLE tickets (
    id           TEXT PRIMARY KEY,
    number       BIGINT NOT NULL UNIQUE,
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
    starts_at    BIGINT,
    ends_at      BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_seen    BIGINT NOT NULL,
    resolved_at  BIGINT,
    acked_by     TEXT,
    firing_count BIGINT NOT NULL,
    resend_count BIGINT NOT NULL,
    previous_id  TEXT,
    last_seq     BIGINT NOT NULL,
    is_latest    BOOLEAN NOT NULL,
    routing      TEXT NOT NULL DEFAULT '{}',
    assignee     TEXT
);
-- At most one current ticket per key: the database itself refuses a second.
CREATE UNIQUE INDEX tickets_latest_key ON tickets (source, fingerprint) WHERE is_latest;
CREATE INDEX tickets_state_number ON tickets (state, number);
CREATE INDEX tickets_source_number ON tickets (source, number);
CREATE INDEX tickets_lease ON tickets (ends_at) WHERE state <> 'resolved' AND ends_at IS NOT NULL;
CREATE INDEX tickets_resolved_at ON tickets (resolved_at) WHERE state = 'resolved';
-- Ticket numbers: a sequence never hands a number out twice, even after retention deleted the ticket.
CREATE SEQUENCE ticket_numbers;
CREATE TABLE timeline (
    ticket_id  TEXT NOT NULL REFERENCES tickets (id),
    seq        BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    visibility TEXT NOT NULL,
    actor      TEXT NOT NULL,
    text       TEXT NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);
-- Every timeline entry in commit order, across tickets: the ids live clients resume from. Ids are
-- taken under a transaction-level advisory lock held until commit (see postgres/tickets.rs), so an
-- id is never handed out before a smaller one has committed.
CREATE TABLE feed (
    id        BIGSERIAL PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    seq       BIGINT NOT NULL
);
CREATE INDEX feed_ticket ON feed (ticket_id);
-- Full-text search over titles (feed_id NULL) and timeline texts, with the text's words as FTS5's
-- unicode61 tokenizer splits them ('simple' configuration: lower case, no stemming).
CREATE TABLE search (
    ticket_id  TEXT NOT NULL,
    feed_id    BIGINT,
    visibility TEXT NOT NULL,
    body       TSVECTOR NOT NULL
);
CREATE INDEX search_body ON search USING GIN (body);
CREATE INDEX search_ticket ON search (ticket_id);
CREATE TABLE dropped (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    plugin TEXT NOT NULL,
    reason TEXT NOT NULL,
    alert  TEXT NOT NULL
);
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    room       TEXT NOT NULL,
    ticket_id  TEXT,
    kind       TEXT NOT NULL,
    content    TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending',
    attempts   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    next_at    BIGINT NOT NULL,
    last_error TEXT,
    held_until BIGINT
);
CREATE INDEX outbox_room_pending ON outbox (room, id) WHERE state = 'pending';
CREATE INDEX outbox_dead ON outbox (id) WHERE state = 'dead';
CREATE INDEX outbox_ticket ON outbox (ticket_id);
CREATE TABLE threads (
    ticket_id TEXT NOT NULL,
    room      TEXT NOT NULL,
    handle    TEXT NOT NULL,
    PRIMARY KEY (ticket_id, room)
);
CREATE INDEX threads_handle ON threads (room, handle);
CREATE TABLE presence (
    member TEXT NOT NULL,
    source TEXT NOT NULL,
    state  TEXT NOT NULL,
    since  BIGINT NOT NULL,
    PRIMARY KEY (member, source)
);
CREATE TABLE emails (
    id          BIGSERIAL PRIMARY KEY,
    member      TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    next_at     BIGINT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT,
    message_id  TEXT,
    sent_at     BIGINT
);
CREATE INDEX emails_due ON emails (state, next_at);
CREATE INDEX emails_member ON emails (member, sent_at);
CREATE INDEX emails_ticket ON emails (ticket_id);
CREATE TABLE email_threads (
    member    TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    root      TEXT NOT NULL,
    last      TEXT NOT NULL,
    PRIMARY KEY (member, ticket_id)
);
CREATE INDEX email_threads_ticket ON email_threads (ticket_id);
CREATE TABLE unsubscribed (
    member TEXT PRIMARY KEY,
    at     BIGINT NOT NULL
);
CREATE TABLE ticket_rooms (
    room      TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    PRIMARY KEY (room, ticket_id)
);
CREATE INDEX ticket_rooms_ticket ON ticket_rooms (ticket_id);
CREATE TABLE silences (
    id         BIGSERIAL PRIMARY KEY,
    matchers   TEXT NOT NULL,
    starts_at  BIGINT NOT NULL,
    ends_at    BIGINT NOT NULL,
    comment    TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expired_by TEXT
);
CREATE INDEX silences_ends ON silences (ends_at);
CREATE TABLE fired_rooms (
    ticket_id TEXT NOT NULL,
    room      TEXT NOT NULL,
    PRIMARY KEY (ticket_id, room)
);
CREATE TABLE off_hours_notices (
    room         TEXT PRIMARY KEY,
    period_start BIGINT NOT NULL,
    posted_at    BIGINT NOT NULL
);
CREATE TABLE dead_journal (
    id          BIGSERIAL PRIMARY KEY,
    journal_id  BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
    buried_at   BIGINT NOT NULL,
    reason      TEXT NOT NULL,
    alert       TEXT NOT NULL
);
CREATE TABLE session_generations (
    member     TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
CREATE TABLE inbound_seen (
    message_id TEXT NOT NULL,
    ticket_id  TEXT NOT NULL,
    member     TEXT NOT NULL,
    until      BIGINT NOT NULL,
    PRIMARY KEY (message_id, ticket_id, member)
);
CREATE INDEX inbound_seen_until ON inbound_seen (until);
-- Tickets by state, kept by a trigger, so /metrics never counts every ticket ever made.
CREATE TABLE ticket_counts (
    state TEXT PRIMARY KEY,
    n     BIGINT NOT NULL
);
CREATE FUNCTION ticket_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE ticket_counts SET n = n - 1 WHERE state = OLD.state;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        INSERT INTO ticket_counts (state, n) VALUES (NEW.state, 1)
            ON CONFLICT (state) DO UPDATE SET n = ticket_counts.n + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER ticket_counts_insert AFTER INSERT OR DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION ticket_counts_keep();
CREATE TRIGGER ticket_counts_update AFTER UPDATE OF state ON tickets
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION ticket_counts_keep();
