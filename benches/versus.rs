//! tocsin against Prometheus Alertmanager, side by side: `cargo bench --bench versus`.
//!
//! Alertmanager is what most people would run instead of tocsin (or in front of it), so this bench
//! gives both the same load from the same generator (reqwest in this process, on a runtime of its own)
//! and prints one table with ratios. Alertmanager is Debian 12's real 0.25 package, installed by
//! `scripts/fetch-monitoring.sh` (the bench runs it; cheap when already installed) and started as the
//! tests start it: its own storage dir, a free loopback port, clustering off. The three example plugins
//! are built by `scripts/build-plugins --rust-only` when `plugins/dist` lacks them.
//!
//! Every alert is Prometheus-shaped (labels alertname/instance/job/severity, annotations, `startsAt` an
//! hour ago, `endsAt` a day ahead, `generatorURL`) and posted to `/api/v2/alerts`, which both servers
//! take. The figures:
//!
//! 1. **Batched ingest, accepted alerts/s**: batches of 100 distinct alerts (every batch new label
//!    values), 8 connections, for `BENCH_SECONDS`. Against a null server (this process answers 200
//!    once it has read the body: the generator's own ceiling), Alertmanager (routing to a receiver
//!    without integrations) and tocsin (a `prometheus` source, no rooms) on a fresh store.
//! 2. **New alerts applied to tickets, alerts/s** (tocsin): `BENCH_ALERTS` new alerts posted as in 1 on
//!    a fresh store, timed from the first request until the journal is drained (the
//!    `tocsin_journal_backlog` gauge reads 0); without plugins, then with the example chain
//!    suppress-noise → enrich → severity-router configured as in `config/tocsin.yaml` (the router's
//!    rooms declared, no default room: these alerts name no team, so it routes them nowhere). The table
//!    divides them by Alertmanager's batched ingest, which is all Alertmanager does with an alert.
//! 3. **Resends applied, alerts/s**: the same alerts posted again (as Prometheus resends them every
//!    evaluation: same labels and `startsAt`, still firing), until drained again. Alertmanager's figure
//!    is its ingest rate of the same resends.
//! 4. **Alert → webhook latency, p50 / p99 ms**: one alert per request at 100/s, then 1,000/s, for
//!    `BENCH_LATENCY_SECONDS`, to a server whose only receiver is a webhook to this process: tocsin with
//!    one unthrottled, undigested webhook room routed everything; Alertmanager with every alert in a
//!    group of its own (`group_by: ['...']`, `group_wait: 0s`). Latency is the arrival at the receiver
//!    minus the start of the alert's request; alerts not arrived 10 s after the last send are counted.
//! 5. **Memory, MiB RSS per 100,000 alerts held**: `VmRSS` once the `BENCH_ALERTS` alerts of 2 are held
//!    (drained, for tocsin) minus `VmRSS` idle right after start, scaled to 100,000 alerts. Alertmanager
//!    gets the same post of `BENCH_ALERTS` alerts (which also gives its resend figure of 3).
//!
//! tocsin runs on every backend of `benches/support/storage.rs` (`BENCH_STORAGE`; by default SQLite and
//! the local PostgreSQL when it answers), a fresh store per measurement.
//!
//! Knobs: `BENCH_ONLY` (a comma-separated list of `ingest` (figure 1), `applied` (2, 3 and 5) and
//! `latency` (4): only these are measured, for both servers; all by default), `BENCH_RUNS` (3; the table shows the median of the runs, the missing-webhook row the worst
//! run, and each run's figures are printed as they come), `BENCH_SECONDS` (15), `BENCH_ALERTS`
//! (100000), `BENCH_LATENCY_SECONDS` (10), `BENCH_CONNECTIONS` (8). Everything shares the machine's
//! cores: the generator, the receiver, the server under test and PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;

#[path = "support/alertmanager.rs"]
mod alertmanager;
#[path = "support/load.rs"]
mod load;
#[path = "support/server.rs"]
mod server;
#[allow(dead_code)] // the table printer and `wait_applied` are for the other benches
#[path = "support/storage.rs"]
mod storage;
#[path = "support/versus_table.rs"]
mod versus_table;

