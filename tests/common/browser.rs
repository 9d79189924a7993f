//! A real headless Chromium driven over the Chrome DevTools Protocol, for the web UI's tests.
//!
//! `Browser::launch()` starts `chromium --headless=new` with a fresh profile and
//! `--remote-debugging-port=0`, reads the port Chromium picked from `<profile>/DevToolsActivePort`,
//! finds the page's websocket in `/json/list` and speaks CDP JSON over it. Waiting happens in the page
//! ([`Browser::wait_for`] polls a JS condition every 50 ms up to a deadline), so tests never sleep.
//! Chromium runs in its own process group, killed on drop. `TOCSIN_CHROMIUM` overrides the binary
//! (default `/usr/bin/chromium`, which `scripts/fetch-chromium.sh` installs).

#![allow(dead_code)] // not every test uses every helper

use std::collections::VecDeque;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long the browser gets to start, answer a command, or meet a condition.
const DEADLINE: Duration = Duration::from_secs(20);

pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    ws: Socket,
    next_id: u64,
    /// CDP events received while waiting for command answers.
    events: VecDeque<Value>,
}

fn chromium() -> PathBuf {
    std::env::var_os("TOCSIN_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

impl Browser {
    pub async fn launch() -> Browser {
        let bin = chromium();
        assert!(
            bin.exists(),
            "{} is missing: run scripts/fetch-chromium.sh (scripts/test does it)",
            bin.display()
        );
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        let child = Command::new(&bin)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-extensions",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group, so drop can end the renderers and helpers along with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut browser_guard = Guard(Some(child));
        let port = wait_port(profile.path(), &mut browser_guard).await;
        let ws_url = page_socket(port).await;
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot open the DevTools websocket {ws_url}: {e}"));
        let mut b = Browser {
            child: browser_guard.0.take().unwrap(),
            profile,
            ws,
            next_id: 0,
            events: VecDeque::new(),
        };
        b.call("Page.enable", json!({})).await;
        b.call("Runtime.enable", json!({})).await;
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        b
    }

    /// Sends one CDP command and returns its result; events that arrive meanwhile are kept.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        // Longer than the page's own deadline in `wait_for`, so that one reports first.
        let deadline = Instant::now() + DEADLINE + Duration::from_secs(10);
        loop {
            let v = self.receive(deadline, method).await;
            if v["id"].as_u64() == Some(id) {
                if let Some(err) = v.get("error") {
                    panic!("CDP {method} failed: {err}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push_back(v);
            }
        }
    }

    async fn receive(&mut self, deadline: Instant, what: &str) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, self.ws.next())
            .await
            .unwrap_or_else(|_| panic!("Chromium did not answer {what} in time"))
            .expect("the DevTools websocket closed")
            .unwrap();
        match msg {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            Message::Binary(b) => serde_json::from_slice(&b).unwrap(),
            _ => Value::Null,
        }
    }

    /// Waits for a CDP event (one that came earlier counts).
    pub async fn wait_event(&mut self, method: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["method"] == method) {
            return self.events.remove(i).unwrap();
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let v = self.receive(deadline, method).await;
            if v["method"] == method {
                return v;
            }
        }
    }

    /// Opens a URL and waits until it (after any redirects) has loaded.
    pub async fn goto(&mut self, url: &str) {
        self.events.clear();
        let r = self.call("Page.navigate", json!({"url": url})).await;
        if let Some(e) = r.get("errorText") {
            panic!("cannot open {url}: {e}");
        }
        self.wait_event("Page.loadEventFired").await;
    }

    /// Runs JS that navigates (submits a form, clicks a link) and waits for the next page's load.
    pub async fn navigate_with(&mut self, js: &str) {
        self.events.clear();
        self.eval(js).await;
        self.wait_event("Page.loadEventFired").await;
    }

    /// Evaluates a JS expression in the page (awaiting promises) and returns its value as JSON.
    pub async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(ex) = r.get("exceptionDetails") {
            panic!(
                "JS threw: {}\n  in: {js}",
                ex["exception"]["description"]
                    .as_str()
                    .unwrap_or(&ex.to_string())
            );
        }
        r["result"]["value"].clone()
    }

    /// Waits until the JS condition (an expression, may be a promise) is truthy, polling it in the page
    /// every 50 ms for up to 20 s. Panics with `what` and the page's text when it never is.
    pub async fn wait_for(&mut self, condition: &str, what: &str) {
        let js = format!(
            "(async () => {{ const deadline = Date.now() + {ms};
               for (;;) {{
                 try {{ if (await (async () => ({condition}))()) return true; }} catch (e) {{}}
                 if (Date.now() > deadline) return false;
                 await new Promise((r) => setTimeout(r, 50));
               }} }})()",
            ms = DEADLINE.as_millis()
        );
        if self.eval(&js).await != Value::Bool(true) {
            let text = self
                .eval("document.body ? document.body.innerText.slice(0, 3000) : ''")
                .await;
            panic!(
                "gave up waiting for {what} ({condition}); the page says:\n{}",
                text.as_str().unwrap_or("")
            );
        }
    }

    /// Types text into the element matching `selector`, as keyboard input.
    pub async fn type_into(&mut self, selector: &str, text: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({s}); if (!e) return false; e.focus(); return true; }})()",
                s = json!(selector)
            ))
            .await;
        assert_eq!(found, Value::Bool(true), "no element matches {selector}");
        self.call("Input.insertText", json!({"text": text})).await;
    }

    /// Clicks the element matching `selector`.
    pub async fn click(&mut self, selector: &str) {
        let found = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({s}); if (!e) return false; e.click(); return true; }})()",
                s = json!(selector)
            ))
            .await;
        assert_eq!(found, Value::Bool(true), "no element matches {selector}");
    }

    /// Writes a PNG of the viewport (the whole page, up to 3,000 px tall).
    pub async fn screenshot(&mut self, path: &Path) {
        use base64::Engine as _;
        let height = self
            .eval("Math.min(3000, Math.max(900, document.documentElement.scrollHeight))")
            .await
            .as_f64()
            .unwrap_or(900.0);
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1}}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Chromium's own log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// Kills a Chromium that has not become a `Browser` yet (launch failed half way).
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            kill_group(c);
        }
    }
}

/// Kills the process group Chromium leads (its renderers and helpers too), then reaps it.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits for Chromium to write the port it listens on into the profile.
async fn wait_port(profile: &Path, child: &mut Guard) -> u16 {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(&file) {
            if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                return port;
            }
        }
        if let Some(Ok(Some(status))) = child.0.as_mut().map(|c| c.try_wait()) {
            panic!(
                "Chromium exited ({status}) before listening:\n{}",
                std::fs::read_to_string(profile.join("chromium.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "Chromium did not write {} in time:\n{}",
            file.display(),
            std::fs::read_to_string(profile.join("chromium.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The websocket of the browser's first page (about:blank).
async fn page_socket(port: u16) -> String {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list: Value = match client
            .get(format!("http://127.0.0.1:{port}/json/list"))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let page = list.as_array().and_then(|targets| {
            targets
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .map(str::to_string)
        });
        if let Some(url) = page {
            return url;
        }
        assert!(
            Instant::now() < deadline,
            "Chromium lists no page target: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
