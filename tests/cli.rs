//! The `tocsin` binary: `check` names the bad key, `serve` answers and stops cleanly on SIGTERM.

mod common;

use std::process::Command;

use common::Server;

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `tocsin check` on a config; returns the exit code and stderr.
fn check(cfg: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(cfg)
        .env_remove("TOCSIN_CLI_TEST_UNSET")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_names_the_bad_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "bad.yaml",
        "listen: 127.0.0.1:9077\nsources:\n  prom:\n    kind: prometheus\n    resolve_timout: 5m\n",
    );
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("line 5: sources.prom: unknown field `resolve_timout`"),
        "{err}"
    );

    let cfg = write(
        dir.path(),
        "many.yaml",
        "public_url: nope\nsources:\n  am:\n    kind: alertmanager\n    resolve_timeout: 1m\n",
    );
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(1));
    assert!(err.contains("2 problems"), "{err}");
    assert!(err.contains("line 1: public_url:"), "{err}");
    assert!(err.contains("line 5: sources.am.resolve_timeout:"), "{err}");

    let cfg = write(
        dir.path(),
        "env.yaml",
        "sources:\n  g: {kind: generic, auth: {token: \"${TOCSIN_CLI_TEST_UNSET}\"}}\n",
    );
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(1));
    assert!(err.contains("TOCSIN_CLI_TEST_UNSET is not set"), "{err}");
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(BIN)
        .args(["check", "--config", "config/tocsin.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 sources, 1 members)"));
}

#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!(
            "listen: 127.0.0.1:0\nstorage: sqlite://{}/t.db\nsources:\n  g: {{kind: generic}}\nlog: {{format: json}}\n",
            dir.path().display()
        ),
    );
    let server = Server::start(&cfg);
    let addr = server.addr.clone();
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{addr}/ingest/g"))
        .json(&serde_json::json!({"title": "t", "status": "firing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let (code, rest) = server.terminate();
    assert_eq!(code, Some(0), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("tocsin stopped cleanly.")),
        "{rest:?}"
    );
}
