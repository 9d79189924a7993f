//! Leases on PostgreSQL. Inside a write, the lease's row is created free if absent and then locked
//! (`FOR UPDATE`), so instances asking at once are served one after the other and only one wins.

use tokio_postgres::Row;

use super::{get, PgTx};
use crate::domain::lease::Lease;
use crate::domain::time::Timestamp;
use crate::store::tx::LeaseRows;
use crate::store::Result;

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
}