use alertmanager::Alertmanager;
use load::{Batches, Blast, Load, Times};
use storage::Backend;
use versus_table::{Fig, Figures, AM, NULL};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");
/// The example plugins of `config/tocsin.yaml`, in its chain order.
const PLUGINS: [&str; 3] = ["suppress-noise", "enrich", "severity-router"];
/// What `BENCH_ONLY` can name.
const PARTS: [&str; 3] = ["ingest", "applied", "latency"];
/// How long the latency figures wait for stragglers after the last send.
const STRAGGLERS: Duration = Duration::from_secs(10);

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The knobs, and what every measurement shares.
struct Bench {
    /// `BENCH_ONLY`: the parts measured.
    parts: Vec<String>,
    seconds: Duration,
    alerts: usize,
    latency_seconds: usize,
    connections: usize,
    times: Times,
    batches: Arc<Batches>,
    /// The `BENCH_ALERTS` alerts of figures 2, 3 and 5, serialized ahead.
    bodies: Arc<Vec<Bytes>>,
    client: reqwest::Client,
    launcher: PathBuf,
    null_addr: String,
    /// Compiled plugins, kept across runs so only the first start compiles them.
    plugin_cache: tempfile::TempDir,
}

fn main() {
    let runs = env_or("BENCH_RUNS", 3).max(1);
    let connections = env_or("BENCH_CONNECTIONS", 8);
    let alerts = env_or("BENCH_ALERTS", 100_000).max(load::BATCH);
    let launcher = alertmanager::install();
    ensure_plugins();
    print_machine(&launcher);
    let backends = storage::backends();
    let times = Times::now();
    let batches = Arc::new(Batches::new(&times));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let parts = std::env::var("BENCH_ONLY").unwrap_or_else(|_| PARTS.join(","));
    let parts: Vec<String> = parts.split(',').map(|p| p.trim().to_owned()).collect();
    if let Some(bad) = parts.iter().find(|p| !PARTS.contains(&p.as_str())) {
        panic!(
            "BENCH_ONLY: unknown part {bad:?}; the parts are {}",
            PARTS.join(", ")
        );
    }
    let bench = Bench {
        parts,
        seconds: Duration::from_secs(env_or("BENCH_SECONDS", 15) as u64),
        alerts: alerts / load::BATCH * load::BATCH,
        latency_seconds: env_or("BENCH_LATENCY_SECONDS", 10),
        connections,
        bodies: batches.bodies(alerts / load::BATCH),
        batches,
        times,
        client: runtime.block_on(async { load::client(connections) }),
        launcher,
        null_addr: load::null_server(),
        plugin_cache: tempfile::tempdir().unwrap(),
    };
    println!(
        "versus: {runs} run(s) of {}; ingest {} s, {} alerts for applied/resends/memory, latency {} s per rate, \
         {connections} connections, batches of {}; tocsin on {}",
        bench.parts.join(", "),
        bench.seconds.as_secs(),
        bench.alerts,
        bench.latency_seconds,
        load::BATCH,
        backends.iter().map(Backend::label).collect::<Vec<_>>().join(", ")
    );
    let mut all = Figures::default();
    for run in 1..=runs {
        println!("\n=== run {run} of {runs} ===");
        let figures = runtime.block_on(run_once(&bench, &backends));
        if runs > 1 {
            versus_table::print(&format!("run {run}"), &figures, &backends, &bench);
        }
        all.merge(figures);
    }
    versus_table::print(
        &format!("versus, median of {runs} run(s) (missing webhooks: the worst run)"),
        &all,
        &backends,
        &bench,
    );
}

/// Every figure once: the null server, Alertmanager, then tocsin on each backend.
async fn run_once(bench: &Bench, backends: &[Backend]) -> Figures {
    let mut f = Figures::default();
    let part = |name: &str| bench.parts.iter().any(|p| p == name);
    if part("ingest") {
        let read_before = load::NULL_READ.load(Ordering::Relaxed);
        let ingest = blast_for(bench, &bench.null_addr).await;
        f.add(
            Fig::Ingest,
            NULL,
            report("null server: batched ingest", &ingest),
        );
        let read = load::NULL_READ.load(Ordering::Relaxed) - read_before;
        println!(
            "null server: read {:.0} MB of bodies, {:.0} bytes per alert",
            read as f64 / 1e6,
            read as f64 / ingest.accepted.max(1) as f64
        );
        let am = Alertmanager::start(&bench.launcher, &alertmanager::config_null()).await;
        let ingest = blast_for(bench, &am.addr).await;
        f.add(
            Fig::Ingest,
            AM,
            report("Alertmanager: batched ingest", &ingest),
        );
    }
    if part("applied") {
        am_held(bench, &mut f).await;
    }
    if part("latency") {
        for rate in [100, 1000] {
            let (url, arrivals) = load::receiver().await;
            let am =
                Alertmanager::start(&bench.launcher, &alertmanager::config_webhook(&url)).await;
            let label = format!("Alertmanager: alert → webhook at {rate}/s");
            latency(bench, &mut f, AM, &label, &am.addr, rate, &arrivals).await;
        }
    }

    for backend in backends {
        let col = backend.label();
        let kind = |what: &str| format!("tocsin {col}: {what}");
        if part("ingest") {
            let tocsin = Tocsin::start(bench, backend, Setup::Plain);
            let ingest = blast_for(bench, &tocsin.addr).await;
            f.add(Fig::Ingest, &col, report(&kind("batched ingest"), &ingest));
        }
        if part("applied") {
            tocsin_applied(bench, backend, &mut f, false).await;
            tocsin_applied(bench, backend, &mut f, true).await;
        }
        if part("latency") {
            for rate in [100, 1000] {
                let (url, arrivals) = load::receiver().await;
                let tocsin = Tocsin::start(bench, backend, Setup::Webhook(url));
                let label = kind(&format!("alert → webhook at {rate}/s"));
                latency(bench, &mut f, &col, &label, &tocsin.addr, rate, &arrivals).await;
                stages(&bench.client, &tocsin.addr, &label).await;
            }
        }
    }
    f
}

