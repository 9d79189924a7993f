//! Plugin cost benchmark: `cargo bench --bench plugin` (after `scripts/build-plugins`).
//!
//! Calls the example plugins through tocsin's host exactly as the processor does (warm instance, fuel,
//! deadline and memory limits on) on a realistic alert, 100,000 times each, and prints the median, p99
//! and mean time per call, and fuel per call. `BENCH_CALLS` changes the count.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tocsin::domain::alert::{Alert, Labels, Severity, Status};
use tocsin::domain::time::Timestamp;
use tocsin::plugin::{Engine, Kv, PluginClock, Settings};

fn main() {
    let calls: usize = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let root = env!("CARGO_MANIFEST_DIR");
    let engine = Engine::new(None).unwrap();
    let alert = Alert {
        source: "prom".into(),
        fingerprint: "9e0993c793b95973".into(),
        status: Status::Firing,
        title: "Disk full on checkout-db".into(),
        severity: Severity::Critical,
        labels: Labels::from([
            ("alertname".to_string(), "DiskFull".to_string()),
            ("service".to_string(), "checkout".to_string()),
            ("team".to_string(), "payments".to_string()),
            ("severity".to_string(), "critical".to_string()),
            ("instance".to_string(), "db-7:9100".to_string()),
        ]),
        annotations: Labels::from([(
            "summary".to_string(),
            "Disk full on checkout-db".to_string(),
        )]),
        description: None,
        url: Some("http://prom.example:9090/graph".into()),
        starts_at: Some(Timestamp::from_millis(1_790_000_000_000)),
        ends_at: Some(Timestamp::from_millis(1_790_000_240_000)),
        received_at: Timestamp::from_millis(1_790_000_000_000),
        routing: Default::default(),
        raw: None,
    };
    let table = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let cases: Vec<(&str, Settings)> = vec![
        (
            "severity-router",
            Settings {
                config: table(&[("default_room", "ops")]),
                tables: [
                    (
                        "team_rooms".to_string(),
                        table(&[("payments", "payments-oncall")]),
                    ),
                    ("oncall".to_string(), table(&[("payments", "alice")])),
                ]
                .into(),
                disable_after: u32::MAX,
                ..Settings::default()
            },
        ),
        (
            "enrich",
            Settings {
                tables: [
                    ("owners".to_string(), table(&[("checkout", "payments")])),
                    (
                        "runbooks".to_string(),
                        table(&[("DiskFull", "https://runbooks.example/disk")]),
                    ),
                ]
                .into(),
                disable_after: u32::MAX,
                ..Settings::default()
            },
        ),
        (
            "suppress-noise",
            Settings {
                config: table(&[
                    ("drop", "alertname=\"Watchdog\"; env=~\"dev|test\""),
                    ("hold_for", "0"),
                ]),
                disable_after: u32::MAX,
                ..Settings::default()
            },
        ),
    ];
    println!("tocsin plugin bench: {calls} calls per plugin on a warm instance, limits on");
    for (name, settings) in cases {
        let path = format!("{root}/plugins/dist/{name}.wasm");
        let compiled = engine
            .compile(std::path::Path::new(&path))
            .expect("run scripts/build-plugins first");
        let plugin = compiled.plugin(name, settings, Arc::new(Mutex::new(Kv::default())));
        let mut times = Vec::with_capacity(calls);
        let mut fuel = 0;
        // Warm-up: instantiate and fault in memory.
        for _ in 0..1000 {
            plugin.call(&alert, "prometheus", "1", PluginClock::System);
        }
        for i in 0..calls {
            let t = Instant::now();
            let r = plugin.call(&alert, "prometheus", &i.to_string(), PluginClock::System);
            times.push(t.elapsed());
            assert!(r.result.is_ok(), "{name}: {:?}", r.result);
            fuel = r.fuel_used;
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / calls as u32;
        println!(
            "{name:>16}: median {:>5.1} µs  p99 {:>5.1} µs  mean {:>5.1} µs  fuel {fuel}/call",
            times[calls / 2].as_secs_f64() * 1e6,
            times[calls * 99 / 100].as_secs_f64() * 1e6,
            mean.as_secs_f64() * 1e6,
        );
    }
}
