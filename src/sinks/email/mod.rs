//! Email through SMTP with lettre: one pooled async transport per configured server, one multipart
//! (text + HTML) message per [`Email`], and the server's answer classified into a [`MailOutcome`].
//!
//! Like the chat sinks, the mailer never retries or sleeps: a 4xx answer, a refused connection, a
//! timeout or a TLS failure is [`MailOutcome::Retry`] and the caller decides when; a 5xx answer, or an
//! email that cannot be built (a recipient that does not parse, a malformed id), is
//! [`MailOutcome::Permanent`], because sending it again would get the same answer.
//!
//! Threading: the caller picks the ids. The first email of a ticket's thread has a root `Message-ID`;
//! later ones point at it with `In-Reply-To` and `References` and get `Re: ` in a subject that otherwise
//! stays the same, which is what Gmail needs besides the references to put them in one conversation.
//!
//! Only this folder (and the rest of `sinks/`) names lettre.

pub mod render;

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use reqwest::Url;

use crate::config::{parse_smtp_url, SmtpEndpoint, SmtpSecurity};
use crate::domain::mail::MailContent;

/// How long a pooled connection may sit idle before it is closed. Servers drop idle clients after a
/// few minutes anyway (Postfix: 300 s); closing first saves a failed NOOP on reuse.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Where and how to send.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://host[:port]` (plain, port 25; for a local relay or tests), `smtp+starttls://host[:port]`
    /// (STARTTLS required, 587) or `smtps://host[:port]` (implicit TLS, 465).
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `tocsin <alerts@example.com>` or a bare address.
    pub from: String,
    /// Bounds connecting and each SMTP command.
    pub timeout: Duration,
    /// Connections kept open for reuse.
    pub pool_size: u32,
}

/// The password never reaches a log line.
impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// One email to one member.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The recipient's address (`bob@example.com`, or `Bob <bob@example.com>`).
    pub to: String,
    /// Without angle brackets, e.g. `t42.7.ab12@tocsin.example`.
    pub message_id: String,
    /// Without angle brackets: the thread's root (or the previous email).
    pub in_reply_to: Option<String>,
    /// Without angle brackets, oldest first. Sent as given.
    pub references: Vec<String>,
    /// Where replies go (the signed reply-by-email address), if replies are on.
    pub reply_to: Option<String>,
    /// The one-click unsubscribe URL for `List-Unsubscribe`. `List-Unsubscribe-Post` is added only when
    /// it is https, as RFC 8058 requires.
    pub unsubscribe_url: String,
    /// `tickets.tocsin.example`, sent as `List-Id: <tickets.tocsin.example>`, so people can filter.
    pub list_id: String,
    /// The ticket number of a single-ticket email, sent as `X-Tocsin-Ticket: T-42`.
    pub ticket: Option<i64>,
    /// A later email in the ticket's thread: `Re: ` in the subject.
    pub follow_up: bool,
    pub content: MailContent,
}

/// How a send went.
#[derive(Debug, Clone, PartialEq)]
pub enum MailOutcome {
    /// The server accepted the message (250 after DATA).
    Sent,
    /// Try again later: 4xx, connection refused or lost, timeout, TLS failure.
    Retry { error: String },
    /// Sending it again would fail the same way: 5xx, or the email cannot be built.
    Permanent { error: String },
}

/// Sends emails. A trait so the outbox can be tested without a server.
#[async_trait]
pub trait Mailer: Send + Sync + fmt::Debug + 'static {
    async fn send(&self, email: &Email) -> MailOutcome;
}

