//! Tests of the SMTP server: a hand-driven client against `serve` with a recording handler.

use super::*;
use std::sync::Mutex;
use tokio::io::AsyncReadExt;

/// Accepts everything except recipients at `nobody@`, and records messages.
#[derive(Default)]
struct TestHandler {
    messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

#[async_trait::async_trait]
impl Handler for TestHandler {
    async fn recipient(&self, _envelope: &Envelope, address: &str) -> Result<(), Reject> {
        if address.starts_with("nobody@") {
            return Err(Reject {
                code: 550,
                status: "5.1.1",
                message: "No such reply address".into(),
            });
        }
        Ok(())
    }

    async fn message(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Reject> {
        if data.starts_with(b"Subject: refuse") {
            return Err(Reject {
                code: 554,
                status: "5.6.0",
                message: "Refused\r\n250 injected".into(),
            });
        }
        self.messages
            .lock()
            .unwrap()
            .push((envelope.clone(), data.to_vec()));
        Ok(())
    }
}

struct Server {
    addr: SocketAddr,
    handler: Arc<TestHandler>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    fn messages(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.handler.messages.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.shutdown.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }
}

fn limits() -> Limits {
    Limits {
        max_message: 1000,
        max_recipients: 3,
        command_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(10),
        session_timeout: Duration::from_secs(60),
        max_connections: 10,
        max_per_peer: 5,
    }
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(TestHandler::default());
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        "in.tocsin.test".into(),
        limits,
        Arc::clone(&handler) as Arc<dyn Handler>,
        rx,
    ));
    Server {
        addr,
        handler,
        shutdown,
        task,
    }
}

/// A hand-driven client: writes raw bytes, reads replies.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(server: &Server) -> Client {
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let (r, w) = stream.into_split();
        let mut client = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        let (code, text) = client.reply().await;
        assert_eq!(code, 220, "{text}");
        client
    }

    async fn send(&mut self, raw: &str) {
        self.send_bytes(raw.as_bytes()).await;
    }

    async fn send_bytes(&mut self, raw: &[u8]) {
        self.writer.write_all(raw).await.unwrap();
    }

    /// Reads one reply (all lines of a multi-line one); returns the code and the joined text.
    async fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "connection closed while waiting for a reply");
            assert!(line.ends_with("\r\n"), "{line:?}");
            let code: u16 = line[..3].parse().unwrap();
            text.push_str(line[4..].trim_end());
            text.push('\n');
            if line.as_bytes()[3] == b' ' {
                return (code, text);
            }
        }
    }

    async fn command(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    async fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.command(line).await;
        assert_eq!(got, code, "{line} → {got} {text}");
        text
    }

    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), self.reader.read_to_end(&mut rest))
            .await
            .expect("closed in time");
        read.is_ok() && rest.is_empty()
    }
}

#[tokio::test]
async fn full_transaction_delivers_the_unstuffed_message() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    let ehlo = c.expect("EHLO mx.example.org", 250).await;
    for ext in ["SIZE 1000", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES"] {
        assert!(ehlo.lines().any(|l| l == ext), "{ext} in {ehlo}");
    }
    c.expect("MAIL FROM:<Bob@Example.org> SIZE=200 BODY=8BITMIME", 250)
        .await;
    c.expect("RCPT TO:<reply+abc.def@in.tocsin.test>", 250)
        .await;
    c.expect("RCPT TO:<reply+abc.def@in.tocsin.test>", 250)
        .await;
    c.expect("DATA", 354).await;
    c.send("Subject: hi\r\n\r\nack\r\n..leading dot\r\n..\r\n...\r\nlast\r\n.\r\n")
        .await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250, "{text}");
    assert!(text.starts_with("2.0.0 "));
    c.expect("QUIT", 221).await;
    assert!(c.closed().await);

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let (envelope, data) = &messages[0];
    assert_eq!(
        data.as_slice(),
        b"Subject: hi\r\n\r\nack\r\n.leading dot\r\n.\r\n..\r\nlast\r\n"
    );
    assert_eq!(envelope.helo, "mx.example.org");
    assert_eq!(envelope.mail_from, "Bob@Example.org");
    assert_eq!(envelope.rcpt_to, vec!["reply+abc.def@in.tocsin.test"]);
    assert_eq!(envelope.peer.ip(), server.addr.ip());
    server.stop().await;
}

