//! A minimal SMTP server (a subset of RFC 5321) that takes replies to tocsin's emails.
//!
//! It sits behind the organisation's MX, or listens on localhost, so it speaks only what a relay
//! needs: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT, VRFY and HELP, with the SIZE, 8BITMIME,
//! PIPELINING and ENHANCEDSTATUSCODES extensions. There is no STARTTLS and no AUTH: transport security
//! and relay access are the MX's job, and what a reply may do is decided by its signed token (see
//! `inbound`), not by who connected.
//!
//! The server decides nothing about mail itself. A [`Handler`] accepts or refuses each recipient and
//! then the message; the server only answers 250 to DATA once the handler returned `Ok`, i.e. once
//! tocsin has stored what it took, so a crash never loses a message the sender thinks was delivered.
//!
//! Robustness: any byte sequence is answered with a reply, never a panic. Memory per connection is
//! bounded by the command line limit (4 KiB), a fixed read buffer, `max_recipients` addresses and
//! `max_message` bytes of message. Every read and write has the idle timeout. Too many protocol errors
//! and too many connections are refused with 421, as Postfix does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The SMTP envelope of the transaction in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The EHLO/HELO argument.
    pub helo: String,
    /// The reverse path, angle brackets removed; empty for the null sender `<>` (bounces).
    pub mail_from: String,
    /// Accepted recipients, in order, without duplicates.
    pub rcpt_to: Vec<String>,
    pub peer: SocketAddr,
}

/// An SMTP error reply: code (e.g. 550), enhanced status (e.g. "5.7.1") and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: u16,
    pub status: &'static str,
    pub message: String,
}

/// What the server asks tocsin.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Each RCPT TO address (angle brackets removed). Err refuses that recipient with the reply given.
    async fn recipient(&self, envelope: &Envelope, address: &str) -> Result<(), Reject>;
    /// The whole message after DATA (dot-unstuffed, CRLF kept), once at least one recipient was accepted.
    /// Ok answers 250; Err answers with the reject. tocsin answers 250 only after storing what it took.
    async fn message(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Reject>;
}