/// The SMTP mailer. The transport (and its connection pool) is made once, on the first send: lettre's
/// pool starts a cleanup task, which needs the tokio runtime, and `new` also serves config checks that
/// run without one.
pub struct SmtpMailer {
    url: String,
    endpoint: SmtpEndpoint,
    from: Mailbox,
    credentials: Option<Credentials>,
    timeout: Duration,
    pool_size: u32,
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("url", &self.url)
            .field("from", &self.from.to_string())
            .field("authenticated", &self.credentials.is_some())
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl SmtpMailer {
    /// Checks the settings; the error names the setting and the problem.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpMailer, String> {
        let endpoint = parse_smtp_url(&settings.url)?;
        let from: Mailbox = settings
            .from
            .trim()
            .parse()
            .map_err(|e| format!("from `{}` is not an email address: {e}", settings.from))?;
        let credentials = match (&settings.username, &settings.password) {
            (Some(u), Some(p)) => Some(Credentials::new(u.clone(), p.clone())),
            (None, None) => None,
            (Some(_), None) => return Err("smtp username is set but password is not".into()),
            (None, Some(_)) => return Err("smtp password is set but username is not".into()),
        };
        if credentials.is_some()
            && endpoint.security == SmtpSecurity::Plain
            && !is_loopback(&endpoint.host)
        {
            // AUTH over a plain connection would send the password in the clear across the network.
            return Err(format!(
                "smtp url `{}` is plain SMTP to a remote host: use smtp+starttls:// or smtps:// with a username and password",
                settings.url.trim()
            ));
        }
        if settings.timeout.is_zero() {
            return Err("smtp timeout must be more than 0".into());
        }
        if matches!(
            endpoint.security,
            SmtpSecurity::StartTls | SmtpSecurity::Wrapper
        ) {
            // Builds the TLS client config now so a bad host name fails at startup, not at first send.
            TlsParameters::new(endpoint.host.clone())
                .map_err(|e| format!("smtp TLS for `{}`: {e}", endpoint.host))?;
        }
        Ok(SmtpMailer {
            url: settings.url.trim().to_string(),
            endpoint,
            from,
            credentials,
            timeout: settings.timeout,
            pool_size: settings.pool_size.max(1),
            transport: OnceLock::new(),
        })
    }

    fn transport(&self) -> Result<&AsyncSmtpTransport<Tokio1Executor>, String> {
        if let Some(t) = self.transport.get() {
            return Ok(t);
        }
        let e = &self.endpoint;
        let tls = match e.security {
            SmtpSecurity::Plain => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(&e.host)?),
            SmtpSecurity::Wrapper => Tls::Wrapper(tls_parameters(&e.host)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.host.clone())
            .port(e.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(self.pool_size)
                    .idle_timeout(POOL_IDLE),
            );
        if let Some(c) = &self.credentials {
            builder = builder.credentials(c.clone());
        }
        // Two first sends racing: `OnceLock` runs one initialiser and the other waits for its transport.
        Ok(self.transport.get_or_init(|| builder.build()))
    }

