//! Reply by email: tocsin's own inbound SMTP listener, which turns replies to its emails into notes.
//!
//! Emails to members carry `Reply-To: reply+<signed token>@<inbound domain>` (see `mailer::token`).
//! The organisation's MX forwards that domain to this listener (`email.inbound.listen`). A recipient
//! is refused at `RCPT TO` unless tocsin signed it and it has not expired; the message is refused
//! unless its `From` is the address tocsin sent that reply address to, and that `From` is believable
//! under the trust policy (`trust.rs`: one `From`, a matching `Sender`, DMARC or a listed relay). An
//! accepted reply becomes a public note by the member (so it is mirrored into the ticket's chat
//! thread), after a first line of `ack` or `resolve` does that.
//!
//! A message is taken whole: its replies to every reply address it was sent to are stored in one
//! transaction, and tocsin answers 250 only once they are, so the sending MTA keeps what tocsin could
//! not take and tries again. The store remembers each message's Message-ID per ticket and member
//! until the reply address expires, so such a retry, or a replay of a captured message, adds
//! nothing twice. Addresses differing only in letter case or expiry count as one.

pub mod html;
pub mod message;
pub mod smtp;
pub mod trust;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::reply::{self, ReplyCommand};
use crate::domain::ticket::{Action, Actor};
use crate::domain::timeline::Visibility;
use crate::mailer::{ReplyTarget, TokenError, Tokens};
use crate::store::{EmailReply, ReplyAction, Store, StoreError, TicketRef};
use smtp::{Envelope, Handler, Limits, Reject};
use trust::Trust;

/// Message-IDs longer than this are remembered by their hash.
const MAX_KEY: usize = 256;

#[derive(Debug)]
pub struct Inbound {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tokens: Tokens,
    /// The domain reply addresses use, lowercase.
    domain: String,
    /// Member → their email address, lowercase: the only sender a member's reply address accepts.
    addresses: BTreeMap<String, String>,
    trust: Trust,
    limits: Limits,
}

impl Inbound {
    /// `None` unless `email.inbound` is configured.
    pub fn from_config(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Option<Arc<Inbound>> {
        let email = config.email.as_ref()?;
        let inbound = email.inbound.as_ref()?;
        let addresses = config
            .members
            .iter()
            .filter_map(|(name, m)| Some((name.clone(), m.email.as_ref()?.0.to_ascii_lowercase())))
            .collect();
        let limits = Limits {
            max_message: usize::try_from(inbound.max_size.0 .0).unwrap_or(usize::MAX),
            max_recipients: 20,
            command_timeout: inbound.command_timeout.0 .0,
            idle_timeout: inbound.idle_timeout.0 .0,
            session_timeout: inbound.session_timeout.0 .0,
            max_connections: inbound.max_connections,
            max_per_peer: inbound.max_connections_per_peer,
        };
        Some(Arc::new(Inbound {
            store,
            clock,
            tokens: Tokens::new(email.secret.expose()),
            domain: inbound.domain.0.to_ascii_lowercase(),
            addresses,
            trust: Trust::from_config(inbound.trust.as_ref()),
            limits,
        }))
    }

    /// Serves SMTP on `listener` until shutdown.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        let limits = self.limits.clone();
        let hostname = self.domain.clone();
        smtp::serve(listener, hostname, limits, self, shutdown).await;
    }

    fn target(&self, address: &str) -> Result<ReplyTarget, Reject> {
        self.tokens
            .check_reply(address, &self.domain, self.clock.now())
            .map_err(|e| {
                tracing::warn!(%address, reason = %e, "Refused an inbound email's recipient.");
                let message = match e {
                    TokenError::Expired => {
                        "this reply address has expired; add your note in tocsin instead".into()
                    }
                    TokenError::WrongDomain => {
                        format!("tocsin accepts mail for {} only", self.domain)
                    }
                    TokenError::Malformed | TokenError::BadSignature => {
                        "no such reply address".to_string()
                    }
                };
                Reject {
                    code: 550,
                    status: if e == TokenError::Expired {
                        "5.1.1"
                    } else {
                        "5.7.1"
                    },
                    message,
                }
            })
    }

    /// The replies one message makes: the same actions on each distinct (ticket, member).
    fn replies(
        &self,
        parsed: &reply::Reply,
        targets: &[ReplyTarget],
    ) -> Result<Vec<EmailReply>, Reject> {
        let text = parsed.text.trim();
        if parsed.command.is_none() && text.is_empty() {
            return Err(Reject {
                code: 550,
                status: "5.6.0",
                message: "the reply is empty once quoted text is removed".into(),
            });
        }
        let mut actions = Vec::new();
        if let Some(command) = parsed.command {
            let action = match command {
                ReplyCommand::Ack => Action::Ack,
                ReplyCommand::Resolve => Action::Resolve,
            };
            // Acking an acked ticket is no reason to refuse the note that comes with it.
            actions.push(ReplyAction {
                action,
                optional: true,
            });
        }
        if !text.is_empty() {
            actions.push(ReplyAction {
                action: Action::Note {
                    text: text.to_string(),
                    visibility: Visibility::Public,
                },
                optional: false,
            });
        }
        Ok(targets
            .iter()
            .map(|t| EmailReply {
                ticket: TicketRef::Number(t.number),
                actor: Actor::new(&t.member, "email"),
                actions: actions.clone(),
            })
            .collect())
    }
}

