//! Process metrics, rendered in the Prometheus text exposition format at `/metrics`.
//!
//! A handful of fixed metrics does not need a metrics framework: counters are atomics in maps keyed by
//! their label values, histograms have fixed buckets. Gauges that describe stored state (tickets by
//! state, journal backlog) are read from the store at scrape time so they can never drift.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::time::Timestamp;
use crate::store::{Stats, StoreHealth};

/// Bucket bounds in seconds, from 100µs to 10s.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// All of tocsin's own metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (source, outcome) → alerts.
    received: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// outcome → alerts applied to tickets.
    processed: Mutex<BTreeMap<&'static str, u64>>,
    /// Tickets deleted past `tickets.retention`.
    purged: AtomicU64,
    /// Per-request ingest latency (receipt to response), by source.
    ingest_latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// Receipt to ticket commit, per alert.
    pub processing_latency: Histogram,
    /// (plugin, outcome) → calls. Outcomes: pass, route, drop, and the failure kinds.
    plugin_calls: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (plugin, reason) → dropped alerts. Reasons are the plugin's own words, so their number is capped.
    plugin_drops: Mutex<BTreeMap<(String, String), u64>>,
    /// Time per plugin call.
    plugin_latency: Mutex<BTreeMap<String, std::sync::Arc<Histogram>>>,
    /// (room, outcome) → delivery attempts. Outcomes: sent, failed, dead, skipped, digested.
    deliveries: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// outcome → emails. Outcomes: sent, failed, gave_up, cancelled.
    emails: Mutex<BTreeMap<&'static str, u64>>,
    /// Ticket change to delivered message, per delivery.
    pub delivery_latency: Histogram,
}

/// Distinct drop reasons counted per plugin; later ones are counted as `other`.
const MAX_DROP_REASONS: usize = 50;

impl Metrics {
    pub fn alerts_received(&self, source: &str, outcome: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        if let Ok(mut m) = self.received.lock() {
            *m.entry((source.to_string(), outcome)).or_default() += n;
        }
    }

    pub fn tickets_purged(&self, n: u64) {
        self.purged.fetch_add(n, Ordering::Relaxed);
    }

    pub fn alert_processed(&self, outcome: &'static str) {
        if let Ok(mut m) = self.processed.lock() {
            *m.entry(outcome).or_default() += 1;
        }
    }

    pub fn plugin_call(&self, plugin: &str, outcome: &'static str, d: Duration) {
        if let Ok(mut m) = self.plugin_calls.lock() {
            *m.entry((plugin.to_string(), outcome)).or_default() += 1;
        }
        let h = match self.plugin_latency.lock() {
            Ok(mut m) => m.entry(plugin.to_string()).or_default().clone(),
            Err(_) => return,
        };
        h.observe(d);
    }

    pub fn plugin_drop(&self, plugin: &str, reason: &str) {
        if let Ok(mut m) = self.plugin_drops.lock() {
            let known = m.contains_key(&(plugin.to_string(), reason.to_string()));
            let count = m.keys().filter(|(p, _)| p == plugin).count();
            let reason = if known || count < MAX_DROP_REASONS {
                reason
            } else {
                "other"
            };
            *m.entry((plugin.to_string(), reason.to_string()))
                .or_default() += 1;
        }
    }

    pub fn delivery(&self, room: &str, outcome: &'static str, n: u64) {
        if let Ok(mut m) = self.deliveries.lock() {
            *m.entry((room.to_string(), outcome)).or_default() += n;
        }
    }

    pub fn email(&self, outcome: &'static str) {
        if let Ok(mut m) = self.emails.lock() {
            *m.entry(outcome).or_default() += 1;
        }
    }

    pub fn ingest_latency(&self, source: &str, d: Duration) {
        let h = match self.ingest_latency.lock() {
            Ok(mut m) => m.entry(source.to_string()).or_default().clone(),
            Err(_) => return,
        };
        h.observe(d);
    }

