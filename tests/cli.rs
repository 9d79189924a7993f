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
fn check_accepts_the_shipped_config_with_real_secrets_only() {
    let run = |token: &str| {
        Command::new(BIN)
            .args(["check", "--config", "config/tocsin.yaml"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("ALICE_TOKEN", format!("{token}-alice-0123456789"))
            .env("AM_TOKEN", format!("{token}-am-0123456789"))
            .env("HOOK_TOKEN", format!("{token}-hook-0123456789"))
            .output()
            .unwrap()
    };
    let out = run("a1b2c3d4");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (3 sources, 1 members)"));

    // The development values scripts/serve uses are refused, each key named.
    let out = run("dev");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "members.alice.token",
        "sources.am.auth.bearer",
        "sources.hooks.auth.token",
    ] {
        assert!(
            err.contains(&format!("{key}: is a development credential")),
            "{err}"
        );
    }

    // With an empty environment nothing falls back to a value in the file.
    let out = Command::new(BIN)
        .args(["check", "--config", "config/tocsin.yaml"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("ALICE_TOKEN")
        .env_remove("AM_TOKEN")
        .env_remove("HOOK_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AM_TOKEN is not set"));
}

#[test]
fn check_never_prints_the_password_of_an_smtp_url() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "smtp.yaml",
        "email:\n  smtp: \"smtp://alerts:hunter2-smtp-password@mail.example.org:587\"\n  \
         from: \"tocsin <alerts@example.org>\"\n  secret: 0123456789abcdef0123456789\n",
    );
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(1));
    assert!(err.contains("email.smtp"), "{err}");
    assert!(err.contains("***@mail.example.org"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn check_refuses_example_values_and_short_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "weak.yaml",
        "sources:\n  a: {kind: generic, auth: {token: example-hook-token}}\n  \
         b: {kind: generic, auth: {basic: {username: u, password: hunter2}}}\n\
         web: {session_secret: change-me-to-a-long-random-secret}\n",
    );
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("sources.a.auth.token: is an example value"),
        "{err}"
    );
    assert!(
        err.contains("sources.b.auth.basic.password: is 7 characters long"),
        "{err}"
    );
    assert!(
        err.contains("web.session_secret: is an example value"),
        "{err}"
    );
}

#[test]
fn serve_refuses_development_credentials_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "public.yaml",
        &format!(
            "listen: 0.0.0.0:0\nstorage: sqlite://{}/t.db\nsources:\n  g: {{kind: generic, auth: {{token: dev-hook-token}}}}\nlog: {{format: json}}\n",
            dir.path().display()
        ),
    );
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sources.g.auth.token"), "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn serve_on_loopback_with_development_credentials_says_so_first() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "dev.yaml",
        &format!(
            "listen: 127.0.0.1:0\nstorage: sqlite://{}/t.db\nsources:\n  g: {{kind: generic, auth: {{token: dev-hook-token}}}}\nlog: {{format: json}}\n",
            dir.path().display()
        ),
    );
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first["level"], "WARN", "{first}");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("DEVELOPMENT CREDENTIALS"),
        "{first}"
    );
    assert!(first["keys"]
        .as_str()
        .unwrap()
        .contains("sources.g.auth.token"));
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

#[tokio::test]
async fn sighup_reloads_plugins_and_compiled_plugins_are_cached() {
    let dir = tempfile::tempdir().unwrap();
    let router = common::dist("severity-router");
    let config = |room: &str| {
        format!(
            "listen: 127.0.0.1:0\nstorage: sqlite://{d}/t.db\nplugin_cache: {d}/cache\nlog: {{format: json}}\n\
             sources:\n  g: {{kind: generic, plugins: [route]}}\n\
             plugins:\n  route: {{path: '{router}', config: {{default_room: {room}}}}}\n\
             rooms:\n  before: {{sink: {{kind: webhook, url: 'http://127.0.0.1:9/before'}}}}\n  \
             after: {{sink: {{kind: webhook, url: 'http://127.0.0.1:9/after'}}}}\n\
             members:\n  a: {{role: admin, token: admin-token-0001}}\n",
            d = dir.path().display()
        )
    };
    let cfg = write(dir.path(), "t.yaml", &config("before"));
    let server = Server::start(&cfg);
    let cached = walk(&dir.path().join("cache"));
    assert!(cached > 0, "the compiled plugin is in the cache");

    std::fs::write(&cfg, config("after")).unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());

    // The server says when the reload is done; the next alert is routed by the reloaded plugin.
    assert!(
        server
            .wait_log("Reloaded plugins.", std::time::Duration::from_secs(60))
            .is_some(),
        "no reload logged"
    );
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    // A live stream tells when the ticket exists: no polling, no sleeping.
    let mut stream = client
        .get(format!("{base}/api/stream"))
        .bearer_auth("admin-token-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let body =
        serde_json::json!({"title": "after the reload", "status": "firing", "severity": "warning"});
    let r = client
        .post(format!("{base}/ingest/g"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut seen = String::new();
    while !seen.contains("opened") {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(60), stream.chunk())
            .await
            .expect("no timeline entry within a minute")
            .unwrap()
            .expect("the stream ended");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let page: serde_json::Value = client
        .get(format!("{base}/api/tickets?limit=1"))
        .bearer_auth("admin-token-0001")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let routed_after = page["tickets"][0]["rooms"] == serde_json::json!(["after"]);
    drop(stream);
    let (code, log) = server.terminate();
    assert!(routed_after, "SIGHUP did not reload the plugin: {log:?}");
    assert_eq!(code, Some(0));
    assert!(
        log.iter().any(|l| l.contains("Reloaded plugins.")),
        "{log:?}"
    );
}

/// Counts the files under a folder.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                if e.path().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

#[tokio::test]
async fn sigterm_ends_live_streams_instead_of_waiting_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!(
            "listen: 127.0.0.1:0\nstorage: sqlite://{}/t.db\nlog: {{format: json}}\n\
             members:\n  a: {{role: admin, token: admin-token-0001}}\n",
            dir.path().display()
        ),
    );
    let server = Server::start(&cfg);
    let stream = reqwest::Client::new()
        .get(format!("http://{}/api/stream", server.addr))
        .bearer_auth("admin-token-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    // Graceful shutdown waits for open connections; a live stream must end by itself, or this hangs.
    let pid = server.child.id();
    let stop = tokio::task::spawn_blocking(move || server.terminate());
    let (code, rest) = match tokio::time::timeout(std::time::Duration::from_secs(60), stop).await {
        Ok(done) => done.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("tocsin did not stop while a live stream was open");
        }
    };
    assert_eq!(code, Some(0), "{rest:?}");
    drop(stream);
}
