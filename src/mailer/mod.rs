//! The mailer: sends the emails routing scheduled for members who were mentioned while not online.
//!
//! Scheduling happens in the store, with the ticket change (see `Router::plan_mail`). When an email
//! comes due, this worker checks again (`domain::mail::recheck`): a member who came online, a ticket
//! acked or resolved, or an unsubscribe cancels it, with a timeline entry saying why. What is still
//! wanted is batched per member (`domain::mail::batch_release` and `group`), limited per recipient, and
//! sent through the SMTP sink (`sinks::email`). Transient failures are retried on the delivery schedule;
//! permanent ones are recorded. Like the outbox, it is driven by `step` in tests.
//!
//! Message-IDs are derived from the email rows (`tocsin.<ticket>.<email id>@<domain>`), so a retry after
//! a timeout or a crash sends the same Message-ID again and mail clients show it once.

pub mod token;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::cluster::{Cluster, MAILER};
use crate::config::{Config, RateLimitConfig};
use crate::domain::alert::Severity;
use crate::domain::delivery::{self, RetryDecision};
use crate::domain::mail::{self, MailContent, MailPolicy, MailTicket, Recheck};
use crate::domain::presence::{self, Presence};
use crate::domain::routing::{self as routing};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::sinks::email::{Email, MailOutcome, Mailer};
use crate::store::{EmailResult, PendingEmail, Store, StoreError};

pub use token::{ReplyTarget, TokenError, Tokens};

/// How often the worker looks for due emails. Delays are minutes, so a second is plenty.
const TICK: Duration = Duration::from_secs(1);
/// Due emails read per step.
const BATCH: usize = 500;

/// Everything about email that comes from the config.
#[derive(Debug, Clone)]
pub struct MailSettings {
    pub policy: MailPolicy,
    /// Base of links, without a trailing slash.
    pub public_url: String,
    /// The sender's domain: Message-IDs and List-Id are under it.
    pub domain: String,
    /// Reply addresses: the inbound domain and how long an address is valid.
    pub reply: Option<(String, Duration)>,
    pub max_age: Duration,
    pub rate: RateLimitConfig,
}

impl MailSettings {
    /// `None` without an `email:` block.
    pub fn from_config(config: &Config) -> Option<MailSettings> {
        let email = config.email.as_ref()?;
        Some(MailSettings {
            policy: crate::outbox::mail_policy(config),
            public_url: config.public_url.0.trim_end_matches('/').to_string(),
            domain: email
                .from_domain()
                .unwrap_or_else(|| "tocsin.invalid".into()),
            reply: email
                .inbound
                .as_ref()
                .map(|i| (i.domain.0.to_ascii_lowercase(), email.reply_ttl.0 .0)),
            max_age: email.max_age.0 .0,
            rate: email.rate_limit,
        })
    }
}

#[derive(Debug)]
pub struct MailWorker {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    transport: Arc<dyn Mailer>,
    settings: MailSettings,
    tokens: Tokens,
    /// One limiter per recipient, made on first use.
    limiters: Mutex<BTreeMap<String, Arc<Limiter>>>,
    /// The cluster `run` works in: asked right before each send whether the lease still holds.
    cluster: std::sync::OnceLock<Arc<Cluster>>,
}

impl MailWorker {
    pub fn new(
        settings: MailSettings,
        tokens: Tokens,
        transport: Arc<dyn Mailer>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> MailWorker {
        MailWorker {
            store,
            clock,
            metrics,
            transport,
            settings,
            tokens,
            limiters: Mutex::new(BTreeMap::new()),
            cluster: std::sync::OnceLock::new(),
        }
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// `{public_url}/unsubscribe/<token>`.
    pub fn unsubscribe_link(&self, member: &str) -> String {
        format!(
            "{}/unsubscribe/{}",
            self.settings.public_url,
            self.tokens.unsubscribe_token(member)
        )
    }

    fn limiter(&self, member: &str) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(member.to_string()).or_insert_with(|| {
            Arc::new(Limiter::new(
                self.settings.rate.per_second,
                self.settings.rate.burst,
                Arc::clone(&self.clock),
            ))
        }))
    }

