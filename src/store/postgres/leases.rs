//! Leases and instances on PostgreSQL. Inside a write, the lease's row is created free if absent and then locked
//! (`FOR UPDATE`), so instances asking at once are served one after the other and only one wins.

use tokio_postgres::Row;

use super::{get, PgTx};
use crate::domain::lease::{Fence, Lease};
use crate::domain::time::Timestamp;
use crate::store::tx::LeaseRows;
use crate::store::{Instance, Result};

fn lease(r: &Row) -> Result<Lease> {
    Ok(Lease {
        name: get(r, 0)?,
        holder: get(r, 1)?,
        token: get(r, 2)?,
        expires_at: Timestamp::from_millis(get(r, 3)?),
    })
}

impl LeaseRows for PgTx<'_> {
    fn lease(&mut self, name: &str) -> Result<Option<Lease>> {
        if self.read_only {
            return self
                .query_opt(
                    "SELECT name, holder, token, expires_at FROM leases WHERE name = $1",
                    &[&name],
                )?
                .map(|r| lease(&r))
                .transpose();
        }
        self.exec(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, '', 0, 0) \
             ON CONFLICT (name) DO NOTHING",
            &[&name],
        )?;
        self.query_opt(
            "SELECT name, holder, token, expires_at FROM leases WHERE name = $1 FOR UPDATE",
            &[&name],
        )?
        .map(|r| lease(&r))
        .transpose()
    }

    fn put_lease(&mut self, l: &Lease) -> Result<()> {
        self.exec(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, token = $3, expires_at = $4",
            &[&l.name, &l.holder, &l.token, &l.expires_at.as_millis()],
        )
        .map(|_| ())
    }

    fn leases(&mut self) -> Result<Vec<Lease>> {
        self.query(
            "SELECT name, holder, token, expires_at FROM leases ORDER BY name",
            &[],
        )?
        .iter()
        .map(lease)
        .collect()
    }

    fn fence_holds(&mut self, f: &Fence) -> Result<bool> {
        // FOR SHARE: a takeover (which locks the row FOR UPDATE) waits until this write commits, and a
        // write after a takeover sees the new holder.
        Ok(self
            .query_opt(
                "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND token = $3 FOR SHARE",
                &[&f.lease, &f.holder, &f.token],
            )?
            .is_some())
    }

    fn put_instance(&mut self, i: &Instance) -> Result<()> {
        self.exec(
            "INSERT INTO instances (id, address, version, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET address = $2, \
             version = $3, started_at = $4, heartbeat_at = $5",
            &[
                &i.id,
                &i.address,
                &i.version,
                &i.started_at.as_millis(),
                &i.heartbeat_at.as_millis(),
            ],
        )
        .map(|_| ())
    }

    fn instances(&mut self) -> Result<Vec<Instance>> {
        self.query(
            "SELECT id, address, version, started_at, heartbeat_at FROM instances ORDER BY id",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(Instance {
                id: get(r, 0)?,
                address: get(r, 1)?,
                version: get(r, 2)?,
                started_at: Timestamp::from_millis(get(r, 3)?),
                heartbeat_at: Timestamp::from_millis(get(r, 4)?),
            })
        })
        .collect()
    }

    fn delete_instances(&mut self, before: Timestamp) -> Result<usize> {
        self.exec(
            "DELETE FROM instances WHERE heartbeat_at < $1",
            &[&before.as_millis()],
        )
        .map(|n| n as usize)
    }
}
