//! The `sns` source kind: Amazon SNS HTTP(S) subscriptions, usually carrying CloudWatch alarms.
//!
//! SNS posts one JSON envelope per request (as `text/plain`, so the route must not insist on JSON).
//! Nothing in the request is a shared secret: authenticity comes from the envelope's RSA signature,
//! checked with the certificate SNS names in `SigningCertURL`. That URL is attacker-chosen until proven
//! otherwise, so it is only ever fetched when [`cert_url_allowed`] says it is an SNS host over HTTPS;
//! the TLS connection to that AWS host is what makes the certificate trustworthy (SNS certificates are
//! not checked against a chain, as in AWS's own SDK validators).
//!
//! Flow for the route: [`envelope`] reads the body, [`CertCache::get`] supplies the certificate,
//! [`verify`] checks the signature, then either the subscription is confirmed (`SubscribeURL`, after
//! checking the topic is the expected one) or [`alerts`] turns a `Notification` into alerts.
//!
//! CloudWatch alarms arrive as a JSON *string* in `Message` and are parsed a second time. Their key is
//! the alarm ARN, so `ALARM` and the later `OK` land on the same ticket. Any other message becomes one
//! firing alert keyed by topic and subject (never by `MessageId`, which is unique per notification and
//! would open a ticket for every message).
//!
//! This is the only module that names `ring` and `x509-cert`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::signature::{
    UnparsedPublicKey, VerificationAlgorithm, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256,
};
use serde::Deserialize;
use serde_json::{json, Value};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use super::json::{offset_time, str_at};
use crate::domain::alert::{Alert, Labels, Routing, Severity, Status};
use crate::domain::time::Timestamp;
use crate::ingest::parse::{raw_of, Context, Parsed};

/// The three kinds of message SNS posts to an HTTP(S) endpoint (`Type`, also in the
/// `x-amz-sns-message-type` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    /// SNS's own spelling, as in `Type` and the header.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    /// Inverse of [`MessageType::as_str`] (exact spelling, as SNS sends it).
    pub fn from_name(name: &str) -> Option<MessageType> {
        [
            MessageType::Notification,
            MessageType::SubscriptionConfirmation,
            MessageType::UnsubscribeConfirmation,
        ]
        .into_iter()
        .find(|t| t.as_str() == name)
    }
}

/// How long a notification's `MessageId` is remembered after it was accepted: a retry or replay of
/// it within this time is answered 200 without adding the alert again. (It is remembered only after
/// the alert is in the journal, so a retry after a failure is still taken.) When the memory is full
/// (`ingest::Replays`), a message is taken without being remembered: SNS senders are never refused
/// for it.
pub const REPLAY_MEMORY: std::time::Duration = std::time::Duration::from_secs(3600);

/// One SNS HTTP(S) message, as posted (JSON, usually sent as `text/plain`).
///
/// [`envelope`] guarantees that `subscribe_url` and `token` are present for both confirmation types,
/// because their string to sign includes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: MessageType,
    /// Unique per message and reused when SNS retries it: the idempotency key for a delivery.
    pub message_id: String,
    pub topic_arn: String,
    /// Notifications only, and only when the publisher set one.
    pub subject: Option<String>,
    pub message: String,
    /// RFC 3339, when SNS published the message.
    pub timestamp: String,
    pub signature_version: String,
    /// Base64.
    pub signature: String,
    pub signing_cert_url: String,
    /// Confirmations only: GET it (after [`verify`]) to confirm the subscription.
    pub subscribe_url: Option<String>,
    /// Notifications only.
    pub unsubscribe_url: Option<String>,
    /// Confirmations only.
    pub token: Option<String>,
}

/// The envelope as JSON. Unknown fields are ignored (SNS may add some); a field given twice is an
/// error (serde's default), so the signed value and the value we act on cannot differ.
#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "MessageId")]
    message_id: String,
    #[serde(rename = "TopicArn")]
    topic_arn: String,
    // `null` and absent are the same to SNS's string to sign (AWS's validators skip both).
    #[serde(rename = "Subject", default)]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "SignatureVersion")]
    signature_version: String,
    #[serde(rename = "Signature")]
    signature: String,
    // HTTP deliveries spell it `SigningCertURL`; Lambda-style records `SigningCertUrl`.
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl")]
    signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    subscribe_url: Option<String>,
    #[serde(rename = "UnsubscribeURL", alias = "UnsubscribeUrl", default)]
    unsubscribe_url: Option<String>,
    #[serde(rename = "Token", default)]
    token: Option<String>,
}

/// Reads one posted SNS message. Does not verify it: call [`verify`] before acting on anything in it.
pub fn envelope(body: &[u8]) -> Result<Envelope, String> {
    let w: Wire = serde_json::from_slice(body).map_err(|e| format!("not an SNS message: {e}"))?;
    let kind = MessageType::from_name(&w.kind)
        .ok_or_else(|| format!("unknown SNS message Type `{}`", w.kind))?;
    if kind != MessageType::Notification {
        // Both are part of what SNS signs for confirmations; without them nothing could verify.
        if w.subscribe_url.is_none() {
            return Err(format!("{}: SubscribeURL missing", kind.as_str()));
        }
        if w.token.is_none() {
            return Err(format!("{}: Token missing", kind.as_str()));
        }
    }
    Ok(Envelope {
        kind,
        message_id: w.message_id,
        topic_arn: w.topic_arn,
        subject: w.subject,
        message: w.message,
        timestamp: w.timestamp,
        signature_version: w.signature_version,
        signature: w.signature,
        signing_cert_url: w.signing_cert_url,
        subscribe_url: w.subscribe_url,
        unsubscribe_url: w.unsubscribe_url,
        token: w.token,
    })
}

/// The exact string SNS signs: `Key\nValue\n` for the documented fields, in this order.
///
/// Notification: `Message, MessageId, Subject (if present), Timestamp, TopicArn, Type`.
/// (Un)SubscriptionConfirmation: `Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn, Type`.
pub fn string_to_sign(env: &Envelope) -> String {
    let mut out = String::with_capacity(env.message.len() + 512);
    let mut pair = |key: &str, value: &str| {
        out.push_str(key);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    };
    pair("Message", &env.message);
    pair("MessageId", &env.message_id);
    match env.kind {
        MessageType::Notification => {
            if let Some(subject) = &env.subject {
                pair("Subject", subject);
            }
            pair("Timestamp", &env.timestamp);
        }
        MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
            pair("SubscribeURL", env.subscribe_url.as_deref().unwrap_or(""));
            pair("Timestamp", &env.timestamp);
            pair("Token", env.token.as_deref().unwrap_or(""));
        }
    }
    pair("TopicArn", &env.topic_arn);
    pair("Type", env.kind.as_str());
    out
}

