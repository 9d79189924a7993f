//! `http:`: limits of the HTTP listener (connections, timeouts) and of live streams.
//!
//! Why these exist: without them a few hundred idle or half-sent connections use up the process's
//! file descriptors and ingest stops, and thousands of live streams from one viewer slow every other
//! request. Every key has a default; the connection cap's default depends on the open-file limit,
//! which only `app` knows (validation here stays pure).

use std::time::Duration;

use serde::Deserialize;

use super::values::{Env, HumanDuration};

/// `http:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections served at once; more wait in the kernel's accept queue. Default: 3/4 of the
    /// open-file limit, at most 8192.
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Time a client has to send a request's headers, and that a keep-alive connection may wait for
    /// its next request. Default 10s.
    #[serde(default)]
    pub header_timeout: Option<Env<HumanDuration>>,
    /// Time from a request's start until its response starts: bounds slowly sent bodies. Default 60s.
    #[serde(default)]
    pub request_timeout: Option<Env<HumanDuration>>,
    /// A connection on which no byte moves either way for this long is closed (clients that stop
    /// reading or writing mid-request). Default 60s.
    #[serde(default)]
    pub idle_timeout: Option<Env<HumanDuration>>,
    #[serde(default)]
    pub streams: StreamsConfig,
}

/// `http.streams:`: `GET /api/stream`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamsConfig {
    /// Live streams open at once, all members together. Default: half the connection cap.
    #[serde(default)]
    pub max_total: Option<usize>,
    /// Live streams one member may have open at once. Default 16.
    #[serde(default)]
    pub max_per_member: Option<usize>,
    /// Most entries replayed to a reconnecting stream; further behind, it gets a `reset` event.
    /// Default 1000.
    #[serde(default)]
    pub replay_limit: Option<usize>,
}

/// Largest default connection cap.
const MAX_DEFAULT_CONNECTIONS: u64 = 8192;

impl HttpConfig {
    pub fn header_timeout(&self) -> Duration {
        dur(&self.header_timeout, 10)
    }

    pub fn request_timeout(&self) -> Duration {
        dur(&self.request_timeout, 60)
    }

    pub fn idle_timeout(&self) -> Duration {
        dur(&self.idle_timeout, 60)
    }

    /// The connection cap: configured, or 3/4 of the open-file limit `nofile` (the rest is for the
    /// database, plugins, outgoing requests and SMTP), at most 8192.
    pub fn max_connections(&self, nofile: Option<u64>) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let cap = nofile.map_or(MAX_DEFAULT_CONNECTIONS, |n| n / 4 * 3);
            cap.clamp(16, MAX_DEFAULT_CONNECTIONS) as usize
        })
    }

    /// `(key under http., message)` for each problem.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, d) in [
            ("header_timeout", &self.header_timeout),
            ("request_timeout", &self.request_timeout),
            ("idle_timeout", &self.idle_timeout),
        ] {
            if let Some(Env(HumanDuration(d))) = d {
                if d.is_zero() || *d > Duration::from_secs(3600) {
                    out.push((key, "must be between 1ms and 1h".to_string()));
                }
            }
        }
        if self.max_connections == Some(0) {
            out.push(("max_connections", "must be at least 1".to_string()));
        }
        let s = &self.streams;
        if s.max_total == Some(0) {
            out.push(("streams.max_total", "must be at least 1".to_string()));
        }
        if s.max_per_member == Some(0) {
            out.push(("streams.max_per_member", "must be at least 1".to_string()));
        }
        if let (Some(total), Some(conns)) = (s.max_total, self.max_connections) {
            if total >= conns {
                out.push((
                    "streams.max_total",
                    format!(
                        "must be below http.max_connections ({conns}), or streams can take every connection and ingest stops"
                    ),
                ));
            }
        }
        out
    }
}

impl StreamsConfig {
    /// Streams open at once, given the connection cap: configured, or half of it.
    pub fn max_total(&self, max_connections: usize) -> usize {
        self.max_total.unwrap_or((max_connections / 2).max(1))
    }

    pub fn max_per_member(&self) -> usize {
        self.max_per_member.unwrap_or(16)
    }

    pub fn replay_limit(&self) -> usize {
        self.replay_limit.unwrap_or(1000)
    }
}

fn dur(d: &Option<Env<HumanDuration>>, default_secs: u64) -> Duration {
    d.as_ref()
        .map_or(Duration::from_secs(default_secs), |d| d.0 .0)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::Config;

    fn problems(yaml: &str) -> Vec<String> {
        match Config::from_yaml(yaml, Path::new("test.yaml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn defaults_follow_the_descriptor_limit() {
        let c = Config::from_yaml("log: {level: info}\n", Path::new("t.yaml")).unwrap();
        assert_eq!(c.http.header_timeout(), Duration::from_secs(10));
        assert_eq!(c.http.max_connections(Some(1024)), 768);
        assert_eq!(c.http.max_connections(Some(1 << 20)), 8192);
        assert_eq!(c.http.max_connections(None), 8192);
        assert_eq!(c.http.streams.max_total(768), 384);
        assert_eq!(c.http.streams.max_per_member(), 16);
        let c = Config::from_yaml(
            "http: {max_connections: 50, header_timeout: 200ms, streams: {max_total: 10}}\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(c.http.max_connections(Some(1024)), 50);
        assert_eq!(c.http.header_timeout(), Duration::from_millis(200));
        assert_eq!(c.http.streams.max_total(50), 10);
    }

    #[test]
    fn problems_name_their_key() {
        assert_eq!(
            problems(
                "http:\n  max_connections: 10\n  idle_timeout: 0s\n  streams:\n    max_total: 10\n    max_per_member: 0\n"
            ),
            [
                "line 3: http.idle_timeout: must be between 1ms and 1h",
                "line 6: http.streams.max_per_member: must be at least 1",
                "line 5: http.streams.max_total: must be below http.max_connections (10), or streams can take every connection and ingest stops",
            ]
        );
        let unknown = problems("http: {timeout: 1s}\n");
        assert!(unknown[0].contains("timeout"), "{unknown:?}");
    }
}
