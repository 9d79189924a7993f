//! `email:` (SMTP, sender, defaults for members' notifications, reply by email) and the per-member
//! `notify:` preferences.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::rooms::RateLimitConfig;
use super::values::{ByteSize, Env, HumanDuration, Secret};
use crate::domain::mail::NotifyMode;

/// `email:`. Without it tocsin sends no email.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// `smtp://host[:port]` (plain, port 25), `smtp+starttls://host[:port]` (587) or
    /// `smtps://host[:port]` (implicit TLS, 465).
    pub smtp: Env<String>,
    /// SMTP credentials; write them as `${VAR}` so they come from the environment.
    #[serde(default)]
    pub username: Option<Env<String>>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// The sender, `tocsin <alerts@example.com>`. Its domain names Message-IDs.
    pub from: Env<String>,
    /// Signs reply addresses and unsubscribe links. At least 16 characters; from the environment.
    pub secret: Secret,
    /// How long after a mention the email waits (the member may read the chat meanwhile).
    #[serde(default = "default_delay")]
    pub delay: Env<HumanDuration>,
    /// Default notify mode for members: `immediate`, `batched` or `never`.
    #[serde(default)]
    pub mode: NotifyMode,
    /// A batched member gets at most one email per this window; what waits goes as one digest.
    #[serde(default = "default_batch_window")]
    pub batch_window: Env<HumanDuration>,
    /// Per recipient, on top of batching: a runaway route cannot flood a mailbox.
    #[serde(default = "default_rate")]
    pub rate_limit: RateLimitConfig,
    /// Emails that could not be sent for this long are given up (recorded as failed).
    #[serde(default = "default_max_age")]
    pub max_age: Env<HumanDuration>,
    /// How long a reply address stays valid.
    #[serde(default = "default_reply_ttl")]
    pub reply_ttl: Env<HumanDuration>,
    /// SMTP connect and command timeout.
    #[serde(default = "default_timeout")]
    pub timeout: Env<HumanDuration>,
    /// Reply by email: tocsin's own SMTP listener. Without it emails carry no `Reply-To`.
    #[serde(default)]
    pub inbound: Option<InboundConfig>,
}

/// `email.inbound:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Where the SMTP listener binds (`0.0.0.0:2525` behind the MX that forwards the domain).
    pub listen: Env<SocketAddr>,
    /// The domain reply addresses use: `reply+<token>@<domain>`.
    pub domain: Env<String>,
    /// Larger replies are refused with 552.
    #[serde(default = "default_max_size")]
    pub max_size: Env<ByteSize>,
    /// Whose `From` to believe. Required: without it anyone could write `From: alice@…` (see
    /// [`TrustConfig`]).
    #[serde(default)]
    pub trust: Option<TrustConfig>,
    /// How long a client may wait before `MAIL` (after connecting, between messages) before 421.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: Env<HumanDuration>,
    /// Inside a transaction (after `MAIL`): the wait for each command or piece of data.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: Env<HumanDuration>,
    /// The longest a connection may stay open, whatever it does.
    #[serde(default = "default_session_timeout")]
    pub session_timeout: Env<HumanDuration>,
    /// Connections served at once; more are answered 421.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections served at once from one IP address; more are answered 421.
    #[serde(default = "default_max_connections_per_peer")]
    pub max_connections_per_peer: usize,
}

/// `email.inbound.trust:`: when a reply's `From` is believed. A reply address is a bearer token that
/// sits in every copy of the email (forwards, archives, a colleague's inbox), so the sender check is
/// what stops someone holding it from acting as the member; that check is only worth what the `From`
/// header is worth. With both keys set, both must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The authserv-id of the MX that checks DMARC (RFC 8601). A reply is taken only when it carries
    /// an `Authentication-Results` header from this id with `dmarc=pass` (and none from it without).
    #[serde(default)]
    pub authserv_id: Option<Env<String>>,
    /// The only addresses the listener serves (the MX that relays replies). Others are refused at
    /// connect with 554.
    #[serde(default)]
    pub peers: Option<Vec<Env<IpAddr>>>,
}

/// `members.<name>.notify:`. Unset keys take the `email:` defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default)]
    pub delay: Option<Env<HumanDuration>>,
    #[serde(default)]
    pub mode: Option<NotifyMode>,
}

fn default_delay() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(120)))
}

fn default_batch_window() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(600)))
}

