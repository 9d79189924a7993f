//! Debian's real Prometheus Alertmanager 0.25 for `benches/versus.rs`: installed by
//! `scripts/fetch-monitoring.sh` (as the tests install it), started through the launcher that script
//! writes (its PID is Alertmanager's) on a config, a storage dir of its own, a free loopback port and
//! no clustering, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `scripts/fetch-monitoring.sh` (cheap when already installed) and returns the launcher,
/// `<repo>/.tools/monitoring/bin/prometheus-alertmanager`.
pub fn install() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("scripts/fetch-monitoring.sh"))
        .current_dir(repo)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/fetch-monitoring.sh");
    assert!(
        out.status.success(),
        "scripts/fetch-monitoring.sh failed ({}): it installs Alertmanager from Debian's packages",
        out.status
    );
    let launcher = repo.join(".tools/monitoring/bin/prometheus-alertmanager");
    assert!(launcher.exists(), "{} is missing", launcher.display());
    launcher
}

/// A running Alertmanager; killed (and its storage removed) when dropped.
pub struct Alertmanager {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts `launcher` on `config` (Alertmanager YAML) and waits until `/-/ready` answers 200.
    pub async fn start(launcher: &Path, config: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let child = Command::new(launcher)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Alertmanager");
        let am = Alertmanager {
            child,
            addr: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let ready = format!("http://{}/-/ready", am.addr);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&ready).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager did not answer 200 on {ready} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        am
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (Alertmanager cannot be told to pick one and say which).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Routes everything to a receiver without integrations: Alertmanager holds the alerts and notifies
/// nobody, as tocsin with no rooms does (the ingest, resend and memory figures).
pub fn config_null() -> String {
    "route: {receiver: blackhole}\nreceivers:\n- name: blackhole\n".to_string()
}

/// Every alert in a group of its own (`group_by: ['...']`), sent at once (`group_wait: 0s`) and never
/// again (long group and repeat intervals, no resolved notifications) to the webhook at `url`.
pub fn config_webhook(url: &str) -> String {
    format!(
        "route: {{receiver: bench, group_by: ['...'], group_wait: 0s, group_interval: 1h, repeat_interval: 1000h}}\n\
         receivers:\n- name: bench\n  webhook_configs:\n  - url: '{url}'\n    send_resolved: false\n"
    )
}
