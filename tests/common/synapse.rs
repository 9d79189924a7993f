//! A real Synapse homeserver for tests: started from the venv `scripts/fetch-synapse.sh` installs, on a
//! free loopback port, with SQLite in a temporary directory, and killed when dropped.
//!
//! The helpers drive it through the client-server API the way a person's client would (register, log
//! in, create and join rooms, read messages, threads, notifications and presence), so tests can check
//! what tocsin's Matrix sink really produced.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use reqwest::{Method, Url};
use serde_json::{json, Value};

/// The pinned release (see `scripts/fetch-synapse.sh`).
pub const VERSION: &str = "1.163.2";

/// How long Synapse may take to answer its first request. It starts in about 2 s on an idle machine;
/// the bound is generous because tests run in parallel with a compiler on two cores.
const STARTUP_LIMIT: Duration = Duration::from_secs(90);

/// A user with a logged-in device.
#[derive(Debug, Clone)]
pub struct User {
    /// `@name:localhost`.
    pub user_id: String,
    pub access_token: String,
}

/// A running homeserver. Dropping it kills the process and removes its files.
pub struct Synapse {
    // Declared first so it drops (killing Synapse) before the directory it writes to is removed.
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    client: reqwest::Client,
    /// Users registered through [`Synapse::register`], so helpers that act as a user by id can.
    users: std::sync::Mutex<Vec<User>>,
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The venv's directory, checked, with the command that makes it when it is missing.
pub fn venv() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/synapse/venv");
    assert!(
        venv.join("bin/python").exists(),
        "{} is missing: run scripts/fetch-synapse.sh to install Synapse {VERSION} (scripts/test does it for you)",
        venv.display()
    );
    venv
}

fn secret() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

