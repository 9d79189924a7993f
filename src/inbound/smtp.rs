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
//! `max_message` bytes of message. Time per connection is bounded too, so idle clients cannot hold
//! every slot: a short timeout before `MAIL` (a relay with mail to give sends it at once), a longer
//! one inside a transaction, and a deadline for the whole session. Too many protocol errors and too
//! many connections, in all or from one address, are refused with 421, as Postfix does.
//!
//! DATA ends only at CRLF `.` CRLF, and a message with a bare CR or LF is refused: servers that read
//! line ends differently are how one message gets smuggled inside another (CVE-2023-51766 and
//! friends), and a relay that speaks SMTP properly never sends them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[path = "smtp_syntax.rs"]
mod syntax;
#[cfg(test)]
use syntax::is_enhanced_status;
use syntax::{parse_path, reply_line, trim_line_end, LineEnds};

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
    /// Each connecting address, before the greeting. Err answers with the reject (use 554) and closes.
    fn peer(&self, _ip: IpAddr) -> Result<(), Reject> {
        Ok(())
    }
    /// Each RCPT TO address (angle brackets removed). Err refuses that recipient with the reply given.
    async fn recipient(&self, envelope: &Envelope, address: &str) -> Result<(), Reject>;
    /// The whole message after DATA (dot-unstuffed, CRLF kept), once at least one recipient was accepted.
    /// Ok answers 250; Err answers with the reject. tocsin answers 250 only after storing what it took.
    async fn message(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Reject>;
}

/// Per-connection and per-server limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest message accepted, in bytes after dot-unstuffing; larger ones get 552.
    pub max_message: usize,
    /// Most recipients per transaction; more get 452 (RFC 5321 §4.5.3.1.10).
    pub max_recipients: usize,
    /// Outside a transaction (before `MAIL`, between messages): how long the server waits for a
    /// command before 421. Short, because this is where an idle client holds a slot for free.
    pub command_timeout: Duration,
    /// Inside a transaction: how long the server waits for a command line, a chunk of DATA or a write
    /// before 421.
    pub idle_timeout: Duration,
    /// The longest a connection stays open; when it is up the server answers 421 at the next wait.
    pub session_timeout: Duration,
    /// Connections served at once; more are answered 421 and closed.
    pub max_connections: usize,
    /// Connections served at once from one IP address; more are answered 421 and closed.
    pub max_per_peer: usize,
}

