-- Journal rows that could not be decoded or applied, kept verbatim for an admin to retry or delete.
CREATE TABLE dead_journal (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    journal_id  INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    buried_at   INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    alert       TEXT NOT NULL
);
