//! `cluster:`: several tocsin instances sharing one PostgreSQL database.
//!
//! Every instance on PostgreSQL joins the cluster (there is nothing to switch on): it heartbeats into the
//! database and takes its share of the leases that say who does which piece of shared work. The block
//! only tunes that. On SQLite an instance is alone and holds every piece of work itself.

use std::time::Duration;

use serde::Deserialize;

use super::values::{Env, HumanDuration};

/// `cluster:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long a lease lasts without renewal: the longest a dead instance's work waits before another
    /// takes it over. Renewed every third of it. Default 10s.
    #[serde(default)]
    pub lease_ttl: Option<Env<HumanDuration>>,
    /// The address other people reach this instance at, shown in `/api/cluster`. Default: the address
    /// the HTTP listener bound.
    #[serde(default)]
    pub advertise: Option<Env<String>>,
}

/// Shortest lease: renewals every third of it must fit between database round trips and pauses.
const MIN_TTL: Duration = Duration::from_secs(1);
/// Longest lease: beyond it a dead instance's rooms would wait too long.
const MAX_TTL: Duration = Duration::from_secs(300);

impl ClusterConfig {
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
            .as_ref()
            .map_or(Duration::from_secs(10), |d| d.0 .0)
    }

    /// `(key under cluster., message)` for each problem.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let ttl = self.lease_ttl();
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            out.push(("lease_ttl", "must be between 1s and 5m".to_string()));
        }
        if let Some(Env(a)) = &self.advertise {
            if a.trim().is_empty() || a.len() > 256 || a.chars().any(char::is_control) {
                out.push((
                    "advertise",
                    "must be a host and port or a URL, at most 256 characters".to_string(),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let c: ClusterConfig = serde_yaml::from_str(yaml).unwrap();
        c.problems()
            .into_iter()
            .map(|(k, m)| format!("{k}: {m}"))
            .collect()
    }

    #[test]
    fn defaults_and_bounds() {
        assert_eq!(
            ClusterConfig::default().lease_ttl(),
            Duration::from_secs(10)
        );
        assert!(problems("lease_ttl: 2s").is_empty());
        assert_eq!(
            problems("lease_ttl: 500ms"),
            ["lease_ttl: must be between 1s and 5m"]
        );
        assert_eq!(
            problems("lease_ttl: 1h"),
            ["lease_ttl: must be between 1s and 5m"]
        );
        assert_eq!(problems("advertise: ''").len(), 1);
        assert!(serde_yaml::from_str::<ClusterConfig>("ttl: 2s").is_err());
    }
}
