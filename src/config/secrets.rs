//! Weak secrets: values copied from an example, development credentials, and secrets too short to
//! resist guessing. `tocsin check` refuses every one of them; `tocsin serve` refuses development and
//! example credentials on any address but loopback (and says so in its first log line on loopback), and
//! warns about the rest.
//!
//! Why a walk over the YAML rather than over [`Config`]: secrets sit in a dozen places (sources, members,
//! email, sinks, ChatOps, the web UI, `/metrics`), and a walk by key name finds every one, with the key
//! path to name in the message, including keys added later under one of these names.

use std::net::SocketAddr;

use serde_yaml::Value;

use super::values::expand_env;
use super::Problem;

/// Shortest secret `tocsin check` accepts (tokens, passwords, HMAC and signing secrets).
pub const MIN_LEN: usize = 16;

/// Keys whose values are secrets.
const SECRET_KEYS: [&str; 11] = [
    "bearer",
    "token",
    "tokens",
    "password",
    "secret",
    "secrets",
    "hmac",
    "signing_secret",
    "session_secret",
    "access_token",
    "webhook_url",
];

/// Values that shipped in tocsin's own files at some point, or that people copy from docs.
const KNOWN: [&str; 6] = [
    "secret",
    "password",
    "changeme",
    "token",
    "xoxb-example",
    "r0utingkeyexample0000000000000000",
];

/// How a secret is weak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weakness {
    /// `dev-...`: for trying tocsin out on this machine only.
    Development,
    /// Taken from an example (`example-...`, `change-me...`).
    Example,
    /// Shorter than [`MIN_LEN`].
    Short(usize),
    /// A password written into the file itself (in the storage URL) instead of taken from the
    /// environment.
    Written,
}

/// One weak secret, at its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weak {
    pub path: String,
    pub weakness: Weakness,
}

impl Weak {
    pub fn problem(&self) -> Problem {
        let message = match self.weakness {
            Weakness::Development => {
                "is a development credential (`dev-...`): set a real secret from the environment"
                    .to_string()
            }
            Weakness::Example => "is an example value: set a real secret from the environment"
                .to_string(),
            Weakness::Short(n) => format!(
                "is {n} characters long; secrets need at least {MIN_LEN} (e.g. `openssl rand -hex 24`)"
            ),
            Weakness::Written => "holds a password written in the file: write it as `${PGPASSWORD}` \
                 (any variable), or leave it out of the URL and set PGPASSWORD"
                .to_string(),
        };
        Problem {
            path: self.path.clone(),
            line: None,
            message,
        }
    }
}

fn weakness(key: &str, value: &str) -> Option<Weakness> {
    let lower = value.to_ascii_lowercase();
    if lower.starts_with("dev-") {
        return Some(Weakness::Development);
    }
    if lower.starts_with("example")
        || lower.contains("change-me")
        || lower.contains("changeme")
        || KNOWN.contains(&lower.as_str())
        || (key == "webhook_url" && lower.contains("/example"))
    {
        return Some(Weakness::Example);
    }
    // URLs carry their secret somewhere inside; their length says nothing.
    if key != "webhook_url" && value.chars().count() < MIN_LEN {
        return Some(Weakness::Short(value.chars().count()));
    }
    None
}

/// Every weak secret in the config text (with `${VAR}` expanded from `lookup`), by key path. Values
/// that cannot be expanded are skipped: the config's own validation reports them.
pub fn weak_secrets(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Weak> {
    let mut weak: Vec<Weak> = secrets(text, lookup)
        .into_iter()
        .filter_map(|(path, key, value)| {
            let value = value?;
            // `headers` hold `Bearer <token>`: judge the token.
            let value = value.strip_prefix("Bearer ").unwrap_or(&value);
            weakness(key, value).map(|weakness| Weak { path, weakness })
        })
        .collect();
    if let Ok(doc) = serde_yaml::from_str::<Value>(text) {
        if let Some(url) = doc.get("storage").and_then(Value::as_str) {
            if written_password(url) {
                weak.push(Weak {
                    path: "storage".into(),
                    weakness: Weakness::Written,
                });
            }
        }
    }
    weak
}

/// Whether a PostgreSQL URL, as written in the file (before `${VAR}` expansion), holds a password that
/// is not entirely a `${VAR}` reference, in its user part or as a `password=` parameter.
fn written_password(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return false;
    };
    let from_env = |p: &str| p.is_empty() || (p.starts_with("${") && p.ends_with('}'));
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let in_user = authority
        .rsplit_once('@')
        .and_then(|(user, _)| user.split_once(':'))
        .is_some_and(|(_, p)| !from_env(p));
    let in_query = tail.split_once('?').is_some_and(|(_, q)| {
        q.split('&').any(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k.eq_ignore_ascii_case("password") && !from_env(v))
        })
    });
    in_user || in_query
}

