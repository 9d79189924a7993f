//! Running a source's chain of plugins on one alert: the breaker's say before each call, the changes
//! each plugin made, its log lines (into tocsin's log at their own levels), and its failures.

use std::time::Duration;

use crate::domain::alert::Alert;
use crate::domain::breaker::Admit;
use crate::domain::decision::{self, PluginDecision};
use crate::domain::plugin::{self as verdicts, FailureKind, PluginFailure, Verdict};
use crate::domain::time::Timestamp;

use super::{LogLine, PluginClock, Registry};

/// The `RUST_LOG` target of plugins' own log lines (`RUST_LOG=info,tocsin::plugin::log=debug` shows
/// their debug lines too).
pub const LOG_TARGET: &str = "tocsin::plugin::log";

/// A plugin's log lines written to tocsin's log per call at most; the rest are counted in one line.
/// Why: a plugin logging on every alert must not flood the log (the host keeps 32 lines per call).
pub const MAX_LOGGED_PER_CALL: usize = 8;

/// A plugin's log lines written to tocsin's log per second (of the processor's clock) at most, across
/// calls; the lines past it are counted, and the count is written before the plugin's next line
/// written in a later second. Why: a plugin that logs on every alert (a router finding no room, say)
/// wrote a line per alert in a storm: as many lines a second as alerts, and, applying new alerts
/// with the example plugins, half the plugin thread's time (perf).
pub const MAX_LOGGED_PER_SECOND: u32 = 20;

/// A plugin's log lines written in the current second, and those held back since its last report.
/// A fixed window rather than a `ratelimit::Limiter`: it counts on the processor's clock, the `now`
/// a chain runs at, which chain tests fix, where the limiter reads a clock of its own.
#[derive(Debug, Default)]
pub struct LogBudget {
    second: i64,
    written: u32,
    held_back: u64,
}

impl LogBudget {
    /// Whether a line at `now` may be written, and how many were held back before it and not
    /// reported yet (reported, that is, by this answer: write that count first).
    fn admit(&mut self, now: Timestamp) -> (bool, u64) {
        let second = now.as_millis().div_euclid(1000);
        let mut report = 0;
        if second != self.second {
            self.second = second;
            self.written = 0;
            report = std::mem::take(&mut self.held_back);
        }
        if self.written < MAX_LOGGED_PER_SECOND {
            self.written += 1;
            (true, report)
        } else {
            self.held_back += 1;
            (false, report)
        }
    }
}

/// A plugin's last log lines attached to its `plugin_failed` entry.
pub const LOGS_ON_FAILURE: usize = 10;

/// What running a chain did to one alert.
#[derive(Debug, Clone, Default)]
pub struct ChainResult {
    pub failures: Vec<PluginFailure>,
    pub dropped: Option<verdicts::DropInfo>,
    /// What the plugins changed, change by change, in chain order.
    pub decisions: Vec<PluginDecision>,
    /// Plugins this alert's failure switched off, with the failure.
    pub disabled: Vec<(String, String)>,
    /// (plugin, outcome, elapsed) per call, for metrics.
    pub calls: Vec<(String, &'static str, Duration)>,
}

/// The breaker's key of an alert for one plugin: its ticket key as the plugin sees it.
fn breaker_key(alert: &Alert) -> String {
    format!("{}/{}", alert.source, alert.fingerprint)
}

impl Registry {
    /// Runs the source's chain on `alert`, changing it in place, at the system clock's now. Blocking.
    pub fn run(&self, alert: &mut Alert, id: &str) -> ChainResult {
        let now = Timestamp::from_millis(PluginClock::System.now_ms() as i64);
        self.run_at(alert, id, now, PluginClock::System)
    }

