//! Leases on SQLite (one writer: reads inside a write need no lock).

use rusqlite::{params, OptionalExtension, Row};

use super::{err, exec, SqliteTx};
use crate::domain::lease::Lease;
use crate::domain::time::Timestamp;
use crate::store::tx::LeaseRows;
use crate::store::Result;

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

    fn leases(&mut self) -> Result<Vec<Lease>> {
        let mut stmt = self
            .c
            .prepare_cached("SELECT name, holder, token, expires_at FROM leases ORDER BY name")
            .map_err(err)?;
        let rows = stmt.query_map([], lease).map_err(err)?;
        rows.collect::<rusqlite::Result<_>>().map_err(err)
    }
}
