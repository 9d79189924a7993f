//! Reply by email under attack, black-box against tocsin's inbound SMTP listener: forged and doubled
//! senders, replays, several recipients, SMTP smuggling, hostile HTML and idle connections. A raw
//! SMTP client writes exactly the bytes each case needs; reply addresses are signed with the
//! configured secret, as the mailer would. Nothing here needs an outside SMTP server.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tocsin::domain::time::Timestamp;
use tocsin::mailer::Tokens;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

const SECRET: &str = "a-test-secret-of-32-characters!!";
const DOMAIN: &str = "in.tocsin.test";
/// Every read from the listener is bounded by this, so a broken server fails a test, not hangs it.
const LIMIT: Duration = Duration::from_secs(30);

/// alice and bob with addresses, a room nobody answers, and `email.inbound` with `inbound` added.
fn yaml(dir: &std::path::Path, inbound: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\n\
         public_url: https://tocsin.test\n\
         storage: sqlite://{db}\n\
         plugin_cache: {cache}\n\
         sources:\n  hooks: {{kind: generic, auth: {{token: {HOOK_TOKEN}}}}}\n\
         members:\n  \
           alice: {{role: admin, token: {ADMIN}, email: alice@example.test}}\n  \
           bob: {{role: editor, token: {EDITOR}, email: bob@example.test}}\n\
         rooms:\n  ops:\n    sink: {{kind: webhook, url: \"http://127.0.0.1:9/hook\"}}\n    members: [alice, bob]\n\
         routes:\n  - {{rooms: [ops]}}\n\
         email:\n  \
           smtp: smtp://127.0.0.1:9\n  \
           from: \"tocsin <alerts@tocsin.test>\"\n  \
           secret: {SECRET}\n  \
           reply_ttl: 1h\n  \
           inbound: {{listen: \"127.0.0.1:0\", domain: {DOMAIN}, {inbound}}}\n",
        db = dir.join("tocsin.db").display(),
        cache = dir.join("plugin-cache").display(),
    )
}

const PEERS: &str = "trust: {peers: [127.0.0.1]}";

/// A tocsin with tickets T-1 and T-2, and its inbound listener on a port.
struct Inbound {
    app: TestApp,
    port: u16,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn spawn(inbound: &str) -> Inbound {
    let dir = tempfile::tempdir().unwrap();
    let yaml = yaml(dir.path(), inbound);
    let app = spawn_app_with_yaml(dir, yaml).await;
    for host in ["db1", "db2"] {
        let alert = json!({"title": host, "status": "firing", "severity": "critical", "labels": {"host": host}});
        assert_eq!(app.hook(alert).await.status(), 202);
    }
    app.process().await;
    listen(app).await
}

async fn listen(app: TestApp) -> Inbound {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let inbound = app.app.inbound.clone().expect("inbound is configured");
    tokio::spawn(inbound.serve(listener, rx));
    Inbound {
        app,
        port,
        _stop: stop,
    }
}

/// The reply address the mailer would give `member` for ticket `T-number`, valid for an hour.
fn address(number: i64, member: &str) -> String {
    let expires = Timestamp::from_millis(t0().as_millis() + 3_600_000);
    Tokens::new(SECRET).reply_address(number, member, expires, DOMAIN)
}

/// A hand-driven SMTP client.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects and returns the client with the greeting's code and text.
    async fn connect(port: u16) -> (Client, u16, String) {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, w) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        let (code, text) = client.reply().await;
        (client, code, text)
    }

    /// Connects and expects the 220 greeting.
    async fn greeted(port: u16) -> Client {
        let (client, code, text) = Client::connect(port).await;
        assert_eq!(code, 220, "{text}");
        client
    }

    async fn send(&mut self, raw: &str) {
        self.writer.write_all(raw.as_bytes()).await.unwrap();
    }

    /// One reply, all its lines; code 0 when the server closed the connection instead.
    async fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(LIMIT, self.reader.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap_or(0);
            if n == 0 {
                return (0, text);
            }
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return (line[..3].parse().unwrap(), text);
            }
        }
    }

    async fn command(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Waits for the server to close the connection; returns what it said before.
    async fn closed(mut self) -> String {
        let mut rest = String::new();
        tokio::time::timeout(LIMIT, self.reader.read_to_string(&mut rest))
            .await
            .expect("closed in time")
            .unwrap();
        rest
    }
}