    /// The text exposition format, with stored-state gauges from `stats`.
    pub fn render(&self, stats: Option<&Stats>) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP tocsin_alerts_received_total Alerts received, by source and outcome.\n",
        );
        out.push_str("# TYPE tocsin_alerts_received_total counter\n");
        if let Ok(m) = self.received.lock() {
            for ((source, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tocsin_alerts_received_total{{source=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(source)
                );
            }
        }
        out.push_str(
            "# HELP tocsin_alerts_processed_total Alerts applied to tickets, by outcome.\n",
        );
        out.push_str("# TYPE tocsin_alerts_processed_total counter\n");
        if let Ok(m) = self.processed.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tocsin_alerts_processed_total{{outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP tocsin_tickets_purged_total Resolved tickets deleted past tickets.retention.\n# TYPE tocsin_tickets_purged_total counter\n");
        let _ = writeln!(
            out,
            "tocsin_tickets_purged_total {}",
            self.purged.load(Ordering::Relaxed)
        );
        if let Some(s) = stats {
            out.push_str("# HELP tocsin_tickets Tickets, by state.\n# TYPE tocsin_tickets gauge\n");
            for (state, n) in [
                ("open", s.open),
                ("acked", s.acked),
                ("resolved", s.resolved),
            ] {
                let _ = writeln!(out, "tocsin_tickets{{state=\"{state}\"}} {n}");
            }
            out.push_str(
                "# HELP tocsin_journal_backlog Accepted alerts not yet applied to tickets.\n",
            );
            out.push_str("# TYPE tocsin_journal_backlog gauge\n");
            let _ = writeln!(out, "tocsin_journal_backlog {}", s.journal_backlog);
        }
        out.push_str("# HELP tocsin_emails_total Emails to members, by outcome.\n");
        out.push_str("# TYPE tocsin_emails_total counter\n");
        if let Ok(m) = self.emails.lock() {
            for (outcome, n) in m.iter() {
                let _ = writeln!(out, "tocsin_emails_total{{outcome=\"{outcome}\"}} {n}");
            }
        }
        out.push_str(
            "# HELP tocsin_deliveries_total Delivery attempts to rooms, by room and outcome.\n",
        );
        out.push_str("# TYPE tocsin_deliveries_total counter\n");
        if let Ok(m) = self.deliveries.lock() {
            for ((room, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tocsin_deliveries_total{{room=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(room)
                );
            }
        }
        out.push_str(
            "# HELP tocsin_delivery_latency_seconds Ticket change to delivered message.\n",
        );
        out.push_str("# TYPE tocsin_delivery_latency_seconds histogram\n");
        self.delivery_latency
            .render(&mut out, "tocsin_delivery_latency_seconds", "");
        out.push_str("# HELP tocsin_ingest_duration_seconds Time to accept an ingest request.\n");
        out.push_str("# TYPE tocsin_ingest_duration_seconds histogram\n");
        if let Ok(m) = self.ingest_latency.lock() {
            for (source, h) in m.iter() {
                h.render(
                    &mut out,
                    "tocsin_ingest_duration_seconds",
                    &format!("source=\"{}\"", escape(source)),
                );
            }
        }
        out.push_str("# HELP tocsin_plugin_calls_total Plugin calls, by plugin and outcome.\n");
        out.push_str("# TYPE tocsin_plugin_calls_total counter\n");
        if let Ok(m) = self.plugin_calls.lock() {
            for ((plugin, outcome), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tocsin_plugin_calls_total{{plugin=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(plugin)
                );
            }
        }
        out.push_str(
            "# HELP tocsin_plugin_dropped_total Alerts dropped by plugins, by plugin and reason.\n",
        );
        out.push_str("# TYPE tocsin_plugin_dropped_total counter\n");
        if let Ok(m) = self.plugin_drops.lock() {
            for ((plugin, reason), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "tocsin_plugin_dropped_total{{plugin=\"{}\",reason=\"{}\"}} {n}",
                    escape(plugin),
                    escape(reason)
                );
            }
        }
        out.push_str("# HELP tocsin_plugin_duration_seconds Time per plugin call.\n");
        out.push_str("# TYPE tocsin_plugin_duration_seconds histogram\n");
        if let Ok(m) = self.plugin_latency.lock() {
            for (plugin, h) in m.iter() {
                h.render(
                    &mut out,
                    "tocsin_plugin_duration_seconds",
                    &format!("plugin=\"{}\"", escape(plugin)),
                );
            }
        }
        out.push_str(
            "# HELP tocsin_processing_duration_seconds Time from receiving an alert to its ticket change.\n",
        );
        out.push_str("# TYPE tocsin_processing_duration_seconds histogram\n");
        self.processing_latency
            .render(&mut out, "tocsin_processing_duration_seconds", "");
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Readiness and the journal's health, read at scrape time: `tocsin_ready`, the age of the oldest
/// unprocessed alert and the dead journal's size.
pub fn render_health(out: &mut String, ready: bool, health: Option<&StoreHealth>, now: Timestamp) {
    out.push_str(
        "# HELP tocsin_ready 1 when /readyz says ready, else 0.\n# TYPE tocsin_ready gauge\n",
    );
    let _ = writeln!(out, "tocsin_ready {}", u8::from(ready));
    let Some(h) = health else {
        return;
    };
    out.push_str("# HELP tocsin_journal_oldest_age_seconds Age of the oldest accepted alert not yet processed (0 when none).\n# TYPE tocsin_journal_oldest_age_seconds gauge\n");
    let age = h.oldest_pending.map_or(0.0, |t| now.since(t).as_secs_f64());
    let _ = writeln!(out, "tocsin_journal_oldest_age_seconds {age}");
    out.push_str("# HELP tocsin_journal_dead Journal rows moved aside because they could not be processed.\n# TYPE tocsin_journal_dead gauge\n");
    let _ = writeln!(out, "tocsin_journal_dead {}", h.dead_journal);
    out.push_str("# HELP tocsin_store_problem 1 while the store reports a problem (writer stopped, writes failing, corrupt database).\n# TYPE tocsin_store_problem gauge\n");
    let _ = writeln!(
        out,
        "tocsin_store_problem {}",
        u8::from(h.problem.is_some())
    );
}

/// This instance in the cluster: live instances it counted, and each lease it wants, 1 while it holds it.
pub fn render_cluster(
    out: &mut String,
    live: usize,
    wanted: &[String],
    held: &std::collections::BTreeMap<String, i64>,
) {
    out.push_str("# HELP tocsin_cluster_instances Live instances sharing the database, at this instance's last heartbeat.\n# TYPE tocsin_cluster_instances gauge\n");
    let _ = writeln!(out, "tocsin_cluster_instances {live}");
    out.push_str("# HELP tocsin_lease_held 1 while this instance holds the lease (and does its work), else 0.\n# TYPE tocsin_lease_held gauge\n");
    for name in wanted {
        let _ = writeln!(
            out,
            "tocsin_lease_held{{lease=\"{}\"}} {}",
            escape(name),
            u8::from(held.contains_key(name))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.alerts_received("prom", "accepted", 3);
        m.ingest_latency("prom", Duration::from_millis(2));
        let text = m.render(Some(&Stats {
            open: 2,
            ..Stats::default()
        }));
        assert!(
            text.contains("tocsin_alerts_received_total{source=\"prom\",outcome=\"accepted\"} 3")
        );
        assert!(
            text.contains("tocsin_ingest_duration_seconds_bucket{source=\"prom\",le=\"0.001\"} 0")
        );
        assert!(
            text.contains("tocsin_ingest_duration_seconds_bucket{source=\"prom\",le=\"0.0025\"} 1")
        );
        assert!(text.contains("tocsin_tickets{state=\"open\"} 2"));
        assert!(text.contains("tocsin_processing_duration_seconds_count 0"));
    }
}