/// Longest certificate URL considered; real ones are under 100 characters.
const MAX_CERT_URL: usize = 512;

/// Whether `url` may be fetched as an SNS signing certificate: exactly
/// `https://sns.<region>.amazonaws.com/<path>.pem` (`amazonaws.com.cn` for the `cn-` regions).
///
/// Deliberately stricter than a URL parser: no userinfo, no port, no query or fragment, no
/// percent-escapes, lowercase host, and a path of plain characters. Whatever passes here means the same
/// thing to every HTTP client, so the host we checked is the host that gets asked.
pub fn cert_url_allowed(url: &str) -> bool {
    if url.len() > MAX_CERT_URL {
        return false;
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    sns_host(host) && cert_path(path)
}

fn sns_host(host: &str) -> bool {
    let (inner, china) = if let Some(h) = host.strip_suffix(".amazonaws.com.cn") {
        (h, true)
    } else if let Some(h) = host.strip_suffix(".amazonaws.com") {
        (h, false)
    } else {
        return false;
    };
    let Some(region) = inner.strip_prefix("sns.") else {
        return false;
    };
    // China regions live only under amazonaws.com.cn, and only they do.
    is_region(region) && region.starts_with("cn-") == china
}

/// An AWS region code: lowercase words and a number, `us-east-1`, `us-gov-west-1`, `ap-southeast-4`.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let Some((last, words)) = parts.split_last() else {
        return false;
    };
    words.len() >= 2
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.len() <= 3
        && last.bytes().all(|b| b.is_ascii_digit())
}

/// `SimpleNotificationService-<hex>.pem`, possibly under folders; nothing that could be read as
/// anything but a plain path.
fn cert_path(path: &str) -> bool {
    path.ends_with(".pem")
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// rsaEncryption (RFC 8017): the only key type SNS signs with.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Verifies `Signature` over [`string_to_sign`] with the certificate's RSA public key.
///
/// `SignatureVersion` `1` is SHA1withRSA, `2` SHA256withRSA (PKCS#1 v1.5). Keys under 2048 bits are
/// refused (SNS's certificates are 2048-bit). `cert_pem` is what `SigningCertURL` served; the URL is
/// checked again here so that a caller cannot verify against a certificate from anywhere else.
pub fn verify(env: &Envelope, cert_pem: &[u8]) -> Result<(), String> {
    let algorithm: &'static dyn VerificationAlgorithm = match env.signature_version.as_str() {
        "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "2" => &RSA_PKCS1_2048_8192_SHA256,
        other => return Err(format!("unsupported SignatureVersion `{other}`")),
    };
    if !cert_url_allowed(&env.signing_cert_url) {
        return Err(format!(
            "SigningCertURL `{}` is not an SNS certificate URL",
            env.signing_cert_url
        ));
    }
    if env.kind != MessageType::Notification && (env.subscribe_url.is_none() || env.token.is_none())
    {
        return Err("confirmation without SubscribeURL or Token".into());
    }
    let signature = STANDARD
        .decode(env.signature.as_bytes())
        .map_err(|e| format!("Signature is not base64: {e}"))?;
    let key = rsa_public_key(cert_pem)?;
    UnparsedPublicKey::new(algorithm, &key)
        .verify(string_to_sign(env).as_bytes(), &signature)
        .map_err(|_| "signature does not match the message".to_string())
}

/// The RSAPublicKey (PKCS#1 DER, what `ring` takes) inside the first certificate of `pem`.
fn rsa_public_key(pem: &[u8]) -> Result<Vec<u8>, String> {
    let der = pem_to_der(pem)?;
    let cert =
        Certificate::from_der(&der).map_err(|e| format!("certificate is not valid X.509: {e}"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(format!(
            "certificate key is not RSA (algorithm {})",
            spki.algorithm.oid
        ));
    }
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "certificate key is not a whole number of bytes".to_string())
}

/// The first `CERTIFICATE` block of a PEM file, decoded. Whitespace inside the block is skipped so
/// that line length and line endings do not matter.
fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let text = std::str::from_utf8(pem).map_err(|_| "certificate is not PEM text".to_string())?;
    let start = text
        .find(BEGIN)
        .ok_or_else(|| "no PEM certificate found".to_string())?
        + BEGIN.len();
    let body = &text[start..];
    let end = body
        .find(END)
        .ok_or_else(|| "PEM certificate has no END line".to_string())?;
    let b64: String = body[..end]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM certificate is not base64: {e}"))
}

