//! Plugins' key-value stores on SQLite: one row per plugin and key.

use rusqlite::params;

use super::{err, exec, SqliteTx};
use crate::domain::time::Timestamp;
use crate::store::tx::PluginRows;
use crate::store::{KvEntry, Result};

impl PluginRows for SqliteTx<'_> {
    fn plugin_kv(&mut self, plugin: &str, now: Timestamp) -> Result<Vec<KvEntry>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT key, value, expires_at FROM plugin_kv \
                 WHERE plugin = ?1 AND (expires_at IS NULL OR expires_at > ?2) ORDER BY key",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![plugin, now.as_millis()], |r| {
                Ok(KvEntry {
                    key: r.get(0)?,
                    value: r.get(1)?,
                    expires_at: r.get::<_, Option<i64>>(2)?.map(Timestamp::from_millis),
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn put_plugin_kv(&mut self, plugin: &str, e: &KvEntry) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO plugin_kv (plugin, key, value, expires_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (plugin, key) DO UPDATE SET value = ?3, expires_at = ?4",
            params![plugin, e.key, e.value, e.expires_at.map(|t| t.as_millis())],
        )
        .map(|_| ())
    }

    fn delete_plugin_kv(&mut self, plugin: &str, key: &str) -> Result<()> {
        exec(
            self.c,
            "DELETE FROM plugin_kv WHERE plugin = ?1 AND key = ?2",
            params![plugin, key],
        )
        .map(|_| ())
    }

    fn delete_expired_plugin_kv(&mut self, plugin: &str, now: Timestamp) -> Result<usize> {
        exec(
            self.c,
            "DELETE FROM plugin_kv WHERE plugin = ?1 AND expires_at <= ?2",
            params![plugin, now.as_millis()],
        )
    }
}