    /// Handles every email due now once: cancels, defers, or sends. Returns how many emails were sent
    /// (a digest counts once).
    pub async fn step(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let due = self.store.emails_due(now, BATCH).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut reports: BTreeMap<String, Vec<Presence>> = BTreeMap::new();
        for (m, p) in self.store.presence().await? {
            reports.entry(m).or_default().push(p);
        }
        let mut by_member: BTreeMap<String, Vec<PendingEmail>> = BTreeMap::new();
        for e in due {
            by_member.entry(e.member.clone()).or_default().push(e);
        }
        let mut sent = 0;
        for (member, emails) in by_member {
            let presence = presence::effective(reports.get(&member).map_or(&[][..], |v| v));
            let results = self.member_step(&member, emails, &presence, now).await?;
            sent += results
                .iter()
                .filter(|r| matches!(r, EmailResult::Sent { .. }))
                .count();
            // Saved per member, so a slow SMTP server later in the loop cannot cost what was sent.
            self.store.emails_complete(results, now).await?;
        }
        Ok(sent)
    }

    async fn member_step(
        &self,
        member: &str,
        emails: Vec<PendingEmail>,
        presence: &Presence,
        now: Timestamp,
    ) -> Result<Vec<EmailResult>, StoreError> {
        let mut results = Vec::new();
        let Some(prefs) = self.settings.policy.members.get(member).cloned() else {
            for e in &emails {
                results.push(EmailResult::Cancelled {
                    id: e.id,
                    reason: format!("{member} has no email address or turned email off"),
                });
            }
            return Ok(results);
        };
        let mailbox = self.store.mailbox(member).await?;
        let mut keep = Vec::new();
        for e in emails {
            let check = mail::recheck(
                member,
                e.ticket.state,
                e.ticket.acked_by.as_deref(),
                e.ticket.severity == Severity::Critical,
                presence,
                mailbox.unsubscribed,
            );
            match check {
                Recheck::Send => keep.push(e),
                Recheck::Cancel(reason) => {
                    self.metrics.email("cancelled");
                    results.push(EmailResult::Cancelled { id: e.id, reason })
                }
            }
        }
        if keep.is_empty() {
            return Ok(results);
        }
        let release = mail::batch_release(
            prefs.mode,
            mailbox.last_sent,
            self.settings.policy.batch_window,
            now,
        );
        if release > now {
            results.push(EmailResult::Deferred {
                ids: keep.iter().map(|e| e.id).collect(),
                until: release,
            });
            return Ok(results);
        }
        let items: Vec<(i64, i64)> = keep.iter().map(|e| (e.id, e.ticket.number)).collect();
        for ids in mail::group(prefs.mode, &items) {
            let group: Vec<&PendingEmail> = keep.iter().filter(|e| ids.contains(&e.id)).collect();
            if let Err(wait) = self.limiter(member).check() {
                results.push(EmailResult::Deferred {
                    ids,
                    until: now.plus(wait),
                });
                continue;
            }
            let email = self.compose(member, &prefs.address, &group, now).await?;
            if self.cluster.get().is_some_and(|c| !c.may_act()) {
                // Paused or cut off past the mailer's lease: the next holder sends these.
                break;
            }
            let outcome = self.transport.send(&email).await;
            results.push(self.settle(ids, &group, &email, outcome, now));
        }
        Ok(results)
    }

