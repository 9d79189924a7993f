-- The instances sharing this database, each heartbeating (see cluster.rs), for `/api/cluster` and the
-- fair share of leases.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    version      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
