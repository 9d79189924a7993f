//! Plugins' key-value stores on PostgreSQL: one row per plugin and key.

use std::collections::BTreeMap;

use super::{get, PgTx};
use crate::domain::time::Timestamp;
use crate::store::tx::PluginRows;
use crate::store::{KvChange, KvEntry, Result};

impl PluginRows for PgTx<'_> {
    fn plugin_kv(&mut self, plugin: &str, now: Timestamp) -> Result<Vec<KvEntry>> {
        self.query(
            "SELECT key, value, expires_at FROM plugin_kv \
             WHERE plugin = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY key",
            &[&plugin, &now.as_millis()],
        )?
        .iter()
        .map(|r| {
            Ok(KvEntry {
                key: get(r, 0)?,
                value: get(r, 1)?,
                expires_at: get::<Option<i64>>(r, 2)?.map(Timestamp::from_millis),
            })
        })
        .collect()
    }

    fn put_plugin_kv(&mut self, plugin: &str, e: &KvEntry) -> Result<()> {
        self.exec(
            "INSERT INTO plugin_kv (plugin, key, value, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plugin, key) DO UPDATE SET value = $3, expires_at = $4",
            &[
                &plugin,
                &e.key,
                &e.value,
                &e.expires_at.map(|t| t.as_millis()),
            ],
        )
        .map(|_| ())
    }

    fn delete_plugin_kv(&mut self, plugin: &str, key: &str) -> Result<()> {
        self.exec(
            "DELETE FROM plugin_kv WHERE plugin = $1 AND key = $2",
            &[&plugin, &key],
        )
        .map(|_| ())
    }

    fn change_plugin_kv(&mut self, plugin: &str, changes: &[KvChange]) -> Result<()> {
        // Each key's last change is what applying them in order leaves; the puts and the deletes
        // are then on different keys, and one statement each (an upsert may not touch a row twice).
        let mut last: BTreeMap<&str, &KvChange> = BTreeMap::new();
        for change in changes {
            let key = match change {
                KvChange::Put(entry) => entry.key.as_str(),
                KvChange::Delete(key) => key.as_str(),
            };
            last.insert(key, change);
        }
        let (mut keys, mut values, mut expires, mut gone) = (vec![], vec![], vec![], vec![]);
        for (key, change) in last {
            match change {
                KvChange::Put(entry) => {
                    keys.push(key);
                    values.push(entry.value.as_str());
                    expires.push(entry.expires_at.map(|t| t.as_millis()));
                }
                KvChange::Delete(_) => gone.push(key),
            }
        }
        if !keys.is_empty() {
            self.exec(
                "INSERT INTO plugin_kv (plugin, key, value, expires_at) \
                 SELECT $1, k, v, x FROM unnest($2::text[], $3::text[], $4::int8[]) AS u(k, v, x) \
                 ON CONFLICT (plugin, key) DO UPDATE \
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
                &[&plugin, &keys, &values, &expires],
            )?;
        }
        if !gone.is_empty() {
            self.exec(
                "DELETE FROM plugin_kv WHERE plugin = $1 AND key = ANY($2)",
                &[&plugin, &gone],
            )?;
        }
        Ok(())
    }

    fn delete_expired_plugin_kv(&mut self, plugin: &str, now: Timestamp) -> Result<usize> {
        self.exec(
            "DELETE FROM plugin_kv WHERE plugin = $1 AND expires_at <= $2",
            &[&plugin, &now.as_millis()],
        )
        .map(|n| n as usize)
    }
}
