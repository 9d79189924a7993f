//! Leases: taken, renewed and let go inside one transaction, decided by `domain::lease`.

use super::Tx;
use crate::domain::lease::{self, Lease};
use crate::domain::time::Timestamp;
use crate::store::Result;

/// `Store::acquire_lease`.
pub fn acquire(
    tx: &mut dyn Tx,
    name: &str,
    holder: &str,
    ttl_ms: i64,
    now: Timestamp,
) -> Result<Option<Lease>> {
    // The common case first: the holder renewing, without waiting for its own fenced writes.
    let expires_at = Timestamp::from_millis(now.as_millis().saturating_add(ttl_ms.max(1)));
    if let Some(renewed) = tx.renew_lease(name, holder, now, expires_at)? {
        return Ok(Some(renewed));
    }
    let current = tx.lease(name)?;
    match lease::claim(current.as_ref(), name, holder, now, ttl_ms) {
        Some(next) => {
            tx.put_lease(&next)?;
            Ok(Some(next))
        }
        None => Ok(None),
    }
}

/// `Store::release_lease`.
pub fn release(tx: &mut dyn Tx, name: &str, holder: &str) -> Result<()> {
    if let Some(current) = tx.lease(name)? {
        let next = lease::release(&current, holder);
        if next != current {
            tx.put_lease(&next)?;
        }
    }
    Ok(())
}