/// Per-connection limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message accepted, in bytes after dot-unstuffing; larger ones get 552.
    pub max_message: usize,
    /// Most recipients per transaction; more get 452 (RFC 5321 §4.5.3.1.10).
    pub max_recipients: usize,
    /// How long the server waits for a command line, a chunk of DATA or a write before 421.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    /// 10 MiB, 50 recipients, and RFC 5321 §4.5.3.2.7's five minutes.
    fn default() -> Self {
        Limits {
            max_message: 10 * 1024 * 1024,
            max_recipients: 50,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// Longest command line accepted, line ending included. RFC 5321 needs 512; clients with long
/// parameters exceed that, and 4 KiB still bounds memory.
const MAX_LINE: usize = 4096;
/// DATA is read in pieces of at most this many bytes so a line without an end cannot grow memory.
const DATA_PIECE: usize = 8192;
/// Longest path RFC 5321 §4.5.3.1.3 allows.
const MAX_PATH: usize = 256;
/// Protocol errors (500, 501, 503, 555) before the server gives up on a client.
const MAX_ERRORS: usize = 20;
/// Connections served at once; more are answered 421 and closed.
const MAX_CONNECTIONS: usize = 256;

/// Serves connections until `shutdown` turns true; one task per connection.
///
/// On shutdown it stops accepting, and each connection answers 421 the next time it waits for input
/// (a message being handed to the handler is finished first); `serve` returns when all have closed.
/// A dropped shutdown sender counts as shutdown: nobody is left to stop the server otherwise.
pub async fn serve(
    listener: TcpListener,
    hostname: String,
    limits: Limits,
    handler: Arc<dyn Handler>,
    mut shutdown: watch::Receiver<bool>,
) {
    let shared = Arc::new(Shared {
        hostname,
        limits,
        handler,
    });
    let mut tasks = JoinSet::new();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_join(joined),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if tasks.len() >= MAX_CONNECTIONS {
                        tracing::warn!(%peer, "smtp: too many connections, refusing");
                        // Best effort and non-blocking: a refused client must not hold the loop.
                        let _ = stream.try_write(b"421 4.7.0 Too many connections, try again later\r\n");
                        continue;
                    }
                    tasks.spawn(connection(stream, peer, Arc::clone(&shared), shutdown.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors; back off instead of spinning.
                    tracing::warn!(%error, "smtp: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    while let Some(joined) = tasks.join_next().await {
        log_join(joined);
    }
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        tracing::error!(%error, "smtp: connection task failed");
    }
}

struct Shared {
    hostname: String,
    limits: Limits,
    handler: Arc<dyn Handler>,
}

/// Why a connection ends. Every variant closes it; the reply, if any, was already sent.
#[derive(Debug)]
enum Stop {
    Quit,
    Eof,
    Io,
    Timeout,
    Shutdown,
    TooManyErrors,
}

/// The result of reading up to a line end.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// A whole line, ending in '\n'.
    Line,
    /// `max` bytes without a line end; the rest of the line is still unread.
    Partial,
    /// The peer closed the connection (any unterminated bytes are dropped).
    Eof,
}

/// Appends bytes up to and including the next '\n' to `out`, but never more than `max` bytes.
async fn read_piece<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    out: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Piece> {
    out.clear();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(Piece::Eof);
        }
        let room = max.saturating_sub(out.len());
        let window = &buf[..buf.len().min(room)];
        if let Some(i) = window.iter().position(|&b| b == b'\n') {
            out.extend_from_slice(&window[..=i]);
            reader.consume(i + 1);
            return Ok(Piece::Line);
        }
        let taken = window.len();
        out.extend_from_slice(window);
        reader.consume(taken);
        if out.len() >= max {
            return Ok(Piece::Partial);
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let (read, write) = stream.into_split();
    let mut session = Session {
        reader: BufReader::with_capacity(DATA_PIECE, read),
        writer: write,
        shared,
        shutdown,
        envelope: Envelope {
            helo: String::new(),
            mail_from: String::new(),
            rcpt_to: Vec::new(),
            peer,
        },
        greeted: false,
        in_transaction: false,
        errors: 0,
        buf: Vec::with_capacity(256),
    };
    tracing::debug!(%peer, "smtp: connection opened");
    let stop = session.run().await;
    tracing::debug!(%peer, ?stop, "smtp: connection closed");
}

struct Session {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    envelope: Envelope,
    /// EHLO or HELO was given.
    greeted: bool,
    /// MAIL was accepted and the transaction not yet finished or reset.
    in_transaction: bool,
    errors: usize,
    /// The line being read; reused so a connection does not allocate per command.
    buf: Vec<u8>,
}

impl Session {
    async fn run(&mut self) -> Stop {
        let greeting = format!("{} ESMTP tocsin", self.shared.hostname);
        if let Err(stop) = self.reply(220, "", &greeting).await {
            return stop;
        }
        loop {
            if let Err(stop) = self.next_command().await {
                return stop;
            }
        }
    }

    async fn next_command(&mut self) -> Result<(), Stop> {
        match self.read(MAX_LINE).await? {
            Piece::Line => {}
            Piece::Partial => {
                // Skip the rest of the line, however long, without keeping it.
                while self.read(MAX_LINE).await? == Piece::Partial {}
                tracing::debug!(peer = %self.envelope.peer, "smtp: command line too long");
                return self.error(500, "5.5.2", "Line too long").await;
            }
            Piece::Eof => return Err(Stop::Eof),
        }
        let line = String::from_utf8_lossy(trim_line_end(&self.buf)).into_owned();
        self.command(&line).await
    }

    /// Reads a piece into `self.buf`, answering 421 on idle timeout or shutdown.
    async fn read(&mut self, max: usize) -> Result<Piece, Stop> {
        let idle = self.shared.limits.idle_timeout;
        let read = tokio::time::timeout(idle, read_piece(&mut self.reader, &mut self.buf, max));
        let shutdown = &mut self.shutdown;
        let shutting_down = async move {
            // A closed channel counts as shutdown, as in `serve`.
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    return;
                }
            }
        };
        let outcome = tokio::select! {
            biased;
            outcome = read => Some(outcome),
            () = shutting_down => None,
        };
        match outcome {
            Some(Ok(Ok(piece))) => Ok(piece),
            Some(Ok(Err(_))) => Err(Stop::Io),
            Some(Err(_elapsed)) => {
                tracing::info!(peer = %self.envelope.peer, "smtp: idle timeout, closing");
                let host = self.shared.hostname.clone();
                let _ = self
                    .reply(
                        421,
                        "4.4.2",
                        &format!("{host} Idle timeout, closing connection"),
                    )
                    .await;
                Err(Stop::Timeout)
            }
            None => {
                let host = self.shared.hostname.clone();
                let _ = self
                    .reply(421, "4.3.2", &format!("{host} Service shutting down"))
                    .await;
                Err(Stop::Shutdown)
            }
        }
    }

    async fn command(&mut self, line: &str) -> Result<(), Stop> {
        let (verb, arg) = match line.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => (&line[..i], line[i..].trim()),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.hello(arg, true).await,
            "HELO" => self.hello(arg, false).await,
            "MAIL" => self.mail(arg).await,
            "RCPT" => self.rcpt(arg).await,
            "DATA" => self.data(arg).await,
            "RSET" => {
                self.reset();
                self.reply(250, "2.0.0", "OK").await
            }
            "NOOP" => self.reply(250, "2.0.0", "OK").await,
            "QUIT" => {
                let host = self.shared.hostname.clone();
                self.reply(221, "2.0.0", &format!("{host} Bye")).await?;
                Err(Stop::Quit)
            }
            // Answering VRFY truthfully would let anyone probe for valid tokens.
            "VRFY" => {
                self.reply(252, "2.5.0", "Cannot VRFY user, but will accept message")
                    .await
            }
            "HELP" => {
                self.reply(
                    214,
                    "2.0.0",
                    "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
                )
                .await
            }
            // Known commands this server deliberately lacks (RFC 5321 §4.2.4: 502, not 500).
            "EXPN" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" | "ATRN" | "SEND" | "SOML"
            | "SAML" => self.error(502, "5.5.1", "Command not implemented").await,
            _ => {
                tracing::debug!(peer = %self.envelope.peer, "smtp: unknown command");
                self.error(500, "5.5.2", "Command not recognized").await
            }
        }
    }

    async fn hello(&mut self, arg: &str, extended: bool) -> Result<(), Stop> {
        // The argument is echoed in the reply, so it must not carry control characters.
        if arg.is_empty() || arg.len() > MAX_PATH || arg.chars().any(char::is_control) {
            let syntax = if extended {
                "Syntax: EHLO hostname"
            } else {
                "Syntax: HELO hostname"
            };
            return self.error(501, "5.5.4", syntax).await;
        }
        // RFC 5321 §4.1.4: a new EHLO resets any transaction in progress.
        self.reset();
        self.greeted = true;
        self.envelope.helo = arg.to_string();
        let host = &self.shared.hostname;
        if extended {
            let text = format!(
                "250-{host} Hello {arg}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
                self.shared.limits.max_message
            );
            self.send(text.as_bytes()).await
        } else {
            let text = format!("{host} Hello {arg}");
            self.reply(250, "", &text).await
        }
    }

    async fn mail(&mut self, arg: &str) -> Result<(), Stop> {
        if !self.greeted {
            return self.error(503, "5.5.1", "Send EHLO or HELO first").await;
        }
        if self.in_transaction {
            return self.error(503, "5.5.1", "Nested MAIL command").await;
        }
        let Some((address, params)) = parse_path(arg, "FROM:") else {
            return self
                .error(501, "5.5.4", "Syntax: MAIL FROM:<address>")
                .await;
        };
        for param in params {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key.eq_ignore_ascii_case("SIZE") {
                let Ok(size) = value.parse::<u64>() else {
                    return self.error(501, "5.5.4", "Bad SIZE parameter").await;
                };
                let max = self.shared.limits.max_message;
                if size > max as u64 {
                    tracing::info!(peer = %self.envelope.peer, size, max, "smtp: refused, declared size too big");
                    return self
                        .reply(
                            552,
                            "5.3.4",
                            "Message size exceeds fixed maximum message size",
                        )
                        .await;
                }
            } else if key.eq_ignore_ascii_case("BODY") {
                if !(value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME")) {
                    return self.error(501, "5.5.4", "Bad BODY parameter").await;
                }
            } else {
                return self
                    .error(555, "5.5.4", "MAIL parameter not recognized")
                    .await;
            }
        }
        self.envelope.mail_from = address.to_string();
        self.envelope.rcpt_to.clear();
        self.in_transaction = true;
        self.reply(250, "2.1.0", "OK").await
    }

    async fn rcpt(&mut self, arg: &str) -> Result<(), Stop> {
        if !self.in_transaction {
            return self.error(503, "5.5.1", "Need MAIL command").await;
        }
        let Some((address, params)) = parse_path(arg, "TO:") else {
            return self.error(501, "5.5.4", "Syntax: RCPT TO:<address>").await;
        };
        if !params.is_empty() {
            return self
                .error(555, "5.5.4", "RCPT parameter not recognized")
                .await;
        }
        if !(address.contains('@') || address.eq_ignore_ascii_case("postmaster")) {
            return self
                .error(501, "5.1.3", "Bad recipient address syntax")
                .await;
        }
        if self.envelope.rcpt_to.iter().any(|r| r == address) {
            // Already accepted; asking the handler again would gain nothing.
            return self.reply(250, "2.1.5", "OK").await;
        }
        if self.envelope.rcpt_to.len() >= self.shared.limits.max_recipients {
            tracing::info!(peer = %self.envelope.peer, "smtp: refused, too many recipients");
            return self.reply(452, "4.5.3", "Too many recipients").await;
        }
        let handler = Arc::clone(&self.shared.handler);
        match handler.recipient(&self.envelope, address).await {
            Ok(()) => {
                self.envelope.rcpt_to.push(address.to_string());
                self.reply(250, "2.1.5", "OK").await
            }
            Err(reject) => {
                tracing::info!(
                    peer = %self.envelope.peer,
                    from = %self.envelope.mail_from,
                    to = %address,
                    code = reject.code,
                    status = reject.status,
                    reason = %reject.message,
                    "smtp: recipient refused"
                );
                self.reject(&reject).await
            }
        }
    }

    async fn data(&mut self, arg: &str) -> Result<(), Stop> {
        if !arg.is_empty() {
            return self.error(501, "5.5.4", "Syntax: DATA").await;
        }
        if !self.in_transaction {
            return self.error(503, "5.5.1", "Need MAIL command").await;
        }
        if self.envelope.rcpt_to.is_empty() {
            return self.error(503, "5.5.1", "No valid recipients").await;
        }
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>")
            .await?;
        let max = self.shared.limits.max_message;
        let mut data = Vec::new();
        let mut oversized = false;
        let mut at_line_start = true;
        loop {
            let piece = self.read(DATA_PIECE).await?;
            if piece == Piece::Eof {
                // No terminating dot: the client gave up, so nothing was delivered.
                return Err(Stop::Eof);
            }
            let complete = piece == Piece::Line;
            let mut bytes = self.buf.as_slice();
            if at_line_start {
                // Bare-LF endings are accepted too: some scripts and relays send them.
                if complete && (bytes == b".\r\n" || bytes == b".\n") {
                    break;
                }
                // RFC 5321 §4.5.2: a leading dot was doubled by the sender.
                if let Some(rest) = bytes.strip_prefix(b".") {
                    bytes = rest;
                }
            }
            at_line_start = complete;
            // Over the limit, keep reading to the end so the reply lands where the client expects it,
            // but keep nothing.
            if !oversized {
                if data.len() + bytes.len() > max {
                    oversized = true;
                    data = Vec::new();
                } else {
                    data.extend_from_slice(bytes);
                }
            }
        }
        let result = if oversized {
            tracing::info!(
                peer = %self.envelope.peer,
                from = %self.envelope.mail_from,
                max,
                "smtp: refused, message too big"
            );
            self.reply(
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            )
            .await
        } else {
            let handler = Arc::clone(&self.shared.handler);
            match handler.message(&self.envelope, &data).await {
                Ok(()) => self.reply(250, "2.0.0", "OK: message accepted").await,
                Err(reject) => {
                    tracing::info!(
                        peer = %self.envelope.peer,
                        from = %self.envelope.mail_from,
                        code = reject.code,
                        status = reject.status,
                        reason = %reject.message,
                        "smtp: message refused"
                    );
                    self.reject(&reject).await
                }
            }
        };
        self.reset();
        result
    }

    /// Ends the transaction; the greeting stays.
    fn reset(&mut self) {
        self.in_transaction = false;
        self.envelope.mail_from.clear();
        self.envelope.rcpt_to.clear();
    }

    async fn reject(&mut self, reject: &Reject) -> Result<(), Stop> {
        // A handler must refuse with a 4xx or 5xx; anything else would read as success to the client.
        let (code, status) = if (400..600).contains(&reject.code) {
            (reject.code, reject.status)
        } else {
            (451, "4.3.0")
        };
        self.reply(code, status, &reject.message).await
    }

    /// A protocol error reply; after `MAX_ERRORS` of them the client is not an MTA worth serving.
    async fn error(&mut self, code: u16, status: &str, text: &str) -> Result<(), Stop> {
        self.errors += 1;
        if self.errors >= MAX_ERRORS {
            tracing::info!(peer = %self.envelope.peer, "smtp: too many errors, closing");
            self.reply(421, "4.7.0", "Too many errors, closing connection")
                .await?;
            return Err(Stop::TooManyErrors);
        }
        self.reply(code, status, text).await
    }

    async fn reply(&mut self, code: u16, status: &str, text: &str) -> Result<(), Stop> {
        // A handler's text must not be able to end the reply early and inject another one.
        let text: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let line = if status.is_empty() || !is_enhanced_status(status) {
            format!("{code} {text}\r\n")
        } else {
            format!("{code} {status} {text}\r\n")
        };
        self.send(line.as_bytes()).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let idle = self.shared.limits.idle_timeout;
        match tokio::time::timeout(idle, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Io),
            Err(_) => Err(Stop::Timeout),
        }
    }
}

