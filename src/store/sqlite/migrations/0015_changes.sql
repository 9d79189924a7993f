-- Change events (domain::change): PagerDuty's Change Events API, shown on the timelines of the tickets
-- of the same system. Times in ms since the epoch; `details` and `links` are JSON text.
CREATE TABLE changes (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    source         TEXT NOT NULL,
    payload_source TEXT,
    summary        TEXT NOT NULL,
    at             INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    attach_until   INTEGER NOT NULL,
    details        TEXT NOT NULL,
    links          TEXT NOT NULL
);
-- Openings look for the changes still in their window; retention deletes by receipt.
CREATE INDEX changes_attach_until ON changes (attach_until);
CREATE INDEX changes_received_at ON changes (received_at);