/// Delivers `message` (CRLF line ends, no line starting with a dot) from alice's envelope to
/// `rcpts` on one connection. Returns the first refusal, or the answer to the end of DATA.
async fn deliver(port: u16, rcpts: &[&str], message: &str) -> (u16, String) {
    let mut c = Client::greeted(port).await;
    for (line, want) in [
        ("EHLO mx.example.test", 250),
        ("MAIL FROM:<alice@example.test>", 250),
    ] {
        let (code, text) = c.command(line).await;
        assert_eq!(code, want, "{line}: {text}");
    }
    for rcpt in rcpts {
        let (code, text) = c.command(&format!("RCPT TO:<{rcpt}>")).await;
        if code != 250 {
            return (code, text);
        }
    }
    assert_eq!(c.command("DATA").await.0, 354);
    c.send(&format!("{message}\r\n.\r\n")).await;
    let answer = c.reply().await;
    assert_eq!(c.command("QUIT").await.0, 221);
    answer
}

/// A message with the given headers (each ending in CRLF) and text body.
fn mail(headers: &str, body: &str) -> String {
    format!(
        "{headers}To: tocsin <reply@{DOMAIN}>\r\nSubject: Re: [tocsin T-1] db1\r\n\r\n{body}\r\n"
    )
}

const ALICE: &str = "From: Alice <alice@example.test>\r\n";

impl Inbound {
    async fn ticket(&self, number: i64) -> Value {
        self.app
            .api_get(&format!("/api/tickets/T-{number}"), ADMIN)
            .await
            .json()
            .await
            .unwrap()
    }