/// Where tocsin's latency went, from its own histograms: the mean time from the alert's request to
/// its 2xx, and from its receipt (a millisecond timestamp) to its ticket applied and to its webhook
/// sent (a delivery's time is its alert's).
async fn stages(client: &reqwest::Client, addr: &str, label: &str) {
    let mut means = Vec::new();
    for (stage, series) in [
        ("request to 2xx", "tocsin_ingest_duration_seconds"),
        ("received to applied", "tocsin_processing_duration_seconds"),
        ("received to sent", "tocsin_delivery_latency_seconds"),
    ] {
        let sum = metric_sum(client, addr, &format!("{series}_sum")).await;
        let count = metric_sum(client, addr, &format!("{series}_count")).await;
        means.push(format!("{stage} {:.2} ms", sum / count.max(1.0) * 1e3));
    }
    println!("{label}: stage means: {}", means.join(", "));
}

/// Figure 1 against the server at `addr`.
async fn blast_for(bench: &Bench, addr: &str) -> Blast {
    let url = format!("http://{addr}/api/v2/alerts");
    let load = Load::For(bench.batches.clone(), bench.seconds);
    load::blast(&bench.client, &url, bench.connections, load).await
}

/// Prints a blast's outcome; returns its accepted alerts/s.
fn report(what: &str, blast: &Blast) -> f64 {
    let failed = if blast.failed > 0 {
        format!(", {} requests FAILED", blast.failed)
    } else {
        String::new()
    };
    println!(
        "{what}: {} alerts in {:.1} s = {:.0} alerts/s{failed}",
        blast.accepted,
        blast.elapsed.as_secs_f64(),
        blast.rate()
    );
    blast.rate()
}

/// Figures 3 and 5 for Alertmanager: `BENCH_ALERTS` new alerts, memory, then the same again.
async fn am_held(bench: &Bench, f: &mut Figures) {
    let am = Alertmanager::start(&bench.launcher, &alertmanager::config_null()).await;
    let url = format!("http://{}/api/v2/alerts", am.addr);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = load::rss_mib(am.pid());
    let new = load::blast(
        &bench.client,
        &url,
        bench.connections,
        Load::Fixed(bench.bodies.clone()),
    )
    .await;
    report("Alertmanager: new alerts", &new);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = load::rss_mib(am.pid());
    f.add(Fig::Rss, AM, per_100k(bench, "Alertmanager", idle, held));
    // Alerts not yet through a notification flush count as `unprocessed`: held all the same.
    let count = metric_sum(&bench.client, &am.addr, "alertmanager_alerts{").await;
    println!("Alertmanager: {count} alerts held (active, suppressed or unprocessed)");
    let resent = load::blast(
        &bench.client,
        &url,
        bench.connections,
        Load::Fixed(bench.bodies.clone()),
    )
    .await;
    f.add(Fig::Resends, AM, report("Alertmanager: resends", &resent));
}