    /// The message as it goes on the wire; `Err` when it cannot be built (a permanent problem).
    fn message(&self, email: &Email) -> Result<Message, String> {
        let to: Mailbox = email
            .to
            .trim()
            .parse()
            .map_err(|e| format!("recipient `{}` is not an email address: {e}", email.to))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(render::subject(&email.content, email.follow_up))
            .message_id(Some(angle(&email.message_id, "message_id")?))
            .date_now();
        if let Some(parent) = &email.in_reply_to {
            builder = builder.in_reply_to(angle(parent, "in_reply_to")?);
        }
        if !email.references.is_empty() {
            let refs = email
                .references
                .iter()
                .map(|r| angle(r, "references"))
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.references(refs.join(" "));
        }
        if let Some(reply_to) = &email.reply_to {
            let reply_to: Mailbox = reply_to
                .trim()
                .parse()
                .map_err(|e| format!("reply_to `{reply_to}` is not an email address: {e}"))?;
            builder = builder.reply_to(reply_to);
        }
        // RFC 3834: tells vacation responders and other robots not to answer.
        builder = builder.raw_header(raw("Auto-Submitted", "auto-generated".into()));
        if !is_token(&email.list_id) {
            return Err(format!("list_id `{}` is not a list id", email.list_id));
        }
        builder = builder.raw_header(raw("List-Id", format!("<{}>", email.list_id)));
        match unsubscribe(&email.unsubscribe_url) {
            Some((url, one_click)) => {
                builder = builder.raw_header(raw("List-Unsubscribe", format!("<{url}>")));
                if one_click {
                    // RFC 8058: mail clients may POST to the URL to unsubscribe in one click.
                    builder = builder.raw_header(raw(
                        "List-Unsubscribe-Post",
                        "List-Unsubscribe=One-Click".into(),
                    ));
                }
            }
            // A bad unsubscribe link is tocsin's own bug; the member still needs the alert.
            None => tracing::warn!(
                url = %email.unsubscribe_url,
                "unsubscribe url is not an http(s) URL; sending without List-Unsubscribe"
            ),
        }
        if let Some(number) = email.ticket {
            builder = builder.raw_header(raw("X-Tocsin-Ticket", format!("T-{number}")));
        }
        // No Content-Type here: `multipart` sets it, and setting one too would send two.
        builder
            .multipart(MultiPart::alternative_plain_html(
                render::text(&email.content),
                render::html(&email.content),
            ))
            .map_err(|e| format!("the email cannot be built: {e}"))
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> MailOutcome {
        let message = match self.message(email) {
            Ok(m) => m,
            Err(error) => return MailOutcome::Permanent { error },
        };
        let transport = match self.transport() {
            Ok(t) => t,
            // TLS setup failing here is a local problem a restart or reload may fix.
            Err(error) => return MailOutcome::Retry { error },
        };
        match transport.send(message).await {
            Ok(_) => MailOutcome::Sent,
            Err(e) => classify(&e, &self.url),
        }
    }
}

/// 5xx is permanent. Everything else (4xx, connection refused or reset, timeouts, TLS, a garbled
/// answer) may go away by itself or after an admin fixes the server, so it is retried.
fn classify(e: &lettre::transport::smtp::Error, url: &str) -> MailOutcome {
    let error = format!("{url}: {e}");
    if e.is_permanent() {
        MailOutcome::Permanent { error }
    } else {
        MailOutcome::Retry { error }
    }
}

fn tls_parameters(host: &str) -> Result<TlsParameters, String> {
    TlsParameters::new(host.to_string()).map_err(|e| format!("smtp TLS for `{host}`: {e}"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A header lettre has no type for. `HeaderValue::new` encodes anything outside printable ASCII
/// (RFC 2047), so no value can break out of its header line.
fn raw(name: &'static str, value: String) -> HeaderValue {
    HeaderValue::new(HeaderName::new_from_ascii_str(name), value)
}

/// Printable ASCII without spaces or angle brackets: what fits between `<` and `>` in an id header.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 900
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// `<id>` for a message id given without brackets; an id that is not `left@right` is refused, since
/// a malformed one would break threading for the whole ticket.
fn angle(id: &str, field: &str) -> Result<String, String> {
    let ok = is_token(id)
        && id
            .split_once('@')
            .is_some_and(|(l, r)| !l.is_empty() && !r.is_empty());
    if ok {
        Ok(format!("<{id}>"))
    } else {
        Err(format!(
            "{field} `{id}` is not a message id like t42.1@tocsin.example"
        ))
    }
}

/// The URL for `List-Unsubscribe`, and whether it may be one-click (https only, per RFC 8058).
fn unsubscribe(url: &str) -> Option<(String, bool)> {
    let url = url.trim();
    if !is_token(url) {
        return None;
    }
    let parsed = Url::parse(url).ok()?;
    parsed.host_str()?;
    match parsed.scheme() {
        "https" => Some((parsed.to_string(), true)),
        "http" => Some((parsed.to_string(), false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: url.into(),
            username: None,
            password: None,
            from: "tocsin <alerts@example.com>".into(),
            timeout: Duration::from_secs(10),
            pool_size: 2,
        }
    }

    #[test]
    fn new_checks_settings() {
        assert!(SmtpMailer::new(&settings("smtp://127.0.0.1:2525")).is_ok());
        assert!(SmtpMailer::new(&settings("smtps://mail.example.com")).is_ok());

        let mut s = settings("smtp://127.0.0.1:25");
        s.from = "not an address".into();
        assert!(SmtpMailer::new(&s)
            .unwrap_err()
            .contains("from `not an address`"));

        let mut s = settings("smtp+starttls://mail.example.com");
        s.username = Some("u".into());
        assert!(SmtpMailer::new(&s).unwrap_err().contains("password is not"));
        s.password = Some("p".into());
        assert!(SmtpMailer::new(&s).is_ok());
        // The password is never printed.
        assert!(!format!("{s:?}").contains("\"p\""));

        s.url = "smtp://mail.example.com".into();
        assert!(SmtpMailer::new(&s)
            .unwrap_err()
            .contains("plain SMTP to a remote host"));
        s.url = "smtp://localhost:25".into();
        assert!(SmtpMailer::new(&s).is_ok());
    }

    #[test]
    fn ids_and_urls_for_headers() {
        assert_eq!(
            angle("t42.1.ab@tocsin.example", "x").unwrap(),
            "<t42.1.ab@tocsin.example>"
        );
        for bad in [
            "",
            "t42",
            "<t42@x>",
            "t42@x\r\nBcc: a@b",
            "t 42@x",
            "@x",
            "t42@",
            "t42@é",
        ] {
            assert!(angle(bad, "message_id").is_err(), "{bad:?}");
        }
        assert_eq!(
            unsubscribe("https://tocsin.example/u/abc"),
            Some(("https://tocsin.example/u/abc".into(), true))
        );
        assert_eq!(
            unsubscribe("http://tocsin.test/u/abc"),
            Some(("http://tocsin.test/u/abc".into(), false))
        );
        for bad in [
            "",
            "javascript:alert(1)",
            "https://x/a b",
            "https://x/<y>",
            "mailto:u@x",
        ] {
            assert_eq!(unsubscribe(bad), None, "{bad}");
        }
    }

    #[test]
    fn classification() {
        // Transport errors cannot be built outside lettre; the real ones are exercised against a real
        // server in tests/sink_email.rs. What is checked here is the message building side.
        let mailer = SmtpMailer::new(&settings("smtp://127.0.0.1:1")).unwrap();
        let content = MailContent {
            member: "bob".into(),
            tickets: vec![],
            unsubscribe_link: "https://tocsin.example/u/x".into(),
            reply_enabled: false,
        };
        let email = Email {
            to: "bob@example.com".into(),
            message_id: "t1@tocsin.example".into(),
            in_reply_to: None,
            references: vec![],
            reply_to: None,
            unsubscribe_url: "https://tocsin.example/u/x".into(),
            list_id: "tickets.tocsin.example".into(),
            ticket: None,
            follow_up: false,
            content,
        };
        let formatted = String::from_utf8(mailer.message(&email).unwrap().formatted()).unwrap();
        assert_eq!(
            formatted
                .matches("\r\nContent-Type: multipart/alternative")
                .count(),
            1
        );
        assert!(formatted.contains("\r\nList-Id: <tickets.tocsin.example>\r\n"));
        assert!(formatted.contains("\r\nAuto-Submitted: auto-generated\r\n"));

        for (to, says) in [
            ("not an address", "recipient"),
            ("bob@example.com\r\nBcc: eve@example.com", "recipient"),
            ("", "recipient"),
        ] {
            let mut e = email.clone();
            e.to = to.into();
            let err = mailer.message(&e).unwrap_err();
            assert!(err.contains(says), "{to:?}: {err}");
        }
        let mut e = email.clone();
        e.references = vec!["t1@tocsin.example".into(), "broken".into()];
        assert!(mailer
            .message(&e)
            .unwrap_err()
            .contains("references `broken`"));
        let mut e = email;
        e.list_id = "a b".into();
        assert!(mailer.message(&e).unwrap_err().contains("list_id"));
    }
}