    async fn notes(&self, number: i64) -> Vec<String> {
        self.app
            .entries_of(&format!("T-{number}"), "note")
            .await
            .into_iter()
            .map(|e| e["text"].as_str().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn a_forged_from_is_refused_unless_the_named_mx_says_dmarc_passed() {
    let s = spawn("trust: {authserv_id: mx.tocsin.test, peers: [127.0.0.1]}").await;
    let to = address(1, "alice");
    for results in [
        "",
        "Authentication-Results: mx.tocsin.test; dmarc=fail header.from=example.test\r\n",
        "Authentication-Results: mx.tocsin.test; dkim=pass header.d=example.test\r\n",
        "Authentication-Results: evil.example; dmarc=pass header.from=example.test\r\n",
        "Authentication-Results: mx.tocsin.test; dmarc=pass header.from=evil.example\r\n",
        // A pass the sender wrote itself, next to the MX's verdict.
        "Authentication-Results: mx.tocsin.test; dmarc=fail\r\nAuthentication-Results: mx.tocsin.test; dmarc=pass\r\n",
    ] {
        let (code, text) = deliver(s.port, &[&to], &mail(&format!("{results}{ALICE}"), "ack")).await;
        assert_eq!(code, 550, "{results:?}: {text}");
        assert!(text.starts_with("5.7.1 "), "{text}");
    }
    assert_eq!(s.ticket(1).await["state"], "open");

    let pass = "Authentication-Results: mx.tocsin.test;\r\n dkim=pass header.d=example.test;\r\n dmarc=pass (p=reject) header.from=example.test\r\n";
    let (code, text) = deliver(
        s.port,
        &[&to],
        &mail(&format!("{pass}{ALICE}"), "ack\r\non it"),
    )
    .await;
    assert_eq!(code, 250, "{text}");
    let t = s.ticket(1).await;
    assert_eq!(
        (t["state"].as_str(), t["acked_by"].as_str()),
        (Some("acked"), Some("alice"))
    );
    assert_eq!(s.notes(1).await, ["on it"]);
}

#[tokio::test]
async fn several_froms_or_a_sender_other_than_from_are_refused() {
    let s = spawn(PEERS).await;
    let to = address(1, "alice");
    for headers in [
        "From: mallory@evil.example\r\nFrom: alice@example.test\r\n",
        "From: alice@example.test\r\nFrom: mallory@evil.example\r\n",
        "From: alice@example.test, mallory@evil.example\r\n",
        "From: alice@example.test\r\nSender: mallory@evil.example\r\n",
        "From: alice@example.test\r\nSender: alice@example.test\r\nSender: mallory@evil.example\r\n",
        "Sender: alice@example.test\r\n",
    ] {
        let (code, text) = deliver(s.port, &[&to], &mail(headers, "resolve")).await;
        assert_eq!(code, 550, "{headers:?}: {text}");
    }
    assert_eq!(s.ticket(1).await["state"], "open");
    assert!(s.notes(1).await.is_empty());
    // The member's own From, with a matching Sender, is fine.
    let headers = "From: alice@example.test\r\nSender: Alice <ALICE@example.test>\r\n";
    assert_eq!(deliver(s.port, &[&to], &mail(headers, "mine")).await.0, 250);
    assert_eq!(s.notes(1).await, ["mine"]);
}

#[tokio::test]
async fn a_message_is_taken_once_however_often_or_to_however_many_spellings_it_comes() {
    let s = spawn(PEERS).await;
    let to = address(1, "alice");
    let m1 = mail(
        &format!("{ALICE}Message-ID: <m1@example.test>\r\n"),
        "first",
    );
    assert_eq!(deliver(s.port, &[&to], &m1).await.0, 250);
    // The MTA did not hear the answer and sends it again; or someone replays it.
    assert_eq!(deliver(s.port, &[&to], &m1).await.0, 250);
    assert_eq!(s.notes(1).await, ["first"]);

    // The same address in other letter cases, and another address for the same ticket and member
    // (mailed later, so expiring later): one note.
    let upper = to.to_uppercase();
    let (local, _) = to.split_once('@').unwrap();
    let other_case = format!("{local}@IN.Tocsin.TEST");
    let later = Tokens::new(SECRET).reply_address(
        1,
        "alice",
        Timestamp::from_millis(t0().as_millis() + 3_000_000),
        DOMAIN,
    );
    let m2 = mail(
        &format!("{ALICE}Message-ID: <m2@example.test>\r\n"),
        "second",
    );
    let (code, text) = deliver(s.port, &[&to, &upper, &other_case, &later], &m2).await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(s.notes(1).await, ["first", "second"]);

    // Without a Message-ID, the message itself is remembered.
    let m3 = mail(ALICE, "third");
    assert_eq!(deliver(s.port, &[&to], &m3).await.0, 250);
    assert_eq!(deliver(s.port, &[&to], &m3).await.0, 250);
    assert_eq!(s.notes(1).await, ["first", "second", "third"]);

    // A restart forgets nothing.
    let Inbound { app, _stop, .. } = s;
    drop(_stop);
    let s = listen(app.restart().await).await;
    assert_eq!(deliver(s.port, &[&to], &m1).await.0, 250);
    assert_eq!(deliver(s.port, &[&to], &m3).await.0, 250);
    assert_eq!(s.notes(1).await, ["first", "second", "third"]);
}

#[tokio::test]
async fn a_message_to_several_tickets_is_taken_whole_or_not_at_all() {
    let s = spawn(PEERS).await;
    let (t1, t2, gone) = (
        address(1, "alice"),
        address(2, "alice"),
        address(99, "alice"),
    );
    // The second recipient fails after the first would have been stored: nothing is.
    let m = mail(
        &format!("{ALICE}Message-ID: <both@example.test>\r\n"),
        "ack\r\nboth",
    );
    let (code, text) = deliver(s.port, &[&t1, &gone], &m).await;
    assert_eq!(code, 550, "{text}");
    assert!(s.notes(1).await.is_empty());
    assert_eq!(s.ticket(1).await["state"], "open");

    // Retried without the bad address: each ticket once, and once only.
    assert_eq!(deliver(s.port, &[&t1, &t2], &m).await.0, 250);
    assert_eq!(deliver(s.port, &[&t2, &t1], &m).await.0, 250);
    assert_eq!(s.notes(1).await, ["both"]);
    assert_eq!(s.notes(2).await, ["both"]);
    assert_eq!(s.ticket(2).await["state"], "acked");

    // An MTA may split one message's recipients over two transactions: both count.
    let split = mail(
        &format!("{ALICE}Message-ID: <split@example.test>\r\n"),
        "split",
    );
    assert_eq!(deliver(s.port, &[&t1], &split).await.0, 250);
    assert_eq!(deliver(s.port, &[&t2], &split).await.0, 250);
    assert_eq!(s.notes(1).await, ["both", "split"]);
    assert_eq!(s.notes(2).await, ["both", "split"]);
}

#[tokio::test]
async fn a_message_smuggled_behind_a_bare_line_end_is_not_taken() {
    let s = spawn(PEERS).await;
    let to = address(1, "alice");
    for end in ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r\n"] {
        let mut c = Client::greeted(s.port).await;
        for line in [
            "EHLO mx.example.test",
            "MAIL FROM:<alice@example.test>",
            &format!("RCPT TO:<{to}>"),
        ] {
            assert_eq!(c.command(line).await.0, 250, "{line}");
        }
        assert_eq!(c.command("DATA").await.0, 354);
        c.send(&format!(
            "{}{end}MAIL FROM:<alice@example.test>\r\nRCPT TO:<{to}>\r\nDATA\r\n{}\r\n.\r\n",
            mail(ALICE, "hello").trim_end(),
            mail(ALICE, "resolve\r\nsmuggled"),
        ))
        .await;
        // One answer, to the whole thing: the smuggled commands were data.
        let (code, text) = c.reply().await;
        assert_eq!(code, 550, "{end:?}: {text}");
        assert_eq!(c.command("NOOP").await.0, 250, "still in step");
    }
    assert!(s.notes(1).await.is_empty());
    assert_eq!(s.ticket(1).await["state"], "open");
}

#[tokio::test]
async fn an_html_reply_full_of_script_tags_is_converted() {
    // Each <script> used to make the converter copy all of the rest: quadratic, seconds per MiB on
    // the async runtime (and far longer in a debug build), during which nothing else ran.
    let s = spawn(&format!("{PEERS}, max_size: 4MiB")).await;
    let html = format!("<p>on it</p>{}", "<script>a</script>".repeat(60_000));
    let headers = format!("{ALICE}MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n");
    let (code, text) = deliver(s.port, &[&address(1, "alice")], &mail(&headers, &html)).await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(s.notes(1).await, ["on it"]);
}

#[tokio::test]
async fn idle_connections_from_one_address_cannot_lock_replies_out() {
    let s = spawn(&format!("{PEERS}, max_connections_per_peer: 3")).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(Client::greeted(s.port).await);
    }
    let (extra, code, text) = Client::connect(s.port).await;
    assert_eq!(code, 421, "{text}");
    assert!(
        text.starts_with("4.7.0 Too many connections from your address"),
        "{text}"
    );
    assert_eq!(extra.closed().await, "");

    // One leaves: its place is free at once, and a reply goes through.
    let mut first = idle.remove(0);
    assert_eq!(first.command("QUIT").await.0, 221);
    first.closed().await;
    let (code, text) = deliver(s.port, &[&address(1, "alice")], &mail(ALICE, "through")).await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(s.notes(1).await, ["through"]);
}

#[tokio::test]
async fn an_idle_connection_is_closed_before_mail() {
    let s = spawn(&format!("{PEERS}, command_timeout: 200ms")).await;
    let (mut c, code, _) = Client::connect(s.port).await;
    assert_eq!(code, 220);
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Idle timeout"), "{text}");
    assert_eq!(c.closed().await, "");
}

#[tokio::test]
async fn a_session_ends_at_its_deadline_even_inside_a_transaction() {
    // Wide enough that even a loaded machine gets the two commands in; they go in one write.
    let s = spawn(&format!("{PEERS}, session_timeout: 1s")).await;
    let mut c = Client::greeted(s.port).await;
    c.send("EHLO mx.example.test\r\nMAIL FROM:<alice@example.test>\r\n")
        .await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(c.reply().await.0, 250);
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Session time limit"), "{text}");
    assert_eq!(c.closed().await, "");
}

#[tokio::test]
async fn only_listed_peers_may_connect() {
    let s = spawn("trust: {peers: [192.0.2.1]}").await;
    let (c, code, text) = Client::connect(s.port).await;
    assert_eq!(code, 554, "{text}");
    assert_eq!(c.closed().await, "");
}

#[test]
fn a_listener_without_a_trust_policy_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tocsin.yaml");
    let err = tocsin::config::Config::from_yaml(&yaml(dir.path(), "max_size: 1MiB"), &file)
        .expect_err("refused");
    assert!(
        err.problems.iter().any(|p| p.path == "email.inbound.trust"),
        "{err:?}"
    );
    let empty = yaml(dir.path(), "trust: {}");
    let err = tocsin::config::Config::from_yaml(&empty, &file).expect_err("refused");
    assert!(
        err.problems.iter().any(|p| p.path == "email.inbound.trust"),
        "{err:?}"
    );
    assert!(tocsin::config::Config::from_yaml(&yaml(dir.path(), PEERS), &file).is_ok());
}
