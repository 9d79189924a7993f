-- Replies by email already taken, per ticket and member, until their reply address expires: a
-- replayed message or an MTA's retry adds nothing.
CREATE TABLE inbound_seen (
    message_id TEXT NOT NULL,
    ticket_id  TEXT NOT NULL,
    member     TEXT NOT NULL,
    until      INTEGER NOT NULL,
    PRIMARY KEY (message_id, ticket_id, member)
) WITHOUT ROWID;
CREATE INDEX inbound_seen_until ON inbound_seen (until);