fn default_rate() -> RateLimitConfig {
    // 30 an hour with a burst of 5: far above what batching lets through, so only a runaway hits it.
    RateLimitConfig {
        per_second: 30.0 / 3600.0,
        burst: 5,
    }
}

fn default_max_age() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(24 * 3600)))
}

fn default_reply_ttl() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(14 * 24 * 3600)))
}

fn default_timeout() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(10)))
}

fn default_max_size() -> Env<ByteSize> {
    Env(ByteSize(1 << 20))
}

fn default_command_timeout() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(10)))
}

fn default_idle_timeout() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(60)))
}

fn default_session_timeout() -> Env<HumanDuration> {
    Env(HumanDuration(Duration::from_secs(300)))
}

fn default_max_connections() -> usize {
    100
}

fn default_max_connections_per_peer() -> usize {
    10
}

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    Plain,
    StartTls,
    Wrapper,
}

/// A checked SMTP URL (`email.smtp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEndpoint {
    pub security: SmtpSecurity,
    /// Without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

/// The URL as it may be shown (in `tocsin check`, logs): whatever stands before an `@` after the
/// scheme (a user and password) is replaced with `***`.
fn redacted(raw: &str) -> String {
    match (raw.find("://"), raw.rfind('@')) {
        (Some(start), Some(at)) if at > start + 3 => {
            format!("{}***{}", &raw[..start + 3], &raw[at..])
        }
        (None, Some(at)) => format!("***{}", &raw[at..]),
        _ => raw.to_string(),
    }
}

/// Reads an SMTP URL the way the mailer (`sinks::email::SmtpMailer`) connects to it; config validation
/// uses the same reading, so `tocsin check` refuses exactly the URLs the mailer could not use. Parsed
/// with the `url` crate (the WHATWG URL parser reqwest also uses).
pub fn parse_smtp_url(text: &str) -> Result<SmtpEndpoint, String> {
    let text = text.trim();
    // Messages name the URL without the credentials it may hold.
    let shown = redacted(text);
    let raw = shown.as_str();
    let hint = "use smtp://host[:port], smtp+starttls://host[:port] or smtps://host[:port]";
    let url =
        Url::parse(text).map_err(|e| format!("smtp url `{raw}` is not a URL ({e}): {hint}"))?;
    let (security, default_port) = match url.scheme() {
        "smtp" => (SmtpSecurity::Plain, 25),
        "smtp+starttls" => (SmtpSecurity::StartTls, 587),
        "smtps" => (SmtpSecurity::Wrapper, 465),
        other => {
            return Err(format!(
                "smtp url `{raw}` has scheme `{other}`, which is not one tocsin knows: {hint}"
            ))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in logs and `ps`; there are settings for them.
        return Err(format!(
            "smtp url `{raw}` contains credentials: put them in username and password instead"
        ));
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "smtp url `{raw}` has a path, query or fragment; {hint}"
        ));
    }
    let host = url
        .host_str()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("smtp url `{raw}` has no host: {hint}"))?;
    let port = url.port().unwrap_or(default_port);
    if port == 0 {
        return Err(format!("smtp url `{raw}` has port 0"));
    }
    Ok(SmtpEndpoint {
        security,
        host: host.to_string(),
        port,
    })
}