#[tokio::test]
async fn pipelined_commands_and_bare_lf_in_commands() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.send(
        "HELO relay\nMAIL FROM:<>\nRCPT TO:<a@in.tocsin.test>\nRCPT TO:<b@in.tocsin.test>\nDATA\n",
    )
    .await;
    for code in [250, 250, 250, 250, 354] {
        assert_eq!(c.reply().await.0, code);
    }
    c.send("line one\r\n.\r\nMAIL FROM:<x@y.z>\nRSET\nNOOP\n")
        .await;
    for code in [250, 250, 250, 250] {
        assert_eq!(c.reply().await.0, code);
    }
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].1, b"line one\r\n");
    assert_eq!(messages[0].0.mail_from, "");
    assert_eq!(messages[0].0.rcpt_to.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn data_ends_only_at_crlf_dot_crlf_and_bare_line_ends_refuse_the_message() {
    // Each way a dot line can be written that some server reads as the end of DATA: behind it, a
    // second transaction that must not become a message (SMTP smuggling).
    for end in ["\n.\n", "\r\n.\n", "\n.\r\n", "\r.\r", "\r.\r\n", "\r\n.\r"] {
        let server = start(limits()).await;
        let mut c = Client::connect(&server).await;
        c.send("EHLO mx\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<r@in.tocsin.test>\r\nDATA\r\n")
            .await;
        for code in [250, 250, 250, 354] {
            assert_eq!(c.reply().await.0, code);
        }
        c.send(&format!(
            "Subject: one\r\n\r\nfirst{end}MAIL FROM:<alice@example.org>\r\n\
             RCPT TO:<r@in.tocsin.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nack\r\n.\r\n"
        ))
        .await;
        // One reply for all of it, at the real end: the smuggled commands were data.
        let (code, text) = c.reply().await;
        assert_eq!(code, 550, "{end:?}: {text}");
        assert!(text.starts_with("5.6.0 Bare CR or LF"), "{text}");
        c.expect("NOOP", 250).await;
        assert!(server.messages().is_empty(), "{end:?}");
        server.stop().await;
    }
}

#[tokio::test]
async fn a_dot_line_split_across_reads_still_ends_data() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.send("EHLO mx\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<r@in.tocsin.test>\r\nDATA\r\n")
        .await;
    for code in [250, 250, 250, 354] {
        assert_eq!(c.reply().await.0, code);
    }
    // A CR at the end of one piece and its LF in the next is still a CRLF.
    let long = "x".repeat(DATA_PIECE - 1);
    c.send(&format!("{long}\r")).await;
    c.send("\n.\r\n").await;
    assert_eq!(
        c.reply().await.0,
        552,
        "too big for the test limit, but framed"
    );
    c.expect("NOOP", 250).await;
    server.stop().await;
}

#[tokio::test]
async fn refused_recipient_and_data_without_recipients() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.expect("EHLO mx", 250).await;
    c.expect("MAIL FROM:<bob@example.org>", 250).await;
    let text = c.expect("RCPT TO:<nobody@in.tocsin.test>", 550).await;
    assert!(text.starts_with("5.1.1 No such reply address"), "{text}");
    c.expect("DATA", 503).await;
    // The transaction goes on; a good recipient makes DATA possible.
    c.expect("RCPT TO:<reply+x@in.tocsin.test>", 250).await;
    c.expect("DATA", 354).await;
    c.send("Subject: refuse me\r\n\r\nx\r\n.\r\n").await;
    // The handler's reject comes back as one reply line, whatever its text holds.
    let (code, text) = c.reply().await;
    assert_eq!(
        (code, text.as_str()),
        (554, "5.6.0 Refused  250 injected\n")
    );
    c.expect("NOOP", 250).await;
    assert!(server.messages().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.expect("EHLO mx", 250).await;
    c.expect("MAIL FROM:<bob@example.org>", 250).await;
    for i in 0..3 {
        c.expect(&format!("RCPT TO:<r{i}@in.tocsin.test>"), 250)
            .await;
    }
    c.expect("RCPT TO:<r9@in.tocsin.test>", 452).await;
    server.stop().await;
}

#[tokio::test]
async fn too_big_messages_get_552() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.expect("EHLO mx", 250).await;
    // Declared up front.
    let text = c.expect("MAIL FROM:<bob@example.org> SIZE=1001", 552).await;
    assert!(text.starts_with("5.3.4"), "{text}");
    // Undeclared: read to the end, then refused; the connection stays usable.
    c.expect("MAIL FROM:<bob@example.org>", 250).await;
    c.expect("RCPT TO:<reply+x@in.tocsin.test>", 250).await;
    c.expect("DATA", 354).await;
    let line = format!("{}\r\n", "x".repeat(98));
    for _ in 0..30 {
        c.send(&line).await;
    }
    // A very long line without any break is bounded too.
    c.send(&"y".repeat(50_000)).await;
    c.send("\r\n.\r\n").await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 552, "{text}");
    c.expect("NOOP", 250).await;
    // Exactly at the limit is fine.
    c.expect("MAIL FROM:<bob@example.org>", 250).await;
    c.expect("RCPT TO:<reply+x@in.tocsin.test>", 250).await;
    c.expect("DATA", 354).await;
    c.send(&format!("{}\r\n.\r\n", "z".repeat(998))).await;
    assert_eq!(c.reply().await.0, 250);
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.messages()[0].1.len(), 1000);
    server.stop().await;
}

