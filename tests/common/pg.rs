//! A fresh PostgreSQL database per test, on the server `scripts/postgres.sh` found or started.
//!
//! The admin URL is `TOCSIN_TEST_POSTGRES` (scripts/test sets it: a server given there, the one on
//! 127.0.0.1:5432, or a throwaway server), else [`DEFAULT_ADMIN_URL`] for a plain `cargo test`.
//! [`TestDatabase::create`] makes a database of its own for the calling test (so tests run in
//! parallel on one server) and dropping it drops the database.
//!
//! This uses the synchronous `postgres` crate, on a plain thread of its own for every call: the few
//! statements run here are simpler to read without async, psql is not needed on the machine (a
//! PostgreSQL service container in CI has none outside), and a thread of its own means the crate's
//! internal runtime never nests inside a `#[tokio::test]` runtime (which would panic). So
//! `TestDatabase::create()` and its drop work in sync and async tests alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};

/// The server used when `TOCSIN_TEST_POSTGRES` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Every test database's name starts with this; the rest is `<unix secs>_<pid>_<counter>`.
pub const PREFIX: &str = "tocsin_t_";
/// Test databases older than this are leftovers of killed runs, dropped by the next run.
pub const LEFTOVER_AFTER_SECS: u64 = 6 * 3600;

/// The URL of the server's admin database (a superuser that may create databases).
pub fn admin_url() -> String {
    match std::env::var("TOCSIN_TEST_POSTGRES") {
        Ok(url) if url == "throwaway" => panic!(
            "TOCSIN_TEST_POSTGRES=throwaway asks scripts/test to start a throwaway server; \
             run the tests through scripts/test"
        ),
        Ok(url) if !url.is_empty() => url,
        _ => DEFAULT_ADMIN_URL.to_string(),
    }
}

/// A database of the calling test's own, dropped (with `WITH (FORCE)`, closing any connections left)
/// when this is dropped.
pub struct TestDatabase {
    /// Connection URL of the database (the admin URL with the database name replaced).
    pub url: String,
    /// The database's name, `tocsin_t_<unix secs>_<pid>_<counter>`.
    pub name: String,
    admin: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database (from template0, UTF8, C collation so results do not depend on
    /// the server's locale). The first call in a process also drops leftover test databases older than
    /// [`LEFTOVER_AFTER_SECS`].
    pub fn create() -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static LEFTOVERS: Once = Once::new();
        let admin = admin_url();
        let name = format!(
            "{PREFIX}{}_{}_{}",
            unix_now(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let url = with_database(&admin, &name);
        on_own_thread(|| {
            let mut client = connect_admin(&admin);
            LEFTOVERS.call_once(|| {
                drop_leftover_databases(&mut client);
            });
            client
                .batch_execute(&format!(
                    "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' \
                     LC_COLLATE 'C' LC_CTYPE 'C'"
                ))
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on {admin}: {e}"));
        });
        TestDatabase { url, name, admin }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (&self.admin, &self.name);
        let dropped = on_own_thread(|| {
            Client::connect(admin, NoTls)?
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        });
        // No panic here: a panic while a failing test unwinds would abort and hide its message. A
        // database left behind is dropped by a later run once it is old enough.
        if let Err(e) = dropped {
            eprintln!("warning: could not drop test database {name}: {e}");
        }
    }
}

/// Drops the test databases (named `tocsin_t_<secs>_...`) created more than [`LEFTOVER_AFTER_SECS`]
/// ago: leftovers of runs that were killed, so a shared server does not fill up. Returns their names.
pub fn drop_leftover_databases(admin: &mut Client) -> Vec<String> {
    let now = unix_now();
    let rows = admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&PREFIX],
        )
        .expect("listing test databases");
    let mut dropped = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let created = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|t| now.saturating_sub(t) > LEFTOVER_AFTER_SECS) {
            // Another run may be dropping it at the same moment: IF EXISTS, and errors ignored.
            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if admin.batch_execute(&sql).is_ok() {
                dropped.push(name);
            }
        }
    }
    dropped
}

/// A connection to the admin database, with a hint when there is no server.
pub fn connect_admin(admin: &str) -> Client {
    Client::connect(admin, NoTls).unwrap_or_else(|e| {
        panic!(
            "no PostgreSQL at {admin} ({e}); run the tests with scripts/test, which finds or starts \
             one, or set TOCSIN_TEST_POSTGRES to a server's admin URL"
        )
    })
}

/// Runs `f` on a thread of its own (see the module docs) and returns its result; its panic is ours.
pub fn on_own_thread<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `url` with its database replaced by `name`: the path of a `postgres://` URL, or a `dbname` added
/// to a `key=value` connection string (a later key wins).
pub fn with_database(url: &str, name: &str) -> String {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return format!("{url} dbname={name}");
    };
    let scheme = &url[..url.len() - rest.len()];
    let (before_query, query) = match rest.find('?') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = before_query.split('/').next().unwrap_or_default();
    format!("{scheme}{authority}/{name}{query}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs()
}