/// Figure 2 on a fresh store (with the example plugins or without); without, figures 3 and 5 too.
async fn tocsin_applied(bench: &Bench, backend: &Backend, f: &mut Figures, plugins: bool) {
    let col = backend.label();
    let setup = if plugins {
        Setup::Plugins
    } else {
        Setup::Plain
    };
    let tocsin = Tocsin::start(bench, backend, setup);
    let url = format!("http://{}/api/v2/alerts", tocsin.addr);
    let chain = if plugins { " with 3 plugins" } else { "" };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = load::rss_mib(tocsin.pid());

    let (accepted, secs) = post_and_drain(
        bench,
        &url,
        &tocsin.addr,
        &format!("tocsin {col}: new alerts{chain}"),
    )
    .await;
    let applied = accepted as f64 / secs;
    let open = metric_sum(
        &bench.client,
        &tocsin.addr,
        "tocsin_tickets{state=\"open\"}",
    )
    .await;
    println!(
        "tocsin {col}: new alerts{chain} applied: {accepted} alerts in {secs:.1} s = {applied:.0} alerts/s ({open} open tickets)",
    );
    if plugins {
        f.add(Fig::AppliedPlugins, &col, applied);
        return;
    }
    f.add(Fig::Applied, &col, applied);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = load::rss_mib(tocsin.pid());
    f.add(
        Fig::Rss,
        &col,
        per_100k(bench, &format!("tocsin {col}"), idle, held),
    );

    let (accepted, secs) =
        post_and_drain(bench, &url, &tocsin.addr, &format!("tocsin {col}: resends")).await;
    let rate = accepted as f64 / secs;
    println!(
        "tocsin {col}: resends applied: {accepted} alerts in {secs:.1} s = {rate:.0} alerts/s"
    );
    f.add(Fig::Resends, &col, rate);
}

/// Posts the bench's alerts to tocsin at `addr` as in figure 1, then waits until its journal is
/// drained. Returns how many were accepted and the seconds from the first request until drained.
async fn post_and_drain(bench: &Bench, url: &str, addr: &str, what: &str) -> (u64, f64) {
    let started = Instant::now();
    let posted = load::blast(
        &bench.client,
        url,
        bench.connections,
        Load::Fixed(bench.bodies.clone()),
    )
    .await;
    report(&format!("{what}, accepted"), &posted);
    drain(&bench.client, addr).await;
    (posted.accepted, started.elapsed().as_secs_f64())
}

/// Prints the memory figure and returns it: MiB per 100,000 alerts held.
fn per_100k(bench: &Bench, who: &str, idle: f64, held: f64) -> f64 {
    let per = (held - idle) * 100_000.0 / bench.alerts as f64;
    println!(
        "{who}: RSS {idle:.1} MiB idle, {held:.1} MiB holding {} alerts = {per:.1} MiB per 100,000",
        bench.alerts
    );
    per
}

/// Figure 4 against the server at `addr`, whose webhook goes to the receiver recording `arrivals`.
async fn latency(
    bench: &Bench,
    f: &mut Figures,
    col: &str,
    label: &str,
    addr: &str,
    rate: usize,
    arrivals: &load::Arrivals,
) {
    let total = rate * bench.latency_seconds;
    let instance = |i: usize| format!("lat{rate}-{i}");
    let bodies: Vec<Bytes> = (0..total)
        .map(|i| {
            let alerts = [load::alert(&bench.times, &instance(i))];
            Bytes::from(serde_json::to_vec(&alerts).unwrap())
        })
        .collect();
    let url = format!("http://{addr}/api/v2/alerts");
    let starts = load::paced(&bench.client, &url, rate, bodies).await;
    let failed = starts.iter().filter(|s| s.is_none()).count();
    let expected = total - failed;
    let deadline = Instant::now() + STRAGGLERS;
    while arrivals.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrivals = arrivals.lock().unwrap();
    let mut latencies: Vec<Duration> = starts
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some(arrivals.get(&instance(i))?.saturating_duration_since((*s)?)))
        .collect();
    latencies.sort();
    let missing = total - latencies.len();
    let (p50, p99) = (
        load::percentile_ms(&latencies, 0.50),
        load::percentile_ms(&latencies, 0.99),
    );
    let max = latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "{label}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.1} ms; {missing} of {total} never arrived{}",
        if failed > 0 { format!(" ({failed} requests FAILED)") } else { String::new() }
    );
    let (p50_fig, p99_fig, missing_fig) = if rate == 100 {
        (Fig::P50At100, Fig::P99At100, Fig::MissingAt100)
    } else {
        (Fig::P50At1000, Fig::P99At1000, Fig::MissingAt1000)
    };
    f.add(p50_fig, col, p50);
    f.add(p99_fig, col, p99);
    f.add(missing_fig, col, missing as f64);
}

