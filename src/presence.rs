//! The presence poller: asks chat platforms that can tell (Matrix, Mattermost in REST mode, Slack in
//! Web API mode) whether members are online, and records each platform's answer as that source's
//! report. Reports from the API (and, later, the web UI) arrive through `api/`; `domain::presence` adds
//! them up.
//!
//! A report's `since` changes only when its state does, so `GET /api/members` shows when a member's
//! presence last changed, not when it was last polled. Driven in steps like the other workers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::cluster::{Cluster, PRESENCE};
use crate::config::Config;
use crate::domain::presence::Presence;
use crate::sinks::Sink;
use crate::store::{Store, StoreError};

/// How often platforms are asked. Synapse itself counts 5 minutes of idleness before "unavailable".
const EVERY: Duration = Duration::from_secs(30);

/// One thing to ask: a member's handle on a platform, and the sinks of that platform, the member's own
/// rooms first. The first sink that can answer (a webhook-mode room cannot) is asked.
#[derive(Debug, Clone)]
struct Probe {
    member: String,
    platform: &'static str,
    handle: String,
    sinks: Vec<Arc<dyn Sink>>,
}

#[derive(Debug)]
pub struct PresencePoller {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    probes: Vec<Probe>,
}

impl PresencePoller {
    /// One probe per member and platform where the member has a handle and some room's sink of that
    /// platform can be asked (a room the member belongs to first).
    pub fn new(
        config: &Config,
        sinks: &BTreeMap<String, Arc<dyn Sink>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> PresencePoller {
        let mut probes = Vec::new();
        for (member, m) in &config.members {
            for (platform, handle) in &m.handles {
                let mut candidates: Vec<(&String, &Arc<dyn Sink>)> = sinks
                    .iter()
                    .filter(|(_, s)| s.kind() == platform.as_str())
                    .collect();
                candidates.sort_by_key(|(room, _)| !config.rooms[*room].members.contains(member));
                if let Some((_, first)) = candidates.first() {
                    probes.push(Probe {
                        member: member.clone(),
                        platform: first.kind(),
                        handle: handle.0.clone(),
                        sinks: candidates.iter().map(|(_, s)| Arc::clone(s)).collect(),
                    });
                }
            }
        }
        PresencePoller {
            store,
            clock,
            probes,
        }
    }

    /// Asks every platform once. Returns how many reports changed.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let known: BTreeMap<(String, String), Presence> = self
            .store
            .presence()
            .await?
            .into_iter()
            .map(|(m, p)| ((m, p.source.clone()), p))
            .collect();
        let mut changed = 0;
        for probe in &self.probes {
            let mut answer = None;
            for sink in &probe.sinks {
                answer = sink.presence(&probe.handle).await;
                if answer.is_some() {
                    break;
                }
            }
            let state = match answer {
                None => continue,
                Some(Ok(s)) => s,
                Some(Err(error)) => {
                    tracing::debug!(member = %probe.member, platform = probe.platform, %error, "Could not read presence.");
                    continue;
                }
            };
            let key = (probe.member.clone(), probe.platform.to_string());
            if known.get(&key).is_some_and(|p| p.state == state) {
                continue;
            }
            self.store
                .set_presence(
                    &probe.member,
                    Presence {
                        state,
                        since: self.clock.now(),
                        source: probe.platform.to_string(),
                    },
                )
                .await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Whether any room's platform reports presence (else there is nothing to poll).
    pub fn polls(&self) -> bool {
        !self.probes.is_empty()
    }

    /// The server's loop: poll every 30 seconds until shutdown.
    /// Only while this instance holds the presence lease in `cluster`.
    pub async fn run(self: Arc<Self>, cluster: Arc<Cluster>, mut shutdown: watch::Receiver<bool>) {
        if self.probes.is_empty() {
            return;
        }
        loop {
            if let Some(Err(e)) = cluster.under(PRESENCE, self.step()).await {
                tracing::warn!(error = %e, "Recording presence failed; will retry.");
            }
            tokio::select! {
                _ = tokio::time::sleep(EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