#[tokio::test]
async fn garbage_and_bad_order_do_not_close() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.expect("MAIL FROM:<bob@example.org>", 503).await;
    c.expect("HELLO there", 500).await;
    c.expect("", 500).await;
    c.expect("EHLO", 501).await;
    c.expect("EHLO bad\rname", 501).await;
    c.expect("EHLO mx", 250).await;
    c.expect("RCPT TO:<a@in.tocsin.test>", 503).await;
    c.expect("DATA", 503).await;
    c.expect("MAIL TO:<bob@example.org>", 501).await;
    c.expect("MAIL FROM:<bob@example.org> FOO=1", 555).await;
    c.expect("MAIL FROM:<bob@example.org> SIZE=abc", 501).await;
    c.expect("MAIL FROM:bob@example.org", 250).await;
    c.expect("MAIL FROM:<bob@example.org>", 503).await;
    c.expect("RCPT TO:<no at sign>", 501).await;
    c.expect("RCPT TO:<local>", 501).await;
    c.expect("STARTTLS", 502).await;
    c.expect("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 502).await;
    c.expect("VRFY alice", 252).await;
    c.expect("HELP", 214).await;
    // An overlong line is answered once, at its end, and the session goes on.
    let long = format!("NOOP {}", "a".repeat(10_000));
    c.expect(&long, 500).await;
    c.send_bytes(b"\x00\xff\xfe garbage \x80\r\n").await;
    assert_eq!(c.reply().await.0, 500);
    c.send_bytes("MAIL FROM:<é@é>\r\n".as_bytes()).await;
    assert_eq!(c.reply().await.0, 503);
    c.expect("rset", 250).await;
    c.expect("noop", 250).await;
    server.stop().await;
}

