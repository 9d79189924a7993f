-- Change events (domain::change): PagerDuty's Change Events API, shown on the timelines of the tickets
-- of the same system. Times in ms since the epoch; `details` and `links` are JSON text, as on SQLite.
CREATE TABLE changes (
    id             BIGSERIAL PRIMARY KEY,
    source         TEXT NOT NULL,
    payload_source TEXT,
    summary        TEXT NOT NULL,
    at             BIGINT NOT NULL,
    received_at    BIGINT NOT NULL,
    attach_until   BIGINT NOT NULL,
    details        TEXT NOT NULL,
    links          TEXT NOT NULL
);
-- Openings look for the changes still in their window; retention deletes by receipt.
CREATE INDEX changes_attach_until ON changes (attach_until);
CREATE INDEX changes_received_at ON changes (received_at);
