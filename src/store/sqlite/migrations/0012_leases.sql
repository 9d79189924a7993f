-- Leases on shared work, for several instances on one database (on SQLite there is one instance, but
-- the store contract is the same on every backend).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
