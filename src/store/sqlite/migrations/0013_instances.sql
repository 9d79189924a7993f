-- The instances sharing this database, each heartbeating (see cluster.rs). On SQLite there is one, but
-- the store contract is the same on every backend.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) WITHOUT ROWID;