/// "x.y.z" with digits (RFC 3463), so a handler's status cannot break the reply line.
fn is_enhanced_status(status: &str) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `FROM:<path> PARAM...` (or `TO:`), returning the address without brackets and the
/// parameters. Lenient where real clients are (a space after the colon, missing brackets), strict where
/// it matters (no whitespace or control characters in the address, RFC 5321's length limit).
fn parse_path<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg.get(keyword.len()..)?.trim_start();
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => {
            let end = inner.find('>')?;
            (&inner[..end], &inner[end + 1..])
        }
        None => match rest.find(|c: char| c.is_ascii_whitespace()) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        },
    };
    if !params.is_empty() && !params.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    // RFC 5321 §4.1.2 allows an obsolete source route, `<@a,@b:user@c>`; only the mailbox counts.
    let path = match path.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => path,
    };
    if path.len() > MAX_PATH
        || path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
    {
        return None;
    }
    Some((path, params.split_ascii_whitespace().collect()))
}

#[cfg(test)]
mod tests {
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
            idle_timeout: Duration::from_secs(10),
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
                let n =
                    tokio::time::timeout(Duration::from_secs(5), self.reader.read_line(&mut line))
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
            let read =
                tokio::time::timeout(Duration::from_secs(5), self.reader.read_to_end(&mut rest))
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
    async fn pipelined_commands_and_bare_lf() {
        let server = start(limits()).await;
        let mut c = Client::connect(&server).await;
        c.send("HELO relay\nMAIL FROM:<>\nRCPT TO:<a@in.tocsin.test>\nRCPT TO:<b@in.tocsin.test>\nDATA\n")
            .await;
        for code in [250, 250, 250, 250, 354] {
            assert_eq!(c.reply().await.0, code);
        }
        c.send("line one\n.\nMAIL FROM:<x@y.z>\nRSET\nNOOP\n").await;
        for code in [250, 250, 250, 250] {
            assert_eq!(c.reply().await.0, code);
        }
        let messages = server.messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].1, b"line one\n");
        assert_eq!(messages[0].0.mail_from, "");
        assert_eq!(messages[0].0.rcpt_to.len(), 2);
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
    async fn idle_timeout_answers_421_and_closes() {
        let server = start(Limits {
            idle_timeout: Duration::from_millis(200),
            ..limits()
        })
        .await;
        let mut c = Client::connect(&server).await;
        c.send("EHLO mx\r\nNOO").await;
        assert_eq!(c.reply().await.0, 250);
        let (code, text) = c.reply().await;
        assert_eq!(code, 421, "{text}");
        assert!(c.closed().await);
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
}