impl Synapse {
    /// Starts a fresh homeserver named `localhost` and waits until it answers.
    pub async fn start() -> Synapse {
        let venv = venv();
        // The port is picked before Synapse binds it, so another process can take it in between: try a
        // few times when Synapse exits early.
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temporary directory for Synapse");
            let port = free_port();
            std::fs::write(dir.path().join("homeserver.yaml"), config(dir.path(), port))
                .expect("write homeserver.yaml");
            let log = std::fs::File::create(dir.path().join("synapse.log")).expect("synapse.log");
            let child = Command::new(venv.join("bin/python"))
                .args(["-m", "synapse.app.homeserver", "-c"])
                .arg(dir.path().join("homeserver.yaml"))
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("synapse.log"))
                .stderr(log)
                .spawn()
                .expect("start Synapse");
            let mut synapse = Synapse {
                child: Some(child),
                port,
                dir,
                client: reqwest::Client::new(),
                users: Default::default(),
            };
            match synapse.wait_ready().await {
                Ok(()) => return synapse,
                Err(log) => last_log = log,
            }
        }
        panic!("Synapse exited during startup three times; its last log:\n{last_log}");
    }

    /// Polls `/_matrix/client/versions` until it answers. `Err` with the log when Synapse exited; panics
    /// when it is still not answering after [`STARTUP_LIMIT`].
    async fn wait_ready(&mut self) -> Result<(), String> {
        let url = format!("{}/_matrix/client/versions", self.homeserver_url());
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if let Ok(r) = self.client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            let child = self.child.as_mut().expect("child");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("(exit {status})\n{}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "Synapse did not answer {url} within {STARTUP_LIMIT:?}; its log:\n{}",
                self.log()
            );
            // Synapse is an external process with its own schedule: polling is the only way to know.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:PORT`, for a sink's `homeserver`.
    pub fn homeserver_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The generated `homeserver.yaml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("homeserver.yaml")
    }

    /// What Synapse has logged so far (its stdout and stderr), for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("synapse.log")).unwrap_or_default();
        // The end is where the reason is; the whole log can be long.
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Creates a user with `register_new_matrix_user` (the shared-secret registration Synapse ships),
    /// then logs in with the password for an access token.
    pub async fn register(&self, user: &str, password: &str, admin: bool) -> User {
        let output = tokio::process::Command::new(venv().join("bin/register_new_matrix_user"))
            .args(["-u", user, "-p", password])
            .arg(if admin { "--admin" } else { "--no-admin" })
            .arg("-c")
            .arg(self.config_path())
            .arg(self.homeserver_url())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run register_new_matrix_user");
        assert!(
            output.status.success(),
            "register_new_matrix_user {user} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let user = self.login(user, password).await;
        self.users.lock().unwrap().push(user.clone());
        user
    }

    /// A password login: a new device and access token for an existing user.
    pub async fn login(&self, user: &str, password: &str) -> User {
        let v = self
            .call(
                None,
                Method::POST,
                "/_matrix/client/v3/login",
                Some(json!({
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": user},
                    "password": password,
                })),
            )
            .await;
        User {
            user_id: v["user_id"].as_str().expect("user_id").to_string(),
            access_token: v["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
        }
    }

    /// A private room owned by `owner`, with `invite` invited (they still have to [`Synapse::join`]).
    pub async fn create_room(&self, owner: &User, invite: &[&User]) -> String {
        let invite: Vec<&str> = invite.iter().map(|u| u.user_id.as_str()).collect();
        let v = self
            .call(
                Some(owner),
                Method::POST,
                "/_matrix/client/v3/createRoom",
                Some(json!({"preset": "private_chat", "invite": invite})),
            )
            .await;
        v["room_id"].as_str().expect("room_id").to_string()
    }

    pub async fn join(&self, user: &User, room_id: &str) {
        let path = url_path(&["_matrix", "client", "v3", "rooms", room_id, "join"]);
        self.call(Some(user), Method::POST, &path, Some(json!({})))
            .await;
    }

    /// Sends `content` as an `m.room.message` from `user`; returns the event ID.
    pub async fn send_message(&self, user: &User, room_id: &str, content: Value) -> String {
        let path = url_path(&[
            "_matrix",
            "client",
            "v3",
            "rooms",
            room_id,
            "send",
            "m.room.message",
            &secret(),
        ]);
        let v = self
            .call(Some(user), Method::PUT, &path, Some(content))
            .await;
        v["event_id"].as_str().expect("event_id").to_string()
    }

    /// A text message typed in the room's main timeline.
    pub async fn say(&self, user: &User, room_id: &str, body: &str) -> String {
        self.send_message(user, room_id, json!({"msgtype": "m.text", "body": body}))
            .await
    }

    /// A text message in the thread under `root`, as Element sends it (with the reply fallback for
    /// clients without threads).
    pub async fn say_in_thread(
        &self,
        user: &User,
        room_id: &str,
        root: &str,
        body: &str,
    ) -> String {
        let content = json!({
            "msgtype": "m.text",
            "body": body,
            "m.relates_to": {
                "rel_type": "m.thread",
                "event_id": root,
                "is_falling_back": true,
                "m.in_reply_to": {"event_id": root},
            },
        });
        self.send_message(user, room_id, content).await
    }

    /// The room's timeline as `user` sees it (the last 100 events, any type), oldest first.
    pub async fn events(&self, user: &User, room_id: &str) -> Vec<Value> {
        let path = url_path(&["_matrix", "client", "v3", "rooms", room_id, "messages"]);
        let v = self
            .call(
                Some(user),
                Method::GET,
                &format!("{path}?dir=b&limit=100"),
                None,
            )
            .await;
        let mut chunk = v["chunk"].as_array().cloned().unwrap_or_default();
        chunk.reverse();
        chunk
    }

    /// The `m.room.message` events of the room (edits included, as their own events), oldest first.
    pub async fn messages(&self, user: &User, room_id: &str) -> Vec<Value> {
        self.events(user, room_id)
            .await
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .collect()
    }

    /// The replies in the thread under `root`, oldest first.
    pub async fn thread(&self, user: &User, room_id: &str, root: &str) -> Vec<Value> {
        let path = url_path(&[
            "_matrix",
            "client",
            "v1",
            "rooms",
            room_id,
            "relations",
            root,
            "m.thread",
        ]);
        let v = self
            .call(
                Some(user),
                Method::GET,
                &format!("{path}?dir=f&limit=100"),
                None,
            )
            .await;
        v["chunk"].as_array().cloned().unwrap_or_default()
    }

    /// The events that notified `user` under their push rules, newest first (what would ping them).
    pub async fn notifications(&self, user: &User) -> Vec<Value> {
        let v = self
            .call(
                Some(user),
                Method::GET,
                "/_matrix/client/v3/notifications?limit=100",
                None,
            )
            .await;
        v["notifications"].as_array().cloned().unwrap_or_default()
    }

    /// Sets the user's own presence: `online`, `unavailable` or `offline`.
    ///
    /// Synapse's timers still apply: without a `/sync`, an `online` user turns `offline` after about
    /// 30 s, and an active one `unavailable` after 5 minutes idle.
    pub async fn set_presence(&self, user: &User, presence: &str) {
        let path = url_path(&[
            "_matrix",
            "client",
            "v3",
            "presence",
            &user.user_id,
            "status",
        ]);
        self.call(
            Some(user),
            Method::PUT,
            &path,
            Some(json!({"presence": presence})),
        )
        .await;
    }

    /// A user's presence (`online`, `unavailable`, `offline`) as they see it themselves. The user must
    /// have been registered through [`Synapse::register`] on this server.
    pub async fn presence(&self, user_id: &str) -> String {
        let me = self
            .users
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.user_id == user_id)
            .cloned()
            .unwrap_or_else(|| panic!("{user_id} was not registered through this harness"));
        self.presence_as(&me, user_id).await
    }

    /// A user's presence as `viewer` sees it. Synapse only shows presence to users sharing a room.
    pub async fn presence_as(&self, viewer: &User, user_id: &str) -> String {
        let path = url_path(&["_matrix", "client", "v3", "presence", user_id, "status"]);
        let v = self.call(Some(viewer), Method::GET, &path, None).await;
        v["presence"].as_str().expect("presence").to_string()
    }

    /// One client-server API call that must succeed; returns the JSON answer. `path` starts with `/`
    /// and is already encoded (see [`url_path`]).
    pub async fn call(
        &self,
        user: Option<&User>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, v) = self.try_call(user, method.clone(), path, body).await;
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {v}"
        );
        v
    }

    /// Like [`Synapse::call`], but hands back the status instead of checking it.
    pub async fn try_call(
        &self,
        user: Option<&User>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.homeserver_url()));
        if let Some(user) = user {
            request = request.bearer_auth(&user.access_token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// `/a/b/c` with each segment percent-encoded (room IDs hold `!` and `:`, event IDs `$`, user IDs `@`).
pub fn url_path(segments: &[&str]) -> String {
    let mut url = Url::parse("http://x/").expect("base URL");
    url.path_segments_mut()
        .expect("a base URL")
        .pop_if_empty()
        .extend(segments);
    url.path().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The homeserver's config: loopback only, SQLite, no federation or phoning home, registration only
/// through the shared secret, and rate limits high enough that tests are never throttled by accident.
fn config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    // JSON is YAML, and serde_json quotes paths and secrets correctly.
    let config = json!({
        "server_name": "localhost",
        "pid_file": format!("{dir}/homeserver.pid"),
        "listeners": [{
            "port": port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": false,
            "x_forwarded": false,
            "resources": [{"names": ["client"], "compress": false}],
        }],
        "database": {"name": "sqlite3", "args": {"database": format!("{dir}/homeserver.db")}},
        "media_store_path": format!("{dir}/media_store"),
        // Synapse makes the signing key on first start when the file is missing.
        "signing_key_path": format!("{dir}/localhost.signing.key"),
        "registration_shared_secret": secret(),
        "macaroon_secret_key": secret(),
        "form_secret": secret(),
        "report_stats": false,
        "enable_registration": false,
        // The default trusts matrix.org, which a test must never reach.
        "trusted_key_servers": [],
        "suppress_key_server_warning": true,
        "presence": {"enabled": true},
        // Defaults are per user and tiny (rc_message: 0.2/s, burst 10); the bots post in bursts here.
        "rc_message": {"per_second": 1000, "burst_count": 1000},
        "rc_login": {
            "address": {"per_second": 1000, "burst_count": 1000},
            "account": {"per_second": 1000, "burst_count": 1000},
            "failed_attempts": {"per_second": 1000, "burst_count": 1000},
        },
        "rc_registration": {"per_second": 1000, "burst_count": 1000},
        "rc_joins": {
            "local": {"per_second": 1000, "burst_count": 1000},
            "remote": {"per_second": 1000, "burst_count": 1000},
        },
        "rc_invites": {
            "per_room": {"per_second": 1000, "burst_count": 1000},
            "per_user": {"per_second": 1000, "burst_count": 1000},
        },
        "rc_presence": {"per_user": {"per_second": 1000, "burst_count": 1000}},
    });
    serde_json::to_string_pretty(&config).expect("config as JSON")
}