impl Default for Limits {
    /// 10 MiB, 50 recipients, 10 s before `MAIL`, a minute inside a transaction, five minutes in all,
    /// 100 connections, 10 from one address.
    fn default() -> Self {
        Limits {
            max_message: 10 * 1024 * 1024,
            max_recipients: 50,
            command_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(300),
            max_connections: 100,
            max_per_peer: 10,
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

/// Connections open now, in all and per address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Counts`], given back when dropped.
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Slot {
    /// Takes a place for `ip`, or says which limit is reached.
    fn take(
        counts: &Arc<Mutex<Counts>>,
        ip: IpAddr,
        limits: &Limits,
    ) -> Result<Slot, &'static str> {
        let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= limits.max_connections {
            return Err("Too many connections, try again later");
        }
        let mine = c.per_peer.entry(ip).or_insert(0);
        if *mine >= limits.max_per_peer {
            return Err("Too many connections from your address, try again later");
        }
        *mine += 1;
        c.total += 1;
        Ok(Slot {
            counts: Arc::clone(counts),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_peer.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Forget the address, so the map holds only peers connected now.
                c.per_peer.remove(&self.ip);
            }
        }
    }
}

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
    let counts = Arc::new(Mutex::new(Counts::default()));
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
                    // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
                    let ip = peer.ip().to_canonical();
                    // Refusals are best effort and non-blocking: a refused client must not hold the loop.
                    if let Err(reject) = shared.handler.peer(ip) {
                        tracing::info!(%peer, reason = %reject.message, "smtp: refused a connection");
                        let line = reply_line(reject.code, reject.status, &reject.message);
                        let _ = stream.try_write(line.as_bytes());
                        continue;
                    }
                    match Slot::take(&counts, ip, &shared.limits) {
                        Ok(slot) => {
                            let shared = Arc::clone(&shared);
                            tasks.spawn(connection(stream, peer, slot, shared, shutdown.clone()));
                        }
                        Err(why) => {
                            tracing::warn!(%peer, why, "smtp: too many connections, refusing");
                            let _ = stream.try_write(reply_line(421, "4.7.0", why).as_bytes());
                        }
                    }
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
    slot: Slot,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let (read, write) = stream.into_split();
    let deadline = Instant::now() + shared.limits.session_timeout;
    let mut session = Session {
        deadline,
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
    // The slot goes before the socket closes, so a client that saw the close may connect again.
    drop(slot);
    drop(session);
    tracing::debug!(%peer, ?stop, "smtp: connection closed");
}

struct Session {
    /// When the session ends, whatever it is doing.
    deadline: Instant,
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

    /// How long the next wait may last: the command or idle timeout, but never past the deadline.
    fn wait_until(&self) -> Instant {
        let limits = &self.shared.limits;
        let wait = if self.in_transaction {
            limits.idle_timeout
        } else {
            limits.command_timeout
        };
        (Instant::now() + wait).min(self.deadline)
    }

    /// Reads a piece into `self.buf`, answering 421 on timeout, at the deadline or on shutdown.
    async fn read(&mut self, max: usize) -> Result<Piece, Stop> {
        let until = self.wait_until();
        let read = tokio::time::timeout_at(until, read_piece(&mut self.reader, &mut self.buf, max));
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
                let host = self.shared.hostname.clone();
                let text = if Instant::now() >= self.deadline {
                    tracing::info!(peer = %self.envelope.peer, "smtp: session time limit, closing");
                    format!("{host} Session time limit reached, closing connection")
                } else {
                    tracing::info!(peer = %self.envelope.peer, "smtp: idle timeout, closing");
                    format!("{host} Idle timeout, closing connection")
                };
                let _ = self.reply(421, "4.4.2", &text).await;
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
        let mut line_ends = LineEnds::default();
        // After a CRLF (the one ending the DATA command counts): only here may a dot end the data.
        let mut at_line_start = true;
        loop {
            let piece = self.read(DATA_PIECE).await?;
            if piece == Piece::Eof {
                // No terminating dot: the client gave up, so nothing was delivered.
                return Err(Stop::Eof);
            }
            let complete = piece == Piece::Line;
            let mut bytes = self.buf.as_slice();
            let crlf = line_ends.scan(bytes);
            if at_line_start {
                // Only CRLF.CRLF ends the data: ".\n" after a bare LF, or after a CRLF, is data
                // (and makes the message refused below).
                if complete && bytes == b".\r\n" {
                    break;
                }
                // RFC 5321 §4.5.2: a leading dot was doubled by the sender.
                if let Some(rest) = bytes.strip_prefix(b".") {
                    bytes = rest;
                }
            }
            at_line_start = complete && crlf;
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
        let result = if line_ends.bare {
            tracing::info!(
                peer = %self.envelope.peer,
                from = %self.envelope.mail_from,
                "smtp: refused, bare CR or LF in the message"
            );
            self.reply(
                550,
                "5.6.0",
                "Bare CR or LF in the message; lines must end with CRLF (RFC 5321 section 2.3.8)",
            )
            .await
        } else if oversized {
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
        let line = reply_line(code, status, text);
        self.send(line.as_bytes()).await
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        // A write into a free socket buffer finishes at its first poll, even past the deadline (so
        // the last 421 goes out); a client that stopped reading is dropped at the wait's end.
        let until = (Instant::now() + self.shared.limits.idle_timeout).min(self.deadline);
        match tokio::time::timeout_at(until, self.writer.write_all(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Stop::Io),
            Err(_) => Err(Stop::Timeout),
        }
    }
}

#[cfg(test)]
#[path = "smtp_tests.rs"]
mod tests;
