//! The PostgreSQL test harness itself (tests/common/pg.rs): every test database is a fresh one of its
//! own, usable, separate from the others, and gone once dropped; leftovers of killed runs are cleaned
//! up; and it works inside a tokio test too. Runs against whatever scripts/test picked (see
//! scripts/postgres.sh).

#[path = "common/pg.rs"]
mod pg;

use pg::{admin_url, connect_admin, on_own_thread, with_database, TestDatabase, PREFIX};
use postgres::{Client, NoTls};

fn exists(name: &str) -> bool {
    let mut admin = connect_admin(&admin_url());
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .unwrap();
    row.get::<_, i64>(0) == 1
}

#[test]
fn each_test_database_is_its_own_usable_and_dropped() {
    let a = TestDatabase::create();
    let b = TestDatabase::create();
    assert_ne!(a.name, b.name);
    assert_ne!(a.url, b.url);
    assert!(a.name.starts_with(PREFIX), "{}", a.name);

    for (db, id) in [(&a, 1_i32), (&b, 2)] {
        let mut client = Client::connect(&db.url, NoTls).unwrap();
        let row = client
            .query_one(
                "SELECT current_database(), pg_encoding_to_char(encoding) \
                 FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), db.name);
        assert_eq!(row.get::<_, String>(1), "UTF8");
        client
            .batch_execute("CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)")
            .unwrap();
        client
            .execute(
                "INSERT INTO notes VALUES ($1, $2)",
                &[&id, &format!("note {id} ✓")],
            )
            .unwrap();
    }
    // Each database holds only its own row: same table name, separate data.
    for (db, id) in [(&a, 1_i32), (&b, 2)] {
        let mut client = Client::connect(&db.url, NoTls).unwrap();
        let rows = client.query("SELECT id, body FROM notes", &[]).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].get::<_, i32>(0), id);
        assert_eq!(rows[0].get::<_, String>(1), format!("note {id} ✓"));
    }

    // Dropping drops the database, even with a connection still open to it.
    let (a_name, b_name) = (a.name.clone(), b.name.clone());
    let _open = Client::connect(&a.url, NoTls).unwrap();
    assert!(exists(&a_name) && exists(&b_name));
    drop(a);
    drop(b);
    assert!(!exists(&a_name), "{a_name} still exists");
    assert!(!exists(&b_name), "{b_name} still exists");
}

#[test]
fn leftovers_of_killed_runs_are_dropped_recent_ones_kept() {
    let mut admin = connect_admin(&admin_url());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let pid = std::process::id();
    let old = format!("{PREFIX}{}_{pid}_900", now - 7 * 3600);
    let recent = format!("{PREFIX}{}_{pid}_901", now - 3600);
    for name in [&old, &recent] {
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE template0"))
            .unwrap();
    }

    // (Another test's first TestDatabase::create may drop `old` first: only its absence is checked.)
    let dropped = pg::drop_leftover_databases(&mut admin);
    assert!(!dropped.contains(&recent), "{dropped:?}");
    assert!(!exists(&old));
    assert!(exists(&recent));
    admin
        .batch_execute(&format!("DROP DATABASE \"{recent}\""))
        .unwrap();
}

#[tokio::test]
async fn works_inside_a_tokio_test() {
    let db = TestDatabase::create();
    let url = db.url.clone();
    let n: i32 = tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(&url, NoTls).unwrap();
        client.query_one("SELECT 40 + 2", &[]).unwrap().get(0)
    })
    .await
    .unwrap();
    assert_eq!(n, 42);
    let name = db.name.clone();
    drop(db);
    assert!(!on_own_thread(|| exists(&name)));
}

#[test]
fn the_database_name_replaces_the_url_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h:1?sslmode=disable", "x"),
        "postgresql://u:p@h:1/x?sslmode=disable"
    );
    assert_eq!(
        with_database("host=h user=postgres dbname=test", "x"),
        "host=h user=postgres dbname=test dbname=x"
    );
}