/// Every secret in the config text: its key path, the key it is under, and its value with `${VAR}`
/// expanded from `lookup` (`None` when that fails, e.g. an unset variable with no fallback).
pub fn secrets(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, &'static str, Option<String>)> {
    let Ok(doc) = serde_yaml::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    walk(&doc, "", None, lookup, &mut out);
    out
}

fn walk(
    v: &Value,
    path: &str,
    secret_key: Option<&'static str>,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut Vec<(String, &'static str, Option<String>)>,
) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let Some(k) = k.as_str() else { continue };
                let child_path = if path.is_empty() {
                    k.to_string()
                } else {
                    format!("{path}.{k}")
                };
                // Every value under a webhook sink's `headers` is a secret too (Authorization: ...).
                let key = if secret_key == Some("headers") {
                    Some("header")
                } else if k == "headers" {
                    Some("headers")
                } else {
                    SECRET_KEYS.iter().find(|s| **s == k).copied()
                };
                walk(child, &child_path, key, lookup, out);
            }
        }
        Value::Sequence(s) => {
            for (i, child) in s.iter().enumerate() {
                walk(child, &format!("{path}[{i}]"), secret_key, lookup, out);
            }
        }
        Value::String(text) => {
            if let Some(key) = secret_key {
                out.push((path.to_string(), key, expand_env(text, lookup).ok()));
            }
        }
        _ => {}
    }
}

/// Whether `listen` only takes connections from this machine.
pub fn is_loopback(listen: &SocketAddr) -> bool {
    listen.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_password_must_come_from_the_environment() {
        for (url, written) in [
            ("postgres://tocsin:hunter2hunter2hunter2@db/t", true),
            ("postgres://tocsin:${PGPASSWORD}@db/t", false),
            ("postgresql://tocsin@db/t?sslmode=require", false),
            ("postgres://db/t?user=tocsin&password=hunter2", true),
            ("postgres://db/t?user=tocsin&password=${PW}", false),
            ("sqlite://data/t.db", false),
        ] {
            let text = format!("storage: \"{url}\"\n");
            let weak = weak_secrets(&text, &|_| Some("from-the-environment-0001".into()));
            assert_eq!(
                weak.iter()
                    .any(|w| w.path == "storage" && w.weakness == Weakness::Written),
                written,
                "{url}"
            );
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "GOOD" => Some("0123456789abcdef0123".into()),
            "SHORT" => Some("abc".into()),
            _ => None,
        }
    }

    fn paths(text: &str) -> Vec<(String, Weakness)> {
        weak_secrets(text, &env)
            .into_iter()
            .map(|w| (w.path, w.weakness))
            .collect()
    }

    #[test]
    fn finds_weak_secrets_wherever_they_are() {
        let text = "sources:\n  a: {kind: generic, auth: {token: \"${GOOD}\"}}\n  \
            b: {kind: generic, auth: {bearer: \"${SHORT}\"}}\n  \
            c: {kind: generic, auth: {hmac: [example-new, \"${GOOD}\"]}}\n  \
            e: {kind: generic, auth: {hmac: {secrets: \"${GOOD}\", header: X-Sig}}}\n  \
            d: {kind: generic, auth: {basic: {username: u, password: dev-password}}}\n\
            members:\n  alice: {token: dev-alice-token}\n\
            rooms:\n  r: {sink: {kind: webhook, url: \"https://h/x\", headers: {Authorization: \"Bearer abc\"}}}\n  \
            s: {sink: {kind: slack, webhook_url: \"https://hooks.slack.com/services/T0/B0/example\"}}\n\
            web: {session_secret: change-me-to-a-long-random-secret}\n";
        assert_eq!(
            paths(text),
            vec![
                ("sources.b.auth.bearer".into(), Weakness::Short(3)),
                ("sources.c.auth.hmac[0]".into(), Weakness::Example),
                (
                    "sources.d.auth.basic.password".into(),
                    Weakness::Development
                ),
                ("members.alice.token".into(), Weakness::Development),
                (
                    "rooms.r.sink.headers.Authorization".into(),
                    Weakness::Short(3)
                ),
                ("rooms.s.sink.webhook_url".into(), Weakness::Example),
                ("web.session_secret".into(), Weakness::Example),
            ]
        );
    }

    #[test]
    fn strong_secrets_and_other_keys_pass() {
        assert!(paths(
            "listen: 127.0.0.1:9077\nsources:\n  a: {kind: generic, auth: {token: \"${GOOD}\"}}\n\
             rooms:\n  r: {sink: {kind: slack, webhook_url: \"https://hooks.slack.com/services/T1/B2/xyz\"}}\n"
        )
        .is_empty());
    }
}