/// The host of an `https://` URL (the SNS host a certificate comes from), for messages.
pub fn url_host(url: &str) -> &str {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Fetches a certificate. The real one (the route's HTTP client) must use HTTPS with certificate
/// verification, must not follow redirects (a redirect would leave the allowed host), should cap the
/// body (a certificate is a few KiB) and time out quickly.
#[async_trait]
pub trait CertFetch: Send + Sync + std::fmt::Debug {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// Certificates kept; SNS uses one per region and rotates it rarely.
const CERT_CACHE_SIZE: usize = 32;

/// Fetched certificates, cached by URL.
///
/// Only URLs that [`cert_url_allowed`] accepts are fetched, and only responses that hold an RSA
/// certificate are kept, so posting envelopes with made-up URLs on an SNS host neither fills the
/// cache nor evicts real certificates. Fetches are checked before any signature can be, so anyone can
/// cause them: a URL that failed is not fetched again for [`FAILURE_MEMORY`], and at most
/// [`FETCH_BUDGET`] fetches start per minute in all; past that a post is refused without fetching (SNS
/// retries, and the real certificate, once cached, needs no fetch). Two requests that miss at once may
/// both fetch; the result is the same and it is rare.
#[derive(Debug)]
pub struct CertCache {
    /// Replaceable ([`CertCache::set_fetch`]) so tests can make fetches fail without the network.
    fetch: std::sync::RwLock<Arc<dyn CertFetch>>,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    certs: HashMap<String, Arc<Vec<u8>>>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<String>,
    /// URLs whose fetch failed, with when, not fetched again until [`FAILURE_MEMORY`] has passed.
    failed: HashMap<String, std::time::Instant>,
    /// When the fetches of the last minute started.
    fetches: VecDeque<std::time::Instant>,
}

/// How long a URL whose fetch failed is not fetched again.
pub const FAILURE_MEMORY: std::time::Duration = std::time::Duration::from_secs(300);
/// At most this many certificate fetches start per minute.
pub const FETCH_BUDGET: usize = 20;
/// At most this many failed URLs are remembered.
const MAX_FAILED: usize = 1024;

impl CertCache {
    pub fn new(fetch: Arc<dyn CertFetch>) -> Self {
        CertCache {
            fetch: std::sync::RwLock::new(fetch),
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// Replaces how certificates are fetched (tests cannot reach AWS).
    pub fn set_fetch(&self, fetch: Arc<dyn CertFetch>) {
        match self.fetch.write() {
            Ok(mut f) => *f = fetch,
            Err(e) => *e.into_inner() = fetch,
        }
    }

    fn fetcher(&self) -> Arc<dyn CertFetch> {
        match self.fetch.read() {
            Ok(f) => Arc::clone(&f),
            Err(e) => Arc::clone(&e.into_inner()),
        }
    }

    /// The PEM served at `url`, from the cache or fetched. A URL that is not allowed is refused before
    /// anything is fetched.
    pub async fn get(&self, url: &str) -> Result<Arc<Vec<u8>>, String> {
        if !cert_url_allowed(url) {
            return Err(format!("`{url}` is not an SNS certificate URL"));
        }
        {
            let now = std::time::Instant::now();
            let mut inner = self.lock();
            if let Some(pem) = inner.certs.get(url) {
                return Ok(pem.clone());
            }
            if let Some(at) = inner.failed.get(url) {
                if now.duration_since(*at) < FAILURE_MEMORY {
                    return Err(format!(
                        "{url}: its last fetch failed; not trying again yet"
                    ));
                }
            }
            while inner
                .fetches
                .front()
                .is_some_and(|t| now.duration_since(*t) >= std::time::Duration::from_secs(60))
            {
                inner.fetches.pop_front();
            }
            if inner.fetches.len() >= FETCH_BUDGET {
                return Err("too many certificate fetches in the last minute".into());
            }
            inner.fetches.push_back(now);
        }
        let fetched = self
            .fetcher()
            .get(url)
            .await
            // Checked before caching so that an error page never stands in for a certificate.
            .and_then(|pem| match rsa_public_key(&pem) {
                Ok(_) => Ok(pem),
                Err(e) => Err(format!("{url}: {e}")),
            });
        let pem = match fetched {
            Ok(pem) => pem,
            Err(e) => {
                let mut inner = self.lock();
                if inner.failed.len() >= MAX_FAILED {
                    inner.failed.clear();
                }
                inner
                    .failed
                    .insert(url.to_string(), std::time::Instant::now());
                return Err(e);
            }
        };
        let pem = Arc::new(pem);
        self.store(url, pem.clone());
        Ok(pem)
    }

    /// Puts a certificate in the cache as if fetched from `url` (tests, or preloading).
    pub fn insert(&self, url: &str, pem: Vec<u8>) {
        self.store(url, Arc::new(pem));
    }

    fn store(&self, url: &str, pem: Arc<Vec<u8>>) {
        let mut inner = self.lock();
        if inner.certs.insert(url.to_string(), pem).is_none() {
            inner.order.push_back(url.to_string());
        }
        while inner.order.len() > CERT_CACHE_SIZE {
            if let Some(oldest) = inner.order.pop_front() {
                inner.certs.remove(&oldest);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        // The map is always consistent between statements, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`CertFetch`] that serves fixed certificates and counts calls: for tests, which must not need
/// the network.
#[derive(Debug, Default)]
pub struct FixedCerts {
    certs: HashMap<String, Vec<u8>>,
    calls: AtomicUsize,
}

impl FixedCerts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `pem` at `url`.
    pub fn with(mut self, url: &str, pem: &[u8]) -> Self {
        self.certs.insert(url.to_string(), pem.to_vec());
        self
    }

    /// How many fetches were asked for.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CertFetch for FixedCerts {
    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.certs
            .get(url)
            .cloned()
            .ok_or_else(|| format!("{url}: 404 Not Found"))
    }
}

/// Longest title made from a message's first line.
const MAX_TITLE: usize = 200;

/// Alerts from a verified `Notification`.
///
/// A CloudWatch alarm (the `Message` string is itself JSON with `AlarmName` and `NewStateValue`):
/// - key: `AlarmArn`, else `AWSAccountId:Region:AlarmName`; for a Metrics Insights alarm that
///   notifies per contributor, `#contributor=<id>` is appended so each time series is its own ticket.
/// - `ALARM` is firing with severity `error` (CloudWatch has no severity; `ALARM` is its red state).
/// - `OK` is resolved.
/// - `INSUFFICIENT_DATA` is firing with severity `warning` and says so in the title: whoever put an
///   action on that state asked to hear about it, and missing data is often a dead sender, but it is
///   weaker news than a crossed threshold. Routes and plugins can tell it apart by the `state` label.
/// - `starts_at` is `StateChangeTime` for every state. For `OK` that is later than the firing it ends
///   and earlier than any later firing, so an `OK` delivered after a newer `ALARM` (standard SNS topics
///   do not keep order) is ignored as "resolution of an earlier firing" instead of closing the ticket.
///
/// Any other message is one firing alert keyed by `TopicArn` and `Subject` (the topic alone without a
/// subject), titled by the subject or else the message's first line. It never resolves by itself.
pub fn alerts(env: &Envelope, cx: &Context<'_>) -> Parsed {
    let mut out = Parsed::default();
    if env.kind != MessageType::Notification {
        out.rejected.push(format!(
            "{} carries no alerts; only Notification does",
            env.kind.as_str()
        ));
        return out;
    }
    // Double parse: CloudWatch puts its JSON in `Message` as a string.
    let decoded = serde_json::from_str::<Value>(&env.message).ok();
    let result = match decoded {
        Some(alarm @ Value::Object(_)) if is_cloudwatch(&alarm) => cloudwatch(env, alarm, cx),
        _ => Ok(text(env, cx)),
    };
    match result {
        Ok(alert) => out.alerts.push(alert),
        Err(e) => out.rejected.push(format!("Message: {e}")),
    }
    out
}

fn is_cloudwatch(v: &Value) -> bool {
    v.get("AlarmName").is_some() && v.get("NewStateValue").is_some()
}

fn cloudwatch(env: &Envelope, alarm: Value, cx: &Context<'_>) -> Result<Alert, String> {
    let name = str_at(&alarm, &["AlarmName"]).ok_or("AlarmName is empty")?;
    let state = str_at(&alarm, &["NewStateValue"]).unwrap_or("");
    let (status, severity) = match state {
        "ALARM" => (Status::Firing, Severity::Error),
        "OK" => (Status::Resolved, Severity::None),
        "INSUFFICIENT_DATA" => (Status::Firing, Severity::Warning),
        other => {
            return Err(format!(
                "NewStateValue `{other}` is not ALARM, OK or INSUFFICIENT_DATA"
            ))
        }
    };
    let arn = str_at(&alarm, &["AlarmArn"]);
    // arn:aws:cloudwatch:<region>:<account>:alarm:<name>
    let arn_parts: Vec<&str> = arn.map(|a| a.splitn(7, ':').collect()).unwrap_or_default();
    let arn_region = arn_parts.get(3).copied().filter(|r| is_region(r));
    let account = str_at(&alarm, &["AWSAccountId"])
        .or_else(|| arn_parts.get(4).copied().filter(|a| !a.is_empty()));
    // `Region` is a display name ("EU (Ireland)"); the code from the ARN is what people route on.
    let region_name = str_at(&alarm, &["Region"]);
    let region = arn_region.or(region_name);

    let mut fingerprint = match arn {
        Some(arn) => arn.to_string(),
        None => format!("{}:{}:{name}", account.unwrap_or(""), region.unwrap_or("")),
    };

    let mut labels = Labels::new();
    labels.insert("alarm_name".into(), name.to_string());
    labels.insert("state".into(), state.to_string());
    if let Some(account) = account {
        labels.insert("account".into(), account.to_string());
    }
    if let Some(region) = region {
        labels.insert("region".into(), region.to_string());
    }
    if let Some(trigger) = alarm.get("Trigger") {
        if let Some(ns) = str_at(trigger, &["Namespace"]) {
            labels.insert("namespace".into(), ns.to_string());
        }
        if let Some(metric) = str_at(trigger, &["MetricName"]) {
            labels.insert("metric".into(), metric.to_string());
        }
        for dim in trigger
            .get("Dimensions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // CloudWatch writes `name`/`value` in lowercase here, unlike everywhere else.
            let dname = str_at(dim, &["name"]).or_else(|| str_at(dim, &["Name"]));
            let dvalue = str_at(dim, &["value"]).or_else(|| str_at(dim, &["Value"]));
            if let (Some(n), Some(v)) = (dname, dvalue) {
                labels.insert(format!("dimension_{}", label_name(n)), v.to_string());
            }
        }
    }
    // Metrics Insights alarms over many time series notify per contributor. Field names follow the
    // API's `AlarmContributor`; without this every contributor would share (and resolve) one ticket.
    if let Some(contributor) = alarm.get("AlarmContributor") {
        if let Some(id) = str_at(contributor, &["ContributorId"]) {
            fingerprint.push_str("#contributor=");
            fingerprint.push_str(id);
            labels.insert("contributor_id".into(), id.to_string());
        }
        if let Some(attrs) = contributor
            .get("ContributorAttributes")
            .and_then(Value::as_object)
        {
            for (k, v) in attrs {
                if let Some(v) = v.as_str() {
                    labels.insert(format!("contributor_{}", label_name(k)), v.to_string());
                }
            }
        }
    }

    let mut annotations = Labels::new();
    let reason = str_at(&alarm, &["NewStateReason"]);
    let description = str_at(&alarm, &["AlarmDescription"]);
    for (key, value) in [
        ("alarm_arn", arn),
        ("state_reason", reason),
        ("old_state", str_at(&alarm, &["OldStateValue"])),
        ("region_name", region_name),
        ("subject", env.subject.as_deref()),
        ("message_id", Some(env.message_id.as_str())),
        ("topic_arn", Some(env.topic_arn.as_str())),
    ] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            annotations.insert(key.into(), value.to_string());
        }
    }

    // The name is stable and what AWS shows; the description's first line says what it means.
    let mut title = name.to_string();
    if state == "INSUFFICIENT_DATA" {
        title.push_str(" (insufficient data)");
    }
    if let Some(line) = description.and_then(|d| d.lines().map(str::trim).find(|l| !l.is_empty())) {
        title = truncate(&format!("{title}: {line}"), MAX_TITLE);
    }
    let body = match (description, reason) {
        (Some(d), Some(r)) => Some(format!("{d}\n\n{r}")),
        (d, r) => d.or(r).map(str::to_string),
    };
    // `2022-09-25T18:50:37.811+0000`: RFC 3339 except for the colon in the offset. An unreadable time
    // is dropped rather than losing the alarm over it.
    let changed = str_at(&alarm, &["StateChangeTime"]).and_then(offset_time);
    let (starts_at, ends_at) = match status {
        Status::Resolved => (changed, changed),
        Status::Firing | Status::Acknowledged | Status::Updated => (changed, None),
    };

    Ok(Alert {
        source: cx.source.to_string(),
        fingerprint,
        status,
        title,
        severity,
        url: arn_region.map(|r| console_url(r, name)),
        labels,
        annotations,
        description: body,
        starts_at,
        ends_at,
        received_at: cx.now,
        routing: Routing::default(),
        raw: raw_of(&alarm, cx),
    })
}

fn text(env: &Envelope, cx: &Context<'_>) -> Alert {
    let subject = env
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    // arn:aws:sns:<region>:<account>:<topic>
    let parts: Vec<&str> = env.topic_arn.splitn(6, ':').collect();
    let topic = parts
        .get(5)
        .copied()
        .filter(|t| !t.is_empty())
        .unwrap_or(&env.topic_arn);
    let fingerprint = match subject {
        // Topic ARNs never contain `#`, so the two parts cannot run into each other.
        Some(s) => format!("{}#{s}", env.topic_arn),
        None => env.topic_arn.clone(),
    };
    let first_line = env.message.lines().map(str::trim).find(|l| !l.is_empty());
    let title = match subject.or(first_line) {
        Some(t) => truncate(t, MAX_TITLE),
        None => format!("SNS message on {topic}"),
    };

    let mut labels = Labels::new();
    labels.insert("topic".into(), topic.to_string());
    if let Some(region) = parts.get(3).copied().filter(|r| is_region(r)) {
        labels.insert("region".into(), region.to_string());
    }
    if let Some(account) = parts.get(4).copied().filter(|a| !a.is_empty()) {
        labels.insert("account".into(), account.to_string());
    }
    let mut annotations = Labels::new();
    annotations.insert("message_id".into(), env.message_id.clone());
    annotations.insert("topic_arn".into(), env.topic_arn.clone());
    if let Some(s) = subject {
        annotations.insert("subject".into(), s.to_string());
    }
    let raw = raw_of(
        &json!({
            "Type": env.kind.as_str(),
            "MessageId": env.message_id,
            "TopicArn": env.topic_arn,
            "Subject": env.subject,
            "Message": env.message,
            "Timestamp": env.timestamp,
        }),
        cx,
    );
    Alert {
        source: cx.source.to_string(),
        fingerprint,
        status: Status::Firing,
        title,
        severity: Severity::None,
        labels,
        annotations,
        description: Some(env.message.clone()).filter(|m| !m.trim().is_empty()),
        url: None,
        // Each message is a new occurrence: on an open ticket it shows as "fired again".
        starts_at: Timestamp::parse_optional(&env.timestamp).ok().flatten(),
        ends_at: None,
        received_at: cx.now,
        routing: Routing::default(),
        raw,
    }
}

/// The alarm in the CloudWatch console, for people who want the graph.
fn console_url(region: &str, alarm: &str) -> String {
    let host = if region.starts_with("cn-") {
        "console.amazonaws.cn".to_string()
    } else {
        format!("{region}.console.aws.amazon.com")
    };
    format!(
        "https://{host}/cloudwatch/home?region={region}#alarmsV2:alarm/{}",
        percent_encode(alarm)
    )
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Dimension and attribute names as label-name characters (`[A-Za-z0-9_]`).
fn label_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// At most `max` characters, with an ellipsis when cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => format!("{}…", &s[..i]),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ingest::kinds::testing::{
        self, assert_alert, assert_resolves, edited, keeping_raw, one_alert, raw_json,
    };

    const CERT: &[u8] = include_bytes!("../../../tests/fixtures/sns/test-cert.pem");
    const EC_CERT: &[u8] = include_bytes!("../../../tests/fixtures/sns/ec-cert.pem");
    const OTHER_SIG: &str =
        include_str!("../../../tests/fixtures/sns/other_key_signature_alarm.b64");
    const ALARM: &[u8] = include_bytes!("../../../examples/payloads/sns/notification_alarm.json");
    const OK: &[u8] = include_bytes!("../../../examples/payloads/sns/notification_ok.json");
    const CONFIRM: &[u8] =
        include_bytes!("../../../examples/payloads/sns/subscription_confirmation.json");
    const TEXT: &[u8] = include_bytes!("../../../examples/payloads/sns/text_notification.json");
    const CERT_URL: &str = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-test.pem";
    const ALARM_ARN: &str = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:api-5xx-rate";

    fn cx() -> Context<'static> {
        testing::cx_at("aws", Timestamp::from_millis(1_773_485_000_000))
    }

    fn env(body: &[u8]) -> Envelope {
        envelope(body).unwrap()
    }

    /// A notification with `message` in place of the fixture's (signature no longer valid; `alerts`
    /// does not look at it).
    fn with_message(base: &[u8], edit: impl FnOnce(&mut Value)) -> Envelope {
        let mut e = env(base);
        e.message = edited(&e.message, edit);
        e
    }

    #[test]
    fn fixtures_verify_with_versions_1_and_2() {
        let alarm = env(ALARM);
        assert_eq!(alarm.signature_version, "1");
        verify(&alarm, CERT).unwrap();
        let ok = env(OK);
        assert_eq!(ok.signature_version, "2");
        verify(&ok, CERT).unwrap();
        let confirm = env(CONFIRM);
        assert_eq!(confirm.kind, MessageType::SubscriptionConfirmation);
        assert_eq!(confirm.signature_version, "2");
        verify(&confirm, CERT).unwrap();
        let text = env(TEXT);
        assert_eq!(text.subject, None);
        assert_eq!(text.signature_version, "1");
        verify(&text, CERT).unwrap();
    }

    #[test]
    fn string_to_sign_follows_the_documented_order() {
        let e = env(ALARM);
        let s = string_to_sign(&e);
        let keys: Vec<&str> = s.lines().step_by(2).collect();
        // The message is one line of JSON, so every other line is a key.
        assert_eq!(
            keys,
            [
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type"
            ]
        );
        assert!(s.ends_with("\nType\nNotification\n"));

        let c = env(CONFIRM);
        let s = string_to_sign(&c);
        assert!(s.starts_with(&format!("Message\n{}\nMessageId\n", c.message)));
        let tail = format!(
            "SubscribeURL\n{}\nTimestamp\n{}\nToken\n{}\nTopicArn\n{}\nType\nSubscriptionConfirmation\n",
            c.subscribe_url.as_deref().unwrap(),
            c.timestamp,
            c.token.as_deref().unwrap(),
            c.topic_arn
        );
        assert!(s.ends_with(&tail), "{s}");

        let t = env(TEXT);
        assert!(!string_to_sign(&t).contains("Subject\n"));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let good = env(ALARM);

        let mut e = good.clone();
        e.message = e.message.replace("\"ALARM\"", "\"OK\"");
        assert_ne!(e.message, good.message);
        assert!(verify(&e, CERT).is_err(), "changed Message");

        let mut e = good.clone();
        e.subject = Some("OK: all fine".into());
        assert!(verify(&e, CERT).is_err(), "changed Subject");

        let mut e = good.clone();
        e.subject = None;
        assert!(verify(&e, CERT).is_err(), "removed Subject");

        let mut e = good.clone();
        e.topic_arn = "arn:aws:sns:eu-west-1:123456789012:other".into();
        assert!(verify(&e, CERT).is_err(), "changed TopicArn");

        let mut e = env(CONFIRM);
        e.subscribe_url = Some("https://evil.example/confirm".into());
        assert!(verify(&e, CERT).is_err(), "changed SubscribeURL");
    }

    #[test]
    fn wrong_signature_version_fails() {
        let mut e = env(ALARM);
        e.signature_version = "2".into();
        assert_eq!(
            verify(&e, CERT).unwrap_err(),
            "signature does not match the message"
        );
        let mut e = env(OK);
        e.signature_version = "1".into();
        assert!(verify(&e, CERT).is_err());
        let mut e = env(ALARM);
        e.signature_version = "3".into();
        assert!(verify(&e, CERT).unwrap_err().contains("unsupported"));
    }

    #[test]
    fn signature_from_another_key_fails() {
        let mut e = env(ALARM);
        e.signature = OTHER_SIG.trim().to_string();
        assert_ne!(e.signature, env(ALARM).signature);
        assert_eq!(
            verify(&e, CERT).unwrap_err(),
            "signature does not match the message"
        );
    }

    #[test]
    fn bad_signatures_and_certificates_are_errors_not_panics() {
        let mut e = env(ALARM);
        e.signature = "not base64!".into();
        assert!(verify(&e, CERT).unwrap_err().contains("base64"));
        let e = env(ALARM);
        assert!(verify(&e, b"").is_err());
        assert!(verify(
            &e,
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .unwrap_err()
        .contains("X.509"));
        assert!(verify(&e, EC_CERT).unwrap_err().contains("not RSA"));
        // A certificate URL off the allowlist is refused even with the right certificate in hand.
        let mut e = env(ALARM);
        e.signing_cert_url = "https://evil.example/cert.pem".into();
        assert!(verify(&e, CERT).is_err());
    }

    #[test]
    fn pem_with_crlf_and_a_chain_reads_the_first_certificate() {
        let crlf = String::from_utf8(CERT.to_vec())
            .unwrap()
            .replace('\n', "\r\n");
        let chain = format!("junk before\r\n{crlf}{}", String::from_utf8_lossy(EC_CERT));
        verify(&env(ALARM), chain.as_bytes()).unwrap();
    }

    #[test]
    fn cert_urls() {
        for good in [
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
            CERT_URL,
            "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-x.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-x.pem",
            "https://sns.ap-southeast-2.amazonaws.com/certs/v2/SimpleNotificationService-x.pem",
        ] {
            assert!(cert_url_allowed(good), "{good}");
        }
        for bad in [
            "",
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
            "HTTPS://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
            "https://sns.evil.com/SimpleNotificationService-x.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-x.pem",
            "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-x.pem",
            "https://amazonaws.com@evil.com/x.pem",
            "https://user:pw@sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com:8443/x.pem",
            "https://sns.us-east-1.amazonaws.com:443/x.pem",
            "https://sns.us-east-1.amazonaws.com/x.pem?x=1",
            "https://sns.us-east-1.amazonaws.com/x.pem#frag",
            "https://sns.us-east-1.amazonaws.com/x.txt",
            "https://sns.us-east-1.amazonaws.com/",
            "https://sns.us-east-1.amazonaws.com",
            "https://sns.us-east-1.amazonaws.com/../x.pem",
            "https://sns.us-east-1.amazonaws.com//evil.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/%2e%2e/x.pem",
            "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
            "https://SNS.US-EAST-1.AMAZONAWS.COM/x.pem",
            "https://s3.us-east-1.amazonaws.com/x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://sns.evil.amazonaws.com/x.pem",
            "https://evil.sns.us-east-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com.cn/x.pem",
            "https://sns.cn-north-1.amazonaws.com/x.pem",
            "https://sns.us-east-1.amazonaws.com/x .pem",
        ] {
            assert!(!cert_url_allowed(bad), "{bad}");
        }
        let long = format!(
            "{}{}.pem",
            "https://sns.us-east-1.amazonaws.com/",
            "a".repeat(600)
        );
        assert!(!cert_url_allowed(&long));
    }

    #[tokio::test]
    async fn cache_refuses_bad_urls_before_fetching_and_fetches_good_ones_once() {
        let fetch = Arc::new(FixedCerts::new().with(CERT_URL, CERT));
        let cache = CertCache::new(fetch.clone());
        let err = cache
            .get("https://sns.evil.com/SimpleNotificationService-x.pem")
            .await
            .unwrap_err();
        assert!(err.contains("not an SNS certificate URL"), "{err}");
        assert_eq!(fetch.calls(), 0);

        let first = cache.get(CERT_URL).await.unwrap();
        let second = cache.get(CERT_URL).await.unwrap();
        assert_eq!(fetch.calls(), 1);
        assert!(Arc::ptr_eq(&first, &second));
        verify(&env(ALARM), &first).unwrap();
    }

    #[tokio::test]
    async fn cache_keeps_no_non_certificates_and_does_not_refetch_failures_at_once() {
        let junk_url = "https://sns.eu-west-1.amazonaws.com/junk.pem";
        let fetch = Arc::new(FixedCerts::new().with(junk_url, b"<html>Not a cert</html>"));
        let cache = CertCache::new(fetch.clone());
        assert!(cache.get(junk_url).await.is_err());
        assert!(
            cache.lock().certs.is_empty(),
            "a bad response is not cached"
        );
        // Anyone can make tocsin fetch (before a signature can be checked): a failure is remembered.
        assert!(cache.get(junk_url).await.is_err());
        assert_eq!(fetch.calls(), 1);
        let missing = "https://sns.eu-west-1.amazonaws.com/missing.pem";
        assert!(cache.get(missing).await.unwrap_err().contains("404"));
    }

    #[tokio::test]
    async fn made_up_certificate_urls_cost_a_bounded_number_of_fetches() {
        let fetch = Arc::new(FixedCerts::new().with(CERT_URL, CERT));
        let cache = CertCache::new(fetch.clone());
        for i in 0..(FETCH_BUDGET * 3) {
            let url = format!("https://sns.eu-west-1.amazonaws.com/made-up-{i}.pem");
            assert!(cache.get(&url).await.is_err());
        }
        assert_eq!(fetch.calls(), FETCH_BUDGET);
        // Past the budget nothing is fetched, not even the real one; once cached it needs no fetch.
        assert!(cache.get(CERT_URL).await.is_err());
        cache.insert(CERT_URL, CERT.to_vec());
        assert!(cache.get(CERT_URL).await.is_ok());
        assert_eq!(fetch.calls(), FETCH_BUDGET);
    }

    #[tokio::test]
    async fn cache_is_bounded_and_preloadable() {
        let fetch = Arc::new(FixedCerts::new());
        let cache = CertCache::new(fetch.clone());
        cache.insert(CERT_URL, CERT.to_vec());
        verify(&env(ALARM), &cache.get(CERT_URL).await.unwrap()).unwrap();
        for i in 0..(CERT_CACHE_SIZE + 8) {
            cache.insert(
                &format!("https://sns.eu-west-1.amazonaws.com/{i}.pem"),
                CERT.to_vec(),
            );
        }
        assert_eq!(cache.lock().certs.len(), CERT_CACHE_SIZE);
        assert_eq!(cache.lock().order.len(), CERT_CACHE_SIZE);
        // The oldest went first.
        assert!(cache.get(CERT_URL).await.is_err());
        assert_eq!(fetch.calls(), 1);
    }

    #[test]
    fn envelope_rejects_garbage_and_incomplete_messages() {
        assert!(envelope(b"").is_err());
        assert!(envelope(b"not json").is_err());
        assert!(envelope(b"[]").is_err());
        assert!(envelope(br#"{"Type":"Notification"}"#).is_err());
        let mut v: Value = serde_json::from_slice(ALARM).unwrap();
        v["Type"] = json!("Surprise");
        assert!(envelope(v.to_string().as_bytes())
            .unwrap_err()
            .contains("unknown SNS message Type"));
        let mut v: Value = serde_json::from_slice(CONFIRM).unwrap();
        v.as_object_mut().unwrap().remove("SubscribeURL");
        assert!(envelope(v.to_string().as_bytes())
            .unwrap_err()
            .contains("SubscribeURL"));
        // The same field twice could mean one value signed and another acted on.
        let doubled = String::from_utf8(ALARM.to_vec()).unwrap().replacen(
            "\"TopicArn\"",
            "\"TopicArn\": \"arn:aws:sns:eu-west-1:1:x\", \"TopicArn\"",
            1,
        );
        assert!(envelope(doubled.as_bytes()).is_err());
    }

    #[test]
    fn envelope_reads_every_field() {
        let c = env(CONFIRM);
        assert_eq!(
            c.topic_arn,
            "arn:aws:sns:eu-west-1:123456789012:tocsin-alarms"
        );
        assert_eq!(c.message_id, "165545c9-2a5c-472c-8df2-7ff2be2b3b1b");
        assert!(c
            .subscribe_url
            .as_deref()
            .unwrap()
            .starts_with("https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription"));
        assert!(c.token.is_some());
        assert_eq!(c.signing_cert_url, CERT_URL);
        let a = env(ALARM);
        assert_eq!(
            a.subject.as_deref(),
            Some("ALARM: \"api-5xx-rate\" in EU (Ireland)")
        );
        assert!(a.unsubscribe_url.is_some());
        assert_eq!(a.timestamp, "2026-03-14T10:42:07.412Z");
    }

    #[test]
    fn alarm_fires_and_ok_resolves_the_same_key() {
        let a = &one_alert(Ok(alerts(&env(ALARM), &cx())));
        assert_alert(a, ALARM_ARN, Status::Firing, Severity::Error);
        assert_eq!(a.source, "aws");
        assert_eq!(
            a.title,
            "api-5xx-rate: 5xx responses from the API load balancer"
        );
        let labels: Vec<(&str, &str)> = a
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("account", "123456789012"),
                ("alarm_name", "api-5xx-rate"),
                ("dimension_LoadBalancer", "app/api-prod/50dc6c495c0c9188"),
                (
                    "dimension_TargetGroup",
                    "targetgroup/api-prod/73e2d6bc24d8a067"
                ),
                ("metric", "HTTPCode_Target_5XX_Count"),
                ("namespace", "AWS/ApplicationELB"),
                ("region", "eu-west-1"),
                ("state", "ALARM"),
            ]
        );
        assert_eq!(a.annotations["alarm_arn"], ALARM_ARN);
        assert_eq!(a.annotations["region_name"], "EU (Ireland)");
        assert_eq!(a.annotations["old_state"], "OK");
        assert!(a.annotations["state_reason"].starts_with("Threshold Crossed"));
        let description = a.description.as_deref().unwrap();
        assert!(description.starts_with("5xx responses from the API load balancer\n\nThreshold"));
        assert_eq!(
            a.starts_at.map(Timestamp::to_rfc3339).as_deref(),
            Some("2026-03-14T10:42:07.361Z")
        );
        assert_eq!(a.ends_at, None);
        assert_eq!(
            a.url.as_deref(),
            Some("https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#alarmsV2:alarm/api-5xx-rate")
        );
        assert_eq!(a.received_at, cx().now);
        assert_eq!(a.raw, None);

        let resolved = alerts(&env(OK), &cx());
        let [r] = &resolved.alerts[..] else {
            panic!("{resolved:?}")
        };
        assert_resolves(a, r);
        assert_eq!(r.labels["state"], "OK");
        let at = r.ends_at.map(Timestamp::to_rfc3339);
        assert_eq!(at.as_deref(), Some("2026-03-14T10:56:07.118Z"));
        // Later than the firing, so the ticket logic resolves rather than ignores it.
        assert!(r.starts_at > a.starts_at);
    }

    #[test]
    fn insufficient_data_fires_as_a_warning() {
        let e = with_message(ALARM, |m| m["NewStateValue"] = json!("INSUFFICIENT_DATA"));
        let p = alerts(&e, &cx());
        let [a] = &p.alerts[..] else { panic!("{p:?}") };
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.fingerprint, ALARM_ARN);
        assert_eq!(a.labels["state"], "INSUFFICIENT_DATA");
        assert!(a.title.starts_with("api-5xx-rate (insufficient data): "));
    }

    #[test]
    fn alarm_without_arn_keys_on_account_region_and_name() {
        let e = with_message(ALARM, |m| {
            m.as_object_mut().unwrap().remove("AlarmArn");
            m["AlarmDescription"] = Value::Null;
            m["Trigger"] =
                json!({"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": []});
        });
        let p = alerts(&e, &cx());
        let [a] = &p.alerts[..] else { panic!("{p:?}") };
        assert_eq!(a.fingerprint, "123456789012:EU (Ireland):api-5xx-rate");
        assert_eq!(a.title, "api-5xx-rate");
        assert_eq!(a.labels["region"], "EU (Ireland)");
        assert_eq!(a.url, None);
        assert!(a.description.as_deref().unwrap().starts_with("Threshold"));
    }

    #[test]
    fn contributors_are_separate_keys() {
        let e = with_message(ALARM, |m| {
            m["AlarmContributor"] = json!({
                "ContributorId": "a1b2c3",
                "ContributorAttributes": {"InstanceId": "i-0abc", "odd name": "x"}
            });
        });
        let p = alerts(&e, &cx());
        let [a] = &p.alerts[..] else { panic!("{p:?}") };
        assert_eq!(a.fingerprint, format!("{ALARM_ARN}#contributor=a1b2c3"));
        assert_eq!(a.labels["contributor_InstanceId"], "i-0abc");
        assert_eq!(a.labels["contributor_odd_name"], "x");
    }

    #[test]
    fn unknown_alarm_state_is_rejected() {
        let e = with_message(ALARM, |m| m["NewStateValue"] = json!("MAYBE"));
        let p = alerts(&e, &cx());
        assert!(p.alerts.is_empty());
        assert!(p.rejected[0].contains("MAYBE"), "{:?}", p.rejected);
        let e = with_message(ALARM, |m| m["AlarmName"] = json!(""));
        assert_eq!(alerts(&e, &cx()).rejected.len(), 1);
    }

    #[test]
    fn text_messages_key_on_topic_and_subject() {
        let p = alerts(&env(TEXT), &cx());
        let [a] = &p.alerts[..] else { panic!("{p:?}") };
        assert_eq!(a.status, Status::Firing);
        assert_eq!(
            a.fingerprint,
            "arn:aws:sns:eu-west-1:123456789012:tocsin-alarms"
        );
        assert_eq!(
            a.title,
            "Nightly backup of db-prod-1 failed: snapshot quota exceeded"
        );
        assert_eq!(a.labels["topic"], "tocsin-alarms");
        assert_eq!(a.labels["region"], "eu-west-1");
        assert_eq!(a.labels["account"], "123456789012");
        assert!(a
            .description
            .as_deref()
            .unwrap()
            .contains("Job: backup-nightly"));
        assert_eq!(
            a.starts_at.map(Timestamp::to_rfc3339).as_deref(),
            Some("2026-03-14T02:14:51.003Z")
        );

        let mut e = env(TEXT);
        e.subject = Some("Backup failed".into());
        let mut other = e.clone();
        other.message_id = "another-id".into();
        other.message = "different text".into();
        let a = &alerts(&e, &cx()).alerts[0];
        let b = &alerts(&other, &cx()).alerts[0];
        assert_eq!(a.title, "Backup failed");
        assert_eq!(
            a.fingerprint,
            "arn:aws:sns:eu-west-1:123456789012:tocsin-alarms#Backup failed"
        );
        assert_eq!(a.fingerprint, b.fingerprint, "MessageId is not the key");

        // JSON that is not a CloudWatch alarm is text too.
        e.subject = None;
        e.message =
            r#"{"version":"0","detail-type":"EC2 Instance State-change Notification"}"#.into();
        let p = alerts(&e, &cx());
        assert_eq!(p.alerts[0].fingerprint, e.topic_arn);
        e.message = String::new();
        assert_eq!(
            alerts(&e, &cx()).alerts[0].title,
            "SNS message on tocsin-alarms"
        );
    }

    #[test]
    fn confirmations_carry_no_alerts() {
        let p = alerts(&env(CONFIRM), &cx());
        assert!(p.alerts.is_empty());
        assert_eq!(p.rejected.len(), 1);
    }

    #[test]
    fn raw_is_kept_when_asked() {
        let c = keeping_raw(cx());
        let a = &alerts(&env(ALARM), &c).alerts[0];
        assert_eq!(raw_json(a)["AlarmName"], "api-5xx-rate");
        let t = &alerts(&env(TEXT), &c).alerts[0];
        assert_eq!(
            raw_json(t)["MessageId"],
            "0d6a7e51-93b2-5c4f-a8e0-71f3c2b9d846"
        );
    }

    #[test]
    fn cloudwatch_times() {
        let t = |s| offset_time(s).map(Timestamp::to_rfc3339);
        assert_eq!(
            t("2022-09-25T18:50:37.811+0000").as_deref(),
            Some("2022-09-25T18:50:37.811Z")
        );
        assert_eq!(
            t("2022-09-25T20:50:37.811+0200").as_deref(),
            Some("2022-09-25T18:50:37.811Z")
        );
        assert_eq!(
            t("2022-09-25T18:50:37.811Z").as_deref(),
            Some("2022-09-25T18:50:37.811Z")
        );
        assert_eq!(t("yesterday"), None);
        assert_eq!(t("+0000"), None);
        assert_eq!(t("ü+0000"), None);
    }

    #[test]
    fn helpers() {
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(truncate("héllo", 3), "hél…");
        assert_eq!(truncate("hé", 3), "hé");
        assert_eq!(
            console_url("cn-north-1", "x"),
            "https://console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/x"
        );
        assert_eq!(
            MessageType::from_name("Notification"),
            Some(MessageType::Notification)
        );
        assert_eq!(MessageType::from_name("notification"), None);
    }

    proptest! {
        #[test]
        fn envelope_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = envelope(&bytes);
        }

        #[test]
        fn cert_url_allowed_never_panics(url in any::<String>()) {
            let _ = cert_url_allowed(&url);
        }

        #[test]
        fn allowed_urls_have_an_sns_host(url in "https://[a-z.:@/-]{0,40}(\\.pem)?") {
            if cert_url_allowed(&url) {
                let host = url["https://".len()..].split('/').next().unwrap();
                prop_assert!(host.starts_with("sns."));
                prop_assert!(host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"));
                prop_assert!(!host.contains('@') && !host.contains(':'));
            }
        }

        #[test]
        fn alerts_never_panic(
            message in any::<String>(),
            subject in proptest::option::of(any::<String>()),
            state in "(ALARM|OK|INSUFFICIENT_DATA|.{0,8})",
            time in ".{0,40}",
            name in ".{0,20}",
        ) {
            let mut e = env(TEXT);
            e.message = message;
            e.subject = subject.clone();
            let _ = alerts(&e, &cx());
            e.message = json!({
                "AlarmName": name, "NewStateValue": state, "StateChangeTime": time,
                "AlarmArn": e.topic_arn, "Trigger": {"Dimensions": [{"name": 1}, "x"]},
            })
            .to_string();
            let p = alerts(&e, &cx());
            prop_assert_eq!(p.alerts.len() + p.rejected.len(), 1);
        }

        #[test]
        fn verify_never_panics(sig in ".{0,400}", version in ".{0,3}", cert in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut e = env(ALARM);
            e.signature = sig;
            e.signature_version = version;
            let _ = verify(&e, &cert);
            prop_assert!(verify(&e, CERT).is_err());
        }
    }
}