    fn settle(
        &self,
        ids: Vec<i64>,
        group: &[&PendingEmail],
        email: &Email,
        outcome: MailOutcome,
        now: Timestamp,
    ) -> EmailResult {
        match outcome {
            MailOutcome::Sent => {
                self.metrics.email("sent");
                EmailResult::Sent {
                    ids,
                    message_id: email.message_id.clone(),
                }
            }
            MailOutcome::Retry { error } => {
                // The group's oldest mention decides when to give up; the most tried email its wait.
                let created = group.iter().map(|e| e.created_at).min().unwrap_or(now);
                let attempts = group.iter().map(|e| e.attempts).max().unwrap_or(0) + 1;
                match delivery::next_attempt(
                    attempts,
                    created,
                    now,
                    None,
                    rand::random(),
                    self.settings.max_age,
                ) {
                    RetryDecision::At(next_at) => {
                        self.metrics.email("failed");
                        tracing::warn!(to = %email.to, %error, "Email failed; will retry.");
                        EmailResult::Failed {
                            ids,
                            error,
                            next_at,
                        }
                    }
                    RetryDecision::GiveUp => {
                        self.metrics.email("gave_up");
                        EmailResult::GaveUp {
                            ids,
                            error: format!("still failing after {attempts} attempts: {error}"),
                        }
                    }
                }
            }
            MailOutcome::Permanent { error } => {
                self.metrics.email("gave_up");
                tracing::warn!(to = %email.to, %error, "Email refused for good.");
                EmailResult::GaveUp { ids, error }
            }
        }
    }

    /// One email for a group of due emails: a ticket's (threaded with what the member got about it
    /// before) or a digest.
    async fn compose(
        &self,
        member: &str,
        address: &str,
        group: &[&PendingEmail],
        now: Timestamp,
    ) -> Result<Email, StoreError> {
        let mut tickets: Vec<MailTicket> = Vec::new();
        for e in group {
            if tickets.iter().any(|t| t.number == e.ticket.number) {
                continue;
            }
            tickets.push(MailTicket {
                number: e.ticket.number,
                title: e.ticket.title.clone(),
                state: e.ticket.state,
                severity: e.ticket.severity,
                source: e.ticket.source.clone(),
                labels: routing::shown_labels(&e.ticket),
                summary: routing::summary(&e.ticket),
                link: format!("{}/tickets/T-{}", self.settings.public_url, e.ticket.number),
                reason: e.reason.clone(),
                mentioned_at: e.created_at,
            });
        }
        let first = group[0];
        let single = tickets.len() == 1;
        let domain = &self.settings.domain;
        let (message_id, thread) = if single {
            let thread = self.store.email_thread(member, &first.ticket.id).await?;
            (
                format!("tocsin.{}.{}@{domain}", first.ticket.number, first.id),
                thread,
            )
        } else {
            (format!("tocsin.digest.{}@{domain}", first.id), None)
        };
        let reply_to = match (&self.settings.reply, single) {
            (Some((inbound, ttl)), true) => Some(self.tokens.reply_address(
                first.ticket.number,
                member,
                now.plus(*ttl),
                inbound,
            )),
            _ => None,
        };
        let (in_reply_to, references) = match &thread {
            Some(t) if t.root == t.last => (Some(t.last.clone()), vec![t.root.clone()]),
            Some(t) => (Some(t.last.clone()), vec![t.root.clone(), t.last.clone()]),
            None => (None, Vec::new()),
        };
        let unsubscribe = self.unsubscribe_link(member);
        Ok(Email {
            to: address.to_string(),
            message_id,
            in_reply_to,
            references,
            reply_to: reply_to.clone(),
            unsubscribe_url: unsubscribe.clone(),
            list_id: format!("tickets.{domain}"),
            ticket: single.then_some(first.ticket.number),
            follow_up: thread.is_some(),
            content: MailContent {
                member: member.to_string(),
                tickets,
                unsubscribe_link: unsubscribe,
                reply_enabled: reply_to.is_some(),
            },
        })
    }

    /// The server's loop: a step every second until shutdown.
    /// Only while this instance holds the mailer's lease in `cluster`, with its writes fenced.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        let _ = self.cluster.set(Arc::clone(&cluster));
        loop {
            if let Some(Err(e)) = cluster.under(MAILER, self.step()).await {
                tracing::warn!(error = %e, "The mailer could not read or record emails; will retry.");
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
