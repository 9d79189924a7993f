-- Plugins' key-value stores (plugin::Kv), kept so their state survives restarts and follows the
-- journal lease from one instance to another. `expires_at` in ms since the epoch; NULL never expires.
CREATE TABLE plugin_kv (
    plugin     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (plugin, key)
) WITHOUT ROWID;
