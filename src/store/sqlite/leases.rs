//! Leases and instances on SQLite (one writer: reads inside a write need no lock).

use rusqlite::{params, OptionalExtension, Row};

use super::{err, exec, SqliteTx};
use crate::domain::lease::{Fence, Lease};
use crate::domain::time::Timestamp;
use crate::store::tx::LeaseRows;
use crate::store::{Instance, Result};

fn lease(r: &Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        name: r.get(0)?,
        holder: r.get(1)?,
        token: r.get(2)?,
        expires_at: Timestamp::from_millis(r.get(3)?),
    })
}

impl LeaseRows for SqliteTx<'_> {
    fn lease(&mut self, name: &str) -> Result<Option<Lease>> {
        self.c
            .prepare_cached("SELECT name, holder, token, expires_at FROM leases WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], lease).optional())
            .map_err(err)
    }

    fn put_lease(&mut self, l: &Lease) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO leases (name, holder, token, expires_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET holder = ?2, token = ?3, expires_at = ?4",
            params![l.name, l.holder, l.token, l.expires_at.as_millis()],
        )
        .map(|_| ())
    }

    fn renew_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<Lease>> {
        self.c
            .prepare_cached(
                "UPDATE leases SET expires_at = ?4 WHERE name = ?1 AND holder = ?2 AND holder <> '' \
                 AND expires_at > ?3 RETURNING name, holder, token, expires_at",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![name, holder, now.as_millis(), expires_at.as_millis()],
                    lease,
                )
                .optional()
            })
            .map_err(err)
    }

    fn leases(&mut self) -> Result<Vec<Lease>> {
        let mut stmt = self
            .c
            .prepare_cached("SELECT name, holder, token, expires_at FROM leases ORDER BY name")
            .map_err(err)?;
        let rows = stmt.query_map([], lease).map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn fence_holds(&mut self, f: &Fence) -> Result<bool> {
        self.c
            .prepare_cached("SELECT 1 FROM leases WHERE name = ?1 AND holder = ?2 AND token = ?3")
            .and_then(|mut s| s.exists(params![f.lease, f.holder, f.token]))
            .map_err(err)
    }

    fn put_instance(&mut self, i: &Instance) -> Result<()> {
        exec(
            self.c,
            "INSERT INTO instances (id, address, version, started_at, heartbeat_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO UPDATE SET address = ?2, \
             version = ?3, started_at = ?4, heartbeat_at = ?5",
            params![
                i.id,
                i.address,
                i.version,
                i.started_at.as_millis(),
                i.heartbeat_at.as_millis()
            ],
        )
        .map(|_| ())
    }

    fn instances(&mut self) -> Result<Vec<Instance>> {
        let mut stmt = self
            .c
            .prepare_cached(
                "SELECT id, address, version, started_at, heartbeat_at FROM instances ORDER BY id",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Instance {
                    id: r.get(0)?,
                    address: r.get(1)?,
                    version: r.get(2)?,
                    started_at: Timestamp::from_millis(r.get(3)?),
                    heartbeat_at: Timestamp::from_millis(r.get(4)?),
                })
            })
            .map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }

    fn delete_instances(&mut self, before: Timestamp) -> Result<usize> {
        exec(
            self.c,
            "DELETE FROM instances WHERE heartbeat_at < ?1",
            params![before.as_millis()],
        )
    }
}
