-- Emails to members who were mentioned while not online: scheduled with the ticket change, sent or
-- cancelled by the mailer. Rows are kept after sending: threads and the timeline refer to them.
CREATE TABLE emails (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    member      TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    message_id  TEXT,
    sent_at     INTEGER
);
CREATE INDEX emails_due ON emails (state, next_at);
CREATE INDEX emails_member ON emails (member, sent_at);
-- Per member and ticket: the first and the latest Message-ID, for In-Reply-To and References.
CREATE TABLE email_threads (
    member    TEXT NOT NULL,
    ticket_id TEXT NOT NULL,
    root      TEXT NOT NULL,
    last      TEXT NOT NULL,
    PRIMARY KEY (member, ticket_id)
) WITHOUT ROWID;
CREATE TABLE unsubscribed (
    member TEXT PRIMARY KEY,
    at     INTEGER NOT NULL
) WITHOUT ROWID;
