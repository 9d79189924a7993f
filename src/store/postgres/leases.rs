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
        // Taking a lease over waits for the old holder's fenced writes; not for long: one that stopped
        // mid-write is ended by the server (idle_in_transaction_session_timeout), and the asker tries
        // again at its next round.
        self.exec("SET LOCAL lock_timeout = '2s'", &[])?;
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

    fn renew_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Option<Lease>> {
        // An UPDATE of a non-key column locks the row FOR NO KEY UPDATE, which does not conflict with
        // the FOR KEY SHARE of fenced writes: a renewal never waits for them. A takeover's FOR UPDATE
        // does.
        self.query_opt(
            "UPDATE leases SET expires_at = $4 WHERE name = $1 AND holder = $2 AND holder <> '' \
             AND expires_at > $3 RETURNING name, holder, token, expires_at",
            &[&name, &holder, &now.as_millis(), &expires_at.as_millis()],
        )?
        .map(|r| lease(&r))
        .transpose()
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
        // FOR KEY SHARE: a takeover (which locks the row FOR UPDATE) waits until this write commits,
        // and a write after a takeover sees the new holder; the holder's renewals (FOR NO KEY UPDATE)
        // do not wait for it.
        Ok(self
            .query_opt(
                "SELECT 1 FROM leases WHERE name = $1 AND holder = $2 AND token = $3 FOR KEY SHARE",
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