/// What the store remembers a message by: its Message-ID (lowercased), or a hash of it when long, or
/// of the whole message when it has none (an MTA's retry sends the same bytes).
fn message_key(message_id: Option<&str>, data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    match message_id {
        Some(id) if id.len() <= MAX_KEY => id.to_lowercase(),
        Some(id) => format!("sha256:{}", hex::encode(Sha256::digest(id.to_lowercase()))),
        None => format!("sha256-message:{}", hex::encode(Sha256::digest(data))),
    }
}

fn refuse(code: u16, status: &'static str, message: impl Into<String>) -> Reject {
    Reject {
        code,
        status,
        message: message.into(),
    }
}

#[async_trait]
impl Handler for Inbound {
    fn peer(&self, ip: IpAddr) -> Result<(), Reject> {
        if self.trust.allows_peer(ip) {
            Ok(())
        } else {
            Err(refuse(
                554,
                "5.7.1",
                "tocsin takes replies only from its mail exchanger",
            ))
        }
    }

    async fn recipient(&self, _envelope: &Envelope, address: &str) -> Result<(), Reject> {
        self.target(address).map(|_| ())
    }

    async fn message(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Reject> {
        // MIME parsing, HTML conversion and quote stripping are CPU work on untrusted input: off
        // the async runtime, so a hostile message cannot stall the server's other work.
        let data = data.to_vec();
        let parsed = tokio::task::spawn_blocking(move || {
            let mail = message::read(&data)?;
            let key = message_key(mail.message_id.as_deref(), &data);
            let reply = reply::parse(&mail.text);
            Some((mail, key, reply))
        })
        .await
        .map_err(|e| refuse(451, "4.3.0", format!("cannot read the message now ({e})")))?;
        let Some((mail, key, parsed)) = parsed else {
            return Err(refuse(550, "5.6.0", "cannot read the message"));
        };
        // Bounces come from the null sender `<>`; as the last hop, tocsin sees that only in the
        // envelope (nobody has written a Return-Path header yet).
        if mail.auto_submitted || envelope.mail_from.is_empty() {
            // Out-of-office answers and bounces are not replies: take them (so nobody retries) and
            // drop them.
            tracing::info!(from = ?mail.from, "Dropped an automatic reply.");
            return Ok(());
        }
        let from = self.trust.sender(&mail).map_err(|why| {
            tracing::warn!(from = ?mail.from_all, peer = %envelope.peer, reason = %why, "Refused a reply whose sender cannot be trusted.");
            refuse(550, "5.7.1", why)
        })?;
        // One target per ticket and member, however many spellings of its address were used.
        let mut targets: Vec<ReplyTarget> = Vec::new();
        for rcpt in &envelope.rcpt_to {
            let target = self.target(rcpt)?;
            if self.addresses.get(&target.member).map(String::as_str) != Some(from) {
                tracing::warn!(%from, member = %target.member, "Refused a reply from the wrong sender.");
                return Err(refuse(
                    550,
                    "5.7.1",
                    "this reply address belongs to someone else",
                ));
            }
            match targets
                .iter_mut()
                .find(|t| t.number == target.number && t.member == target.member)
            {
                Some(seen) => seen.expires = seen.expires.max(target.expires),
                None => targets.push(target),
            }
        }
        let replies = self.replies(&parsed, &targets)?;
        // Remembered as long as any of its addresses could be used again.
        let Some(until) = targets.iter().map(|t| t.expires).max() else {
            return Err(refuse(554, "5.5.1", "no valid recipients"));
        };
        match self
            .store
            .take_email_reply(&key, replies, until, self.clock.now())
            .await
        {
            Ok(0) => {
                tracing::info!(%from, message_id = %key, "Took a reply by email again: already stored, nothing added.");
                Ok(())
            }
            Ok(_) => {
                let tickets: Vec<i64> = targets.iter().map(|t| t.number).collect();
                tracing::info!(%from, ?tickets, "Took a reply by email.");
                Ok(())
            }
            Err(StoreError::NotFound) => Err(refuse(
                550,
                "5.1.1",
                "the ticket this reply is for does not exist",
            )),
            Err(StoreError::Rejected(e)) => Err(refuse(550, "5.6.0", e.to_string())),
            Err(e) => Err(refuse(
                451,
                "4.3.0",
                format!("cannot store the reply now, try again later ({e})"),
            )),
        }
    }
}