/// Waits until tocsin has applied every accepted alert. Polled every 200 ms, as
/// `storage::wait_applied` does: each poll is a query on the store, which competes with the processor.
async fn drain(client: &reqwest::Client, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while storage::journal_backlog(client, addr).await != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the journal did not drain in an hour"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sum of the `/metrics` lines starting with `series` (0 when there are none).
async fn metric_sum(client: &reqwest::Client, addr: &str, series: &str) -> f64 {
    let text = match client.get(format!("http://{addr}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// What a tocsin instance is configured for.
enum Setup {
    /// A `prometheus` source and nothing else.
    Plain,
    /// The same with the three example plugins chained on it.
    Plugins,
    /// The same with one webhook room, routed everything, at this URL.
    Webhook(String),
}

/// A release tocsin on a fresh store; killed, then its store dropped, when dropped.
struct Tocsin {
    child: Child,
    addr: String,
    // Dropped in this order, after the child is dead: the database, then the temp dir.
    _store: storage::Fresh,
    _dir: tempfile::TempDir,
}

impl Tocsin {
    fn start(bench: &Bench, backend: &Backend, setup: Setup) -> Tocsin {
        let dir = tempfile::tempdir().unwrap();
        let store = backend.fresh(dir.path());
        let (chain, extra) = match setup {
            Setup::Plain => (String::new(), String::new()),
            Setup::Plugins => (
                ", plugins: [suppress, enrich, route]".into(),
                // As `config/tocsin.yaml` with the route plugin enabled and every room it names
                // declared (a manifest's `type: room` refuses an undeclared one at start). No default
                // room: the bench's alerts carry no `team` label, so the router lets them pass and
                // nothing is delivered, as in the plain setup; the figure is the chain's cost (the
                // latency figures measure deliveries).
                format!(
                    "plugins:\n  \
                     suppress:\n    path: {dist}/suppress-noise.wasm\n    \
                     config: {{drop: 'alertname=\"Watchdog\"; env=~\"dev|test\"', hold_for: 2m}}\n  \
                     enrich:\n    path: {dist}/enrich.wasm\n    tables:\n      \
                     owners: {{checkout: payments, db: storage, api: platform}}\n      \
                     runbooks: {{DiskFull: \"https://runbooks.example/disk-full\"}}\n  \
                     route:\n    path: {dist}/severity-router.wasm\n    \
                     tables:\n      team_rooms: {{payments: payments-oncall, storage: storage, platform: platform}}\n      \
                     oncall: {{payments: alice, storage: alice, platform: alice}}\n\
                     members:\n  alice: {{}}\n\
                     rooms:\n{rooms}",
                    dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/dist").display(),
                    rooms = ["payments-oncall", "storage", "platform"]
                        .map(|room| format!(
                            "  {room}:\n    sink: {{kind: webhook, url: \"http://127.0.0.1:9/unused\"}}\n"
                        ))
                        .concat(),
                ),
            ),
            Setup::Webhook(url) => (
                String::new(),
                format!(
                    "rooms:\n  bench:\n    sink: {{kind: webhook, url: \"{url}\"}}\n    \
                     rate_limit: {{per_second: 1000000, burst: 1000000}}\n    digest: {{after: 1000h}}\n\
                     routes:\n  - rooms: [bench]\n"
                ),
            ),
        };
        let config = dir.path().join("tocsin.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0\n{storage}plugin_cache: {cache}\n\
                 sources:\n  prom: {{kind: prometheus{chain}}}\n{extra}\
                 ingest: {{max_backlog: 10000000, max_backlog_bytes: 8GiB}}\n\
                 log: {{format: json, level: warn}}\n",
                storage = store.config_line(),
                cache = bench.plugin_cache.path().display(),
            ),
        )
        .unwrap();
        let (child, addr) = server::serve(BIN, &config);
        Tocsin {
            child,
            addr,
            _store: store,
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Tocsin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the example plugins (`scripts/build-plugins --rust-only`) unless all three are there.
fn ensure_plugins() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let missing = PLUGINS
        .iter()
        .any(|p| !repo.join(format!("plugins/dist/{p}.wasm")).exists());
    if missing {
        println!("building the example plugins: scripts/build-plugins --rust-only");
        let status = Command::new(repo.join("scripts/build-plugins"))
            .arg("--rust-only")
            .current_dir(repo)
            .status()
            .expect("run scripts/build-plugins");
        assert!(status.success(), "scripts/build-plugins failed");
    }
}

/// Prints the machine, tocsin's commit and Alertmanager's version.
fn print_machine(launcher: &Path) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let output = |cmd: &mut Command| {
        cmd.output().ok().filter(|o| o.status.success()).map(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
    };
    let commit = output(
        Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    )
    .unwrap_or_else(|| "unknown".into());
    let am = output(Command::new(launcher).arg("--version")).unwrap_or_else(|| "unknown".into());
    println!("machine: {cores} cores, {model}; tocsin commit {commit}; {am}");
}