    /// [`Registry::run`] at `now` (the processor's clock, which decides when a skipped key is tried
    /// again), with plugins reading `clock` (`now-ms`, and their kv entries' expiry): the system
    /// clock in the server, where kv state is kept by the real time; a case's fixed time in chain
    /// tests.
    pub fn run_at(
        &self,
        alert: &mut Alert,
        id: &str,
        now: Timestamp,
        clock: PluginClock,
    ) -> ChainResult {
        let mut out = ChainResult::default();
        let Some(chain) = self.chains.get(&alert.source) else {
            return out;
        };
        let kind = self.kinds.get(&alert.source).map_or("", String::as_str);
        for name in chain {
            let Some(plugin) = self.plugins.get(name) else {
                continue;
            };
            let key = breaker_key(alert);
            let admit = plugin.breaker().admit(&key, now);
            match admit {
                Admit::Run => {}
                Admit::Disabled => {
                    out.failures.push(failure(
                        name,
                        FailureKind::Disabled,
                        "switched off after repeated failures; reload to switch it on".into(),
                        &[],
                    ));
                    out.calls.push((name.clone(), "disabled", Duration::ZERO));
                    continue;
                }
                Admit::Skip { until, failures } => {
                    out.failures.push(failure(
                        name,
                        FailureKind::Skipped,
                        format!(
                            "skipped: it failed {failures} times in a row on alerts with this key; \
                             it tries again after {}",
                            until.to_rfc3339()
                        ),
                        &[],
                    ));
                    out.calls.push((name.clone(), "skipped", Duration::ZERO));
                    continue;
                }
            }
            let report = plugin.call(alert, kind, id, clock);
            // The budget's lock only for calls that logged (most log nothing).
            if !report.logs.is_empty() {
                log_lines(name, alert, id, &report.logs, &mut plugin.log_budget(), now);
            }
            match report.result {
                Ok(verdict) => {
                    plugin.breaker().record(&key, true, now, plugin.policy);
                    let outcome = match &verdict {
                        Verdict::Pass => "pass",
                        Verdict::Drop(_) => "drop",
                        Verdict::Route(_) => "route",
                    };
                    out.calls.push((name.clone(), outcome, report.elapsed));
                    // The alert before a route, without its raw JSON (it can be large, and no
                    // plugin changes it), to tell what the plugin changed.
                    let before = matches!(verdict, Verdict::Route(_)).then(|| {
                        let raw = alert.raw.take();
                        let before = alert.clone();
                        alert.raw = raw;
                        before
                    });
                    if let Some(reason) = verdicts::apply(alert, &verdict) {
                        out.dropped = Some(verdicts::DropInfo {
                            plugin: name.clone(),
                            reason,
                        });
                        return out;
                    }
                    if let Some(before) = before {
                        out.decisions
                            .extend(decision::changes(name, &before, alert));
                    }
                }
                Err((kind, message)) => {
                    let tripped = plugin.breaker().record(&key, false, now, plugin.policy);
                    tracing::warn!(plugin = %name, source = %alert.source, fingerprint = %alert.fingerprint,
                        journal_id = id, kind = kind.as_str(), %message, "Plugin failed; going on without it.");
                    out.calls
                        .push((name.clone(), kind.as_str(), report.elapsed));
                    if tripped.disabled {
                        out.disabled.push((name.clone(), message.clone()));
                    }
                    out.failures
                        .push(failure(name, kind, message, &report.logs));
                    if let Some(until) = tripped.key_until {
                        let n = plugin.policy.key_after;
                        tracing::warn!(plugin = %name, source = %alert.source, fingerprint = %alert.fingerprint,
                            until = %until.to_rfc3339(), "Plugin failed {n} times in a row on this alert key; skipping it for a while.");
                        out.failures.push(failure(
                            name,
                            FailureKind::BreakerOpen,
                            format!(
                                "it failed {n} times in a row on alerts with this key, so it skips \
                                 them until {} (other alerts still go through it)",
                                until.to_rfc3339()
                            ),
                            &[],
                        ));
                    }
                }
            }
        }
        out
    }
}

fn failure(plugin: &str, kind: FailureKind, message: String, logs: &[LogLine]) -> PluginFailure {
    let from = logs.len().saturating_sub(LOGS_ON_FAILURE);
    PluginFailure {
        plugin: plugin.to_string(),
        kind,
        message,
        logs: logs[from..]
            .iter()
            .map(|l| format!("{}: {}", l.level, l.message))
            .collect(),
    }
}

/// Writes a call's log lines to tocsin's log at their own levels, tagged with the plugin, the alert's
/// source and fingerprint and its journal id; at most [`MAX_LOGGED_PER_CALL`] of them, and only
/// those within the plugin's `budget` at `now`.
fn log_lines(
    name: &str,
    alert: &Alert,
    id: &str,
    logs: &[LogLine],
    budget: &mut LogBudget,
    now: Timestamp,
) {
    let (source, fp) = (alert.source.as_str(), alert.fingerprint.as_str());
    let mut admit = || {
        let (ok, held_back) = budget.admit(now);
        if held_back > 0 {
            tracing::warn!(
                target: LOG_TARGET,
                plugin = name,
                "{held_back} log lines from this plugin were not written (at most {MAX_LOGGED_PER_SECOND} a second)."
            );
        }
        ok
    };
    for line in logs.iter().take(MAX_LOGGED_PER_CALL) {
        // Lines the log leaves out at its level cost nothing of the budget.
        let shown = match line.level {
            "error" => tracing::enabled!(target: LOG_TARGET, tracing::Level::ERROR),
            "warn" => tracing::enabled!(target: LOG_TARGET, tracing::Level::WARN),
            "info" => tracing::enabled!(target: LOG_TARGET, tracing::Level::INFO),
            _ => tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG),
        };
        if !shown || !admit() {
            continue;
        }
        let m = line.message.as_str();
        match line.level {
            "error" => {
                tracing::error!(target: LOG_TARGET, plugin = name, source, fingerprint = fp, journal_id = id, "{m}")
            }
            "warn" => {
                tracing::warn!(target: LOG_TARGET, plugin = name, source, fingerprint = fp, journal_id = id, "{m}")
            }
            "info" => {
                tracing::info!(target: LOG_TARGET, plugin = name, source, fingerprint = fp, journal_id = id, "{m}")
            }
            _ => {
                tracing::debug!(target: LOG_TARGET, plugin = name, source, fingerprint = fp, journal_id = id, "{m}")
            }
        }
    }
    if logs.len() > MAX_LOGGED_PER_CALL && admit() {
        tracing::warn!(
            target: LOG_TARGET,
            plugin = name,
            source,
            fingerprint = fp,
            journal_id = id,
            "{} more log lines from this call not written (at most {MAX_LOGGED_PER_CALL} per alert).",
            logs.len() - MAX_LOGGED_PER_CALL
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Writes each formatted log line into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A subscriber writing formatted lines up to `level` into the returned buffer.
    fn capture(level: tracing::Level) -> (Buffer, impl tracing::Subscriber) {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(level)
            .finish();
        (buf, subscriber)
    }

    fn alert() -> Alert {
        let mut a: Alert = serde_json::from_value(serde_json::json!({
            "source": "hooks", "fingerprint": "fp1", "status": "firing", "title": "t",
            "severity": "warning", "labels": {}, "annotations": {}, "received_at": "2026-11-22T12:00:00Z"
        }))
        .unwrap();
        a.raw = None;
        a
    }

    #[test]
    fn plugin_lines_are_logged_at_their_level_tagged_and_capped() {
        let (buf, subscriber) = capture(tracing::Level::DEBUG);
        let line = |level, message: &str| LogLine {
            level,
            message: message.to_string(),
        };
        let mut logs = vec![
            line("error", "boom"),
            line("warn", "careful"),
            line("info", "fyi"),
            line("debug", "details"),
        ];
        logs.extend((0..10).map(|i| line("info", &format!("spam {i}"))));
        tracing::subscriber::with_default(subscriber, || {
            log_lines(
                "router",
                &alert(),
                "42",
                &logs,
                &mut LogBudget::default(),
                Timestamp::from_millis(0),
            )
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), MAX_LOGGED_PER_CALL + 1, "{out}");
        for (level, text) in [
            ("ERROR", "boom"),
            ("WARN", "careful"),
            ("INFO", "fyi"),
            ("DEBUG", "details"),
        ] {
            let l = lines.iter().find(|l| l.contains(text)).unwrap();
            assert!(l.contains(level) && l.contains(LOG_TARGET), "{l}");
            assert!(
                l.contains("plugin=\"router\"") || l.contains("plugin=router"),
                "{l}"
            );
            assert!(
                l.contains("fp1") && l.contains("hooks") && l.contains("42"),
                "{l}"
            );
        }
        assert!(!out.contains("spam 9"), "{out}");
        assert!(
            lines[MAX_LOGGED_PER_CALL].contains("6 more log lines"),
            "{out}"
        );
    }

    #[test]
    fn a_plugin_logging_on_every_alert_writes_its_budget_a_second_then_a_count() {
        let (buf, subscriber) = capture(tracing::Level::INFO);
        let logs = |text: &str| {
            vec![
                LogLine {
                    level: "debug",
                    message: "not shown at info".into(),
                },
                LogLine {
                    level: "warn",
                    message: text.into(),
                },
            ]
        };
        let mut budget = LogBudget::default();
        let start = Timestamp::from_millis(1_700_000_000_000);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..MAX_LOGGED_PER_SECOND + 10 {
                let at = Timestamp::from_millis(start.as_millis() + i64::from(i));
                log_lines(
                    "router",
                    &alert(),
                    "42",
                    &logs(&format!("no room {i}")),
                    &mut budget,
                    at,
                );
            }
            let next_second = Timestamp::from_millis(start.as_millis() + 1_000);
            log_lines(
                "router",
                &alert(),
                "43",
                &logs("no room later"),
                &mut budget,
                next_second,
            );
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), MAX_LOGGED_PER_SECOND as usize + 2, "{out}");
        assert!(
            lines[MAX_LOGGED_PER_SECOND as usize - 1].contains("no room 19"),
            "{out}"
        );
        assert!(
            !out.contains("no room 20") && !out.contains("not shown"),
            "{out}"
        );
        let count = lines[MAX_LOGGED_PER_SECOND as usize];
        assert!(
            count.contains("WARN")
                && count.contains("10 log lines from this plugin were not written"),
            "{count}"
        );
        assert!(
            lines[MAX_LOGGED_PER_SECOND as usize + 1].contains("no room later"),
            "{out}"
        );
    }
}
