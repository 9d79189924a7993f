//! A real SMTP server for tests: aiosmtpd (installed by `scripts/fetch-smtp.sh`) on a loopback port,
//! delivering into a Maildir in a temporary directory, killed when dropped. [`SmtpServer::messages`]
//! reads back what arrived with mail-parser, so tests check what a mail client would see.
//!
//! aiosmtpd's Mailbox handler writes each message to `new/` before it answers 250, so a message is on
//! disk by the time the sender has been told it was accepted: no polling is needed after a send.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, PartType};

/// The pinned release (see `scripts/fetch-smtp.sh`).
pub const VERSION: &str = "1.4.6";

/// How long aiosmtpd may take to accept connections. It starts in well under a second on an idle
/// machine; the bound is generous because tests run in parallel with a compiler on two cores.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// A running aiosmtpd. Dropping it kills the process and removes the Maildir.
pub struct SmtpServer {
    pub port: u16,
    /// The Maildir (with `tmp`, `new` and `cur`) messages are delivered to.
    pub maildir: PathBuf,
    // Declared before `dir` so it drops (killing aiosmtpd) before the directory it writes to goes.
    child: Option<Child>,
    dir: tempfile::TempDir,
}

/// One delivered message, as parsed by mail-parser.
#[derive(Debug, Clone)]
pub struct Received {
    /// Addresses in the `To` header.
    pub to: Vec<String>,
    pub subject: String,
    /// Top-level headers in order, names as sent, values unfolded and trimmed (still RFC 2047-encoded
    /// where the sender encoded them). aiosmtpd adds `X-Peer`, `X-MailFrom` and `X-RcptTo`.
    pub headers: Vec<(String, String)>,
    /// The text/plain part, decoded; empty when there is none.
    pub text: String,
    /// The text/html part, decoded; empty when there is none (never converted from the text part).
    pub html: String,
    /// The whole message as stored.
    pub raw: String,
}

impl Received {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the headers named `name` (case-insensitive).
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The venv's Python, checked, with the command that makes it when it is missing.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/smtp/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/fetch-smtp.sh to install aiosmtpd {VERSION} (scripts/test does it for you)",
        python.display()
    );
    python
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl SmtpServer {
    /// Starts aiosmtpd on a free port.
    pub fn start() -> SmtpServer {
        // The port is picked before aiosmtpd binds it, so another process can take it in between: try a
        // few times when aiosmtpd exits early.
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(free_port()) {
                Ok(server) => return server,
                Err(log) => last = log,
            }
        }
        panic!("aiosmtpd exited during startup three times; its last output:\n{last}");
    }

    /// Starts aiosmtpd on `port`: for tests where the server goes away and comes back on the same
    /// address. The Maildir is a new, empty one.
    pub fn start_on(port: u16) -> SmtpServer {
        Self::try_start(port).unwrap_or_else(|log| {
            panic!("aiosmtpd did not start on port {port}; its output:\n{log}")
        })
    }

    /// `smtp://127.0.0.1:PORT`, for `SmtpSettings::url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn try_start(port: u16) -> Result<SmtpServer, String> {
        let python = python();
        let dir = tempfile::tempdir().expect("temporary directory for aiosmtpd");
        let maildir = dir.path().join("maildir");
        // The Mailbox handler needs all three; without them every message is refused with a 5xx.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("create the Maildir");
        }
        let log = std::fs::File::create(dir.path().join("aiosmtpd.log")).expect("aiosmtpd.log");
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("aiosmtpd.log"))
            .stderr(log)
            .spawn()
            .expect("start aiosmtpd");
        let mut server = SmtpServer {
            port,
            maildir,
            child: Some(child),
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Polls until the port accepts a connection. `Err` with the log when aiosmtpd exited; panics when
    /// it is still not accepting after [`STARTUP_LIMIT`].
    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            let child = self.child.as_mut().expect("child");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!("(exit {status})\n{}", self.log()));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not accept connections on {addr} within {STARTUP_LIMIT:?}; its output:\n{}",
                self.log()
            );
            // aiosmtpd is an external process with its own schedule: polling is the only way to know.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills aiosmtpd (the port stops accepting). The Maildir stays readable until drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Removes the Maildir's `tmp` folder, so aiosmtpd answers every message with a 5xx (the Mailbox
    /// handler writes there first): a server that refuses for good.
    pub fn break_delivery(&self) {
        std::fs::remove_dir_all(self.maildir.join("tmp")).expect("remove maildir/tmp");
    }

    /// What aiosmtpd has printed so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }

    /// Every delivered message, oldest first (by file time, then name: the Maildir names start with the
    /// delivery time, which breaks ties within the file system's timestamp resolution).
    pub fn messages(&self) -> Vec<Received> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> =
            std::fs::read_dir(self.maildir.join("new"))
                .expect("read maildir/new")
                .map(|e| {
                    let e = e.expect("maildir entry");
                    let mtime = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .expect("message mtime");
                    (mtime, e.path())
                })
                .collect();
        files.sort();
        files.into_iter().map(|(_, path)| parse(&path)).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(path: &Path) -> Received {
    let bytes = std::fs::read(path).expect("read a delivered message");
    let message = MessageParser::default()
        .parse(&bytes)
        .unwrap_or_else(|| panic!("mail-parser cannot parse {}", path.display()));
    let to = message
        .to()
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let headers = message
        .headers_raw()
        .map(|(name, value)| (name.to_string(), unfold(value)))
        .collect();
    // The parts themselves, not `body_text`/`body_html`: those convert one into the other when a part is
    // missing, which would hide a message without its HTML part.
    let mut text = String::new();
    let mut html = String::new();
    for part in &message.parts {
        match &part.body {
            PartType::Text(t) if text.is_empty() => text = t.to_string(),
            PartType::Html(h) if html.is_empty() => html = h.to_string(),
            _ => {}
        }
    }
    Received {
        to,
        subject: message.subject().unwrap_or_default().to_string(),
        headers,
        text,
        html,
        raw: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Header unfolding (RFC 5322 §2.2.3): a line break followed by whitespace is just the whitespace.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}
