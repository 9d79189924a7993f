//! `email:` (SMTP, sender, defaults for members' notifications, reply by email) and the per-member
//! `notify:` preferences.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

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

impl EmailConfig {
    /// The problems types alone cannot catch, as (key under `email.`, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Err(e) = crate::sinks::email::check_url(&self.smtp.0) {
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