impl EmailConfig {
    /// The problems types alone cannot catch, as (key under `email.`, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(e) = parse_smtp_url(&self.smtp.0) {
            out.push(("smtp", e));
        }
        if self.from_domain().is_none() {
            out.push((
                "from",
                format!("`{}` has no address with a domain", self.from.0),
            ));
        }
        if self.secret.expose().chars().count() < 16 {
            out.push((
                "secret",
                "must be at least 16 characters (it signs reply and unsubscribe links)".into(),
            ));
        }
        if self.username.is_some() != self.password.is_some() {
            out.push((
                "username",
                "username and password go together; set both or neither".into(),
            ));
        }
        if !(self.rate_limit.per_second.is_finite() && self.rate_limit.per_second > 0.0)
            || self.rate_limit.burst == 0
        {
            out.push((
                "rate_limit",
                "needs per_second above zero and a burst of at least 1".into(),
            ));
        }
        if self.reply_ttl.0 .0.is_zero() {
            out.push(("reply_ttl", "must be longer than zero".into()));
        }
        if let Some(inbound) = &self.inbound {
            let d = &inbound.domain.0;
            if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
                out.push(("inbound.domain", format!("`{d}` is not a domain name")));
            }
            if inbound.max_size.0 .0 == 0 {
                out.push(("inbound.max_size", "must be larger than zero".into()));
            }
            match &inbound.trust {
                None => out.push((
                    "inbound.trust",
                    "is required: say whose From to believe, with `authserv_id` (the MX's \
                     Authentication-Results with dmarc=pass) and/or `peers` (the MX's addresses); \
                     without it anyone could reply as a member"
                        .into(),
                )),
                Some(trust) => {
                    if trust.authserv_id.is_none() && trust.peers.is_none() {
                        out.push((
                            "inbound.trust",
                            "needs `authserv_id`, `peers` or both".into(),
                        ));
                    }
                    if let Some(id) = &trust.authserv_id {
                        let id = id.0.trim();
                        if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == ';') {
                            out.push((
                                "inbound.trust.authserv_id",
                                format!("`{id}` is not an authserv-id (a host name, as the MX writes it)"),
                            ));
                        }
                    }
                    if trust.peers.as_ref().is_some_and(Vec::is_empty) {
                        out.push((
                            "inbound.trust.peers",
                            "is empty: nobody could deliver replies; list the MX's addresses"
                                .into(),
                        ));
                    }
                }
            }
            for (key, value) in [
                ("inbound.command_timeout", &inbound.command_timeout),
                ("inbound.idle_timeout", &inbound.idle_timeout),
                ("inbound.session_timeout", &inbound.session_timeout),
            ] {
                if value.0 .0.is_zero() {
                    out.push((key, "must be longer than zero".into()));
                }
            }
            if inbound.max_connections == 0 {
                out.push(("inbound.max_connections", "must be at least 1".into()));
            }
            if inbound.max_connections_per_peer == 0
                || inbound.max_connections_per_peer > inbound.max_connections
            {
                out.push((
                    "inbound.max_connections_per_peer",
                    "must be at least 1 and at most `max_connections`".into(),
                ));
            }
        }
        out
    }

    /// The domain of the `from` address: `alerts@example.com` or `tocsin <alerts@example.com>`.
    pub fn from_domain(&self) -> Option<String> {
        let from = self.from.0.trim();
        let address = match (from.rfind('<'), from.rfind('>')) {
            (Some(a), Some(b)) if a < b => &from[a + 1..b],
            _ => from,
        };
        let (local, domain) = address.rsplit_once('@')?;
        (!local.is_empty() && !domain.is_empty() && !domain.contains(char::is_whitespace))
            .then(|| domain.to_ascii_lowercase())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_about_smtp_urls_never_show_their_password() {
        for url in [
            "smtp://alice:hunter2-secret@mail.example.org:587",
            "smtps://alice:hunter2-secret@mail.example.org/path",
            "ftp://alice:hunter2-secret@mail.example.org",
            "alice:hunter2-secret@mail.example.org",
        ] {
            let err = super::parse_smtp_url(url).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("***@mail.example.org"), "{err}");
        }
    }

    use super::*;

    #[test]
    fn urls() {
        let p = |u| parse_smtp_url(u).unwrap();
        assert_eq!(
            p("smtp://127.0.0.1:2525"),
            SmtpEndpoint {
                security: SmtpSecurity::Plain,
                host: "127.0.0.1".into(),
                port: 2525
            }
        );
        assert_eq!(p("smtp://mail.example.com").port, 25);
        assert_eq!(p("smtp+starttls://mail.example.com").port, 587);
        assert_eq!(
            p("smtp+starttls://mail.example.com").security,
            SmtpSecurity::StartTls
        );
        assert_eq!(p("smtps://mail.example.com/").port, 465);
        assert_eq!(
            p("smtps://mail.example.com").security,
            SmtpSecurity::Wrapper
        );
        assert_eq!(p("smtp://[::1]:25").host, "::1");

        for (bad, says) in [
            ("mail.example.com", "not a URL"),
            ("http://mail.example.com", "scheme `http`"),
            ("smtp://user:pw@mail.example.com", "credentials"),
            ("smtp://mail.example.com/x", "path"),
            ("smtp://mail.example.com?tls=required", "query"),
            ("smtp://", "no host"),
            ("smtp://mail.example.com:0", "port 0"),
            ("smtp://mail.example.com:99999", "not a URL"),
        ] {
            let err = parse_smtp_url(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
