//! `web:`: the browser UI's sessions (signing key and lifetime) and where the client address comes
//! from (for throttling failed sign-ins and tokens).

use std::time::Duration;

use serde::Deserialize;

use super::values::{Env, HumanDuration, Secret};

/// Shortest `web.session_secret` accepted.
pub const MIN_SESSION_SECRET: usize = 16;

/// `web:`. Every key is optional; without the block sessions are signed with a random key made at
/// start (so a restart signs everyone out).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Signs session cookies and CSRF tokens. At least 16 characters; from the environment. Set it
    /// to keep people signed in across restarts.
    #[serde(default)]
    pub session_secret: Option<Secret>,
    /// How long a sign-in lasts.
    #[serde(default)]
    pub session_ttl: Option<Env<HumanDuration>>,
    /// Behind a reverse proxy: the header it puts the client's address in (`X-Forwarded-For`,
    /// `X-Real-IP`); the last address in it is used. Unset: the TCP peer's address.
    #[serde(default)]
    pub client_ip_header: Option<Env<String>>,
}

impl WebConfig {
    /// The session lifetime, 12h unless set.
    pub fn ttl(&self) -> Duration {
        self.session_ttl
            .as_ref()
            .map_or(Duration::from_secs(12 * 3600), |d| d.0 .0)
    }

    /// `(key under web., message)` for each problem.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(s) = &self.session_secret {
            if s.expose().chars().count() < MIN_SESSION_SECRET {
                out.push((
                    "session_secret",
                    format!("must be at least {MIN_SESSION_SECRET} characters"),
                ));
            }
        }
        if let Some(Env(h)) = &self.client_ip_header {
            // An HTTP token (RFC 9110): letters, digits and a few marks.
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if h.is_empty() || !h.chars().all(token) {
                out.push((
                    "client_ip_header",
                    format!("`{h}` is not an HTTP header name"),
                ));
            }
        }
        if let Some(Env(HumanDuration(d))) = &self.session_ttl {
            if *d < Duration::from_secs(60) || *d > Duration::from_secs(90 * 24 * 3600) {
                out.push(("session_ttl", "must be between 1m and 90 days".to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn problems(yaml: &str) -> Vec<String> {
        match Config::from_yaml(yaml, Path::new("test.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_and_set_values_parse() {
        let c = Config::from_yaml("log: {level: info}\n", Path::new("t.yaml")).unwrap();
        assert!(c.web.is_none());
        let c = Config::from_yaml(
            "web: {session_secret: a-long-enough-secret, session_ttl: 8h}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let web = c.web.unwrap();
        assert_eq!(web.ttl(), std::time::Duration::from_secs(8 * 3600));
        assert!(!format!("{web:?}").contains("a-long-enough-secret"));
        assert_eq!(
            super::WebConfig::default().ttl(),
            std::time::Duration::from_secs(12 * 3600)
        );
    }

    #[test]
    fn problems_name_their_key() {
        assert_eq!(
            problems("web:\n  session_secret: short\n  session_ttl: 1s\n"),
            [
                "line 2: web.session_secret: must be at least 16 characters",
                "line 3: web.session_ttl: must be between 1m and 90 days",
            ]
        );
        let unknown = problems("web: {session_secret: a-long-enough-secret, ttl: 1h}\n");
        assert!(
            unknown[0].contains("web") && unknown[0].contains("ttl"),
            "{unknown:?}"
        );
    }
}