#[tokio::test]
async fn too_many_errors_close_with_421() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    for _ in 0..MAX_ERRORS - 1 {
        c.expect("BOGUS", 500).await;
    }
    c.expect("BOGUS", 421).await;
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn quit_closes() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.expect("QUIT", 221).await;
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn command_timeout_before_mail_answers_421_and_closes() {
    let server = start(Limits {
        command_timeout: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let mut c = Client::connect(&server).await;
    c.send("EHLO mx\r\nNOO").await;
    assert_eq!(c.reply().await.0, 250);
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Idle timeout"), "{text}");
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn idle_timeout_inside_a_transaction_answers_421_and_closes() {
    let server = start(Limits {
        idle_timeout: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let mut c = Client::connect(&server).await;
    c.expect("EHLO mx", 250).await;
    c.expect("MAIL FROM:<a@b.c>", 250).await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(c.closed().await);
    server.stop().await;
}

#[tokio::test]
async fn the_session_deadline_ends_a_connection_whatever_its_timeouts() {
    let server = start(Limits {
        session_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut c = Client::connect(&server).await;
    c.expect("EHLO mx", 250).await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Session time limit"), "{text}");
    assert!(c.closed().await);
    server.stop().await;
}

/// Connects and reads what the server says before closing, for refused connections.
async fn refused(server: &Server) -> String {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut said = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut said))
        .await
        .expect("closed in time")
        .unwrap();
    said
}

#[tokio::test]
async fn connections_over_the_per_peer_or_total_cap_get_421_until_one_closes() {
    let server = start(Limits {
        max_per_peer: 3,
        ..limits()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(Client::connect(&server).await);
    }
    let said = refused(&server).await;
    assert!(
        said.starts_with("421 4.7.0 Too many connections from your address"),
        "{said}"
    );
    // One leaves: its place is free again at once.
    let mut first = idle.remove(0);
    first.expect("QUIT", 221).await;
    assert!(first.closed().await);
    let mut c = Client::connect(&server).await;
    c.expect("NOOP", 250).await;
    server.stop().await;

    let server = start(Limits {
        max_connections: 2,
        max_per_peer: 2,
        ..limits()
    })
    .await;
    let _a = Client::connect(&server).await;
    let _b = Client::connect(&server).await;
    let said = refused(&server).await;
    assert!(said.starts_with("421 4.7.0 Too many connections"), "{said}");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_open_connections_with_421() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.expect("EHLO mx", 250).await;
    server.shutdown.send(true).unwrap();
    let (code, text) = c.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(c.closed().await);
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn eof_in_data_delivers_nothing() {
    let server = start(limits()).await;
    let mut c = Client::connect(&server).await;
    c.send("EHLO mx\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<r@in.tocsin.test>\r\nDATA\r\n")
        .await;
    for code in [250, 250, 250, 354] {
        assert_eq!(c.reply().await.0, code);
    }
    c.send("Subject: cut\r\n\r\npartial").await;
    drop(c);
    // A later connection still works and nothing was delivered.
    let mut c = Client::connect(&server).await;
    c.expect("NOOP", 250).await;
    assert!(server.messages().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn lettre_client_delivers() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let server = start(Limits {
        max_message: 64 * 1024,
        ..limits()
    })
    .await;
    let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr.port())
        .timeout(Some(Duration::from_secs(5)))
        .build();
    let email = Message::builder()
        .from("Bob <bob@example.org>".parse().unwrap())
        .to("tocsin <reply+tok.sig@in.tocsin.test>".parse().unwrap())
        .subject("Re: [tocsin T-42] disk full on db1")
        .body("ack\r\n.hidden dot\r\nRotating logs — done.\r\n".to_string())
        .unwrap();
    let response = mailer.send(email).await.expect("delivered");
    assert_eq!(u16::from(response.code()), 250);
    drop(mailer);

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let (envelope, data) = &messages[0];
    assert_eq!(envelope.mail_from, "bob@example.org");
    assert_eq!(envelope.rcpt_to, vec!["reply+tok.sig@in.tocsin.test"]);
    let mail = crate::inbound::message::read(data).expect("parses");
    assert_eq!(mail.from.as_deref(), Some("bob@example.org"));
    assert_eq!(mail.subject, "Re: [tocsin T-42] disk full on db1");
    assert!(mail.text.contains(".hidden dot"), "{:?}", mail.text);
    assert!(
        mail.text.contains("Rotating logs — done."),
        "{:?}",
        mail.text
    );
    server.stop().await;
}

#[test]
fn paths() {
    assert_eq!(parse_path("FROM:<a@b.c>", "FROM:"), Some(("a@b.c", vec![])));
    assert_eq!(
        parse_path("from: <a@b.c>  SIZE=10 BODY=8BITMIME", "FROM:"),
        Some(("a@b.c", vec!["SIZE=10", "BODY=8BITMIME"]))
    );
    assert_eq!(parse_path("FROM:<>", "FROM:"), Some(("", vec![])));
    assert_eq!(
        parse_path("TO:<@relay.example,@r2:user@c.d>", "TO:"),
        Some(("user@c.d", vec![]))
    );
    assert_eq!(parse_path("TO:a@b.c", "TO:"), Some(("a@b.c", vec![])));
    assert_eq!(parse_path("TO:<a@b.c", "TO:"), None);
    assert_eq!(parse_path("TO:<a@b.c>x", "TO:"), None);
    assert_eq!(parse_path("TO:<a b@c>", "TO:"), None);
    assert_eq!(parse_path("FROM:<a@b.c>", "TO:"), None);
    assert_eq!(parse_path("é", "FROM:"), None);
    assert_eq!(parse_path("TÖ:<a@b>", "TO:"), None);
    let long = format!("TO:<{}@b.c>", "a".repeat(300));
    assert_eq!(parse_path(&long, "TO:"), None);
}

proptest::proptest! {
    #[test]
    fn parse_path_never_panics(arg in "\\PC{0,40}", keyword in "(FROM:|TO:|é)") {
        if let Some((path, _)) = parse_path(&arg, &keyword) {
            proptest::prop_assert!(path.len() <= MAX_PATH);
            proptest::prop_assert!(!path.contains(['<', '>', ' ']));
        }
    }
}

#[test]
fn enhanced_status_shape() {
    assert!(is_enhanced_status("5.7.1"));
    assert!(is_enhanced_status("4.3.0"));
    assert!(!is_enhanced_status("5.7"));
    assert!(!is_enhanced_status("5.7.1\r\n250"));
    assert!(!is_enhanced_status(""));
}

#[tokio::test]
async fn read_piece_bounds_memory() {
    let input: &[u8] = b"short\nexactly8\n0123456789abcdef\nend";
    let mut reader = BufReader::with_capacity(4, input);
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    loop {
        let piece = read_piece(&mut reader, &mut out, 8).await.unwrap();
        assert!(out.len() <= 8);
        if piece == Piece::Eof {
            break;
        }
        pieces.push((piece, String::from_utf8(out.clone()).unwrap()));
    }
    assert_eq!(
        pieces,
        vec![
            (Piece::Line, "short\n".to_string()),
            (Piece::Partial, "exactly8".to_string()),
            (Piece::Line, "\n".to_string()),
            (Piece::Partial, "01234567".to_string()),
            (Piece::Partial, "89abcdef".to_string()),
            (Piece::Line, "\n".to_string()),
        ]
    );
}
