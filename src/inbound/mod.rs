//! Reply by email: tocsin's own inbound SMTP listener, which turns replies to its emails into notes.
//!
//! Emails to members carry `Reply-To: reply+<signed token>@<inbound domain>` (see `mailer::token`).
//! The organisation's MX forwards that domain to this listener (`email.inbound.listen`). A recipient
//! is refused at `RCPT TO` unless tocsin signed it and it has not expired; the message is refused
//! unless its `From` is the address tocsin sent that reply address to. An accepted reply becomes a
//! public note by the member (so it is mirrored into the ticket's chat thread), after a first line of
//! `ack` or `resolve` does that. tocsin answers 250 only once the note is stored, so the sending MTA
//! keeps what tocsin could not take and tries again.

pub mod message;
pub mod smtp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::reply::{self, ReplyCommand};
use crate::domain::ticket::{Action, Actor};
use crate::domain::timeline::Visibility;
use crate::mailer::{ReplyTarget, TokenError, Tokens};
use crate::store::{Store, StoreError, TicketRef};
use smtp::{Envelope, Handler, Limits, Reject};

#[derive(Debug)]
pub struct Inbound {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tokens: Tokens,
    /// The domain reply addresses use, lowercase.
    domain: String,
    /// Member → their email address, lowercase: the only sender a member's reply address accepts.
    addresses: BTreeMap<String, String>,
    max_size: usize,
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
        Some(Arc::new(Inbound {
            store,
            clock,
            tokens: Tokens::new(email.secret.expose()),
            domain: inbound.domain.0.to_ascii_lowercase(),
            addresses,
            max_size: usize::try_from(inbound.max_size.0 .0).unwrap_or(usize::MAX),
        }))
    }

    /// Serves SMTP on `listener` until shutdown.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        let limits = Limits {
            max_message: self.max_size,
            max_recipients: 20,
            idle_timeout: Duration::from_secs(300),
        };
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

    /// Applies one reply: the command, then the note. Store trouble is a temporary failure, so the
    /// sender's MTA keeps the message and tries again.
    async fn apply(&self, target: &ReplyTarget, text: &str) -> Result<(), Reject> {
        let parsed = reply::parse(text);
        if parsed.command.is_none() && parsed.text.trim().is_empty() {
            return Err(Reject {
                code: 550,
                status: "5.6.0",
                message: "the reply is empty once quoted text is removed".into(),
            });
        }
        let ticket = TicketRef::Number(target.number);
        let now = self.clock.now();
        let unavailable = |e: StoreError| Reject {
            code: 451,
            status: "4.3.0",
            message: format!("cannot store the reply now, try again later ({e})"),
        };
        let actor = Actor::new(&target.member, "email");
        if let Some(command) = parsed.command {
            let action = match command {
                ReplyCommand::Ack => Action::Ack,
                ReplyCommand::Resolve => Action::Resolve,
            };
            match self.store.act(&ticket, action, &actor, now).await {
                Ok(_) | Err(StoreError::Rejected(_)) => {}
                Err(StoreError::NotFound) => return Err(no_ticket(target.number)),
                Err(e) => return Err(unavailable(e)),
            }
        }
        if !parsed.text.trim().is_empty() {
            let note = Action::Note {
                text: parsed.text.trim().to_string(),
                visibility: Visibility::Public,
            };
            match self.store.act(&ticket, note, &actor, now).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => return Err(no_ticket(target.number)),
                Err(StoreError::Rejected(e)) => {
                    return Err(Reject {
                        code: 550,
                        status: "5.6.0",
                        message: e.to_string(),
                    })
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        tracing::info!(member = %target.member, ticket = target.number, command = ?parsed.command, "Took a reply by email.");
        Ok(())
    }
}

fn no_ticket(number: i64) -> Reject {
    Reject {
        code: 550,
        status: "5.1.1",
        message: format!("ticket T-{number} does not exist"),
    }
}

#[async_trait]
impl Handler for Inbound {
    async fn recipient(&self, _envelope: &Envelope, address: &str) -> Result<(), Reject> {
        self.target(address).map(|_| ())
    }

    async fn message(&self, envelope: &Envelope, data: &[u8]) -> Result<(), Reject> {
        let Some(mail) = message::read(data) else {
            return Err(Reject {
                code: 550,
                status: "5.6.0",
                message: "cannot read the message".into(),
            });
        };
        // Bounces come from the null sender `<>`; as the last hop, tocsin sees that only in the
        // envelope (nobody has written a Return-Path header yet).
        if mail.auto_submitted || envelope.mail_from.is_empty() {
            // Out-of-office answers and bounces are not replies: take them (so nobody retries) and
            // drop them.
            tracing::info!(from = ?mail.from, "Dropped an automatic reply.");
            return Ok(());
        }
        for rcpt in &envelope.rcpt_to {
            let target = self.target(rcpt)?;
            let expected = self.addresses.get(&target.member);
            if expected.is_none() || mail.from.as_ref() != expected {
                tracing::warn!(from = ?mail.from, member = %target.member, "Refused a reply from the wrong sender.");
                return Err(Reject {
                    code: 550,
                    status: "5.7.1",
                    message: "this reply address belongs to someone else".into(),
                });
            }
            self.apply(&target, &mail.text).await?;
        }
        Ok(())
    }
}
