//! `tocsin plugin test`: limits from flags, the compile cache, running a folder of fixtures (each
//! case on a fresh instance and, in order, on a warm one, to catch state kept in globals), and
//! `--profile`'s report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::plugin_manifest::{self, Manifest};
use crate::config::{ByteSize, HumanDuration, MAX_PLUGIN_MEMORY};
use crate::plugin::fixtures::{self, Case, WarmRunner};
use crate::plugin::profile::Profile;
use crate::plugin::{CallReport, Compiled, Engine, Limits};

/// Functions `--profile`'s table shows (the rest are summed in one row).
const PROFILE_TOP: usize = 20;

/// A profiled run counts at every function entry and loop header: it gets this many times the
/// wall-clock limit, so the counting does not stop it where a normal run would finish.
const PROFILE_SLOWDOWN: u32 = 100;

/// Flags of `plugin test` beyond the plugin, the input and the limits.
#[derive(Debug, Default, clap::Args)]
pub struct TestOptions {
    /// Keep compiled plugins in DIR between runs, by content hash, as the server does with
    /// `plugin_cache` (default: $XDG_CACHE_HOME/tocsin/plugins, else ~/.cache/tocsin/plugins).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Compile the plugin every time, without the cache.
    #[arg(long, conflicts_with = "cache")]
    pub no_cache: bool,
    /// The plugin's manifest (its config keys, types and defaults); default: the `.yaml` beside the
    /// component, if there is one. Each case's config is checked against it and its defaults are
    /// filled in, as the server does.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// After the usual output, show where the fuel goes, per function: the event (or every case,
    /// summed) is run once more with the profiler on, with 100 times the --timeout. See "Where
    /// does my fuel go?" in plugins/README.md.
    #[arg(long, conflicts_with_all = ["config", "replay"])]
    pub profile: bool,
    /// With --profile: also write the profile as folded stacks (`outer;inner;leaf FUEL` per line),
    /// which flame graph tools read (inferno, flamegraph.pl, speedscope).
    #[arg(long, value_name = "FILE", requires = "profile")]
    pub profile_folded: Option<PathBuf>,
}

/// The manifest a run checks cases against: `--manifest`, else the one beside the component.
pub fn manifest(plugin: &Path, opts: &TestOptions) -> Result<Option<Manifest>, String> {
    match &opts.manifest {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the manifest {}: {e}", file.display()))?;
            plugin_manifest::parse_manifest(&text)
                .map_err(|e| format!("manifest {}: {e}", file.display()))
        }
        None => plugin_manifest::read_manifest(plugin),
    }
}

/// Fits a case's config to the manifest as the server fits `plugins.<name>`: its defaults filled
/// in. Returns what the server would refuse, one line each: notes beside the case's result, not
/// failures, since a case may test how the plugin copes with a config the server would refuse.
pub fn fit(case: &mut Case, manifest: Option<&Manifest>) -> Vec<String> {
    let Some(m) = manifest else {
        return Vec::new();
    };
    let mut config = case
        .config
        .iter()
        .map(|(k, v)| (k.clone(), plugin_manifest::scalar(v)))
        .collect();
    let tables = case
        .tables
        .iter()
        .map(|(t, entries)| {
            let entries = entries
                .iter()
                .map(|(k, v)| (k.clone(), plugin_manifest::scalar(v)));
            (t.clone(), entries.collect())
        })
        .collect();
    let problems = plugin_manifest::fit_case(m, &mut config, &tables);
    case.config = config
        .into_iter()
        .map(|(k, v)| (k, serde_yaml::Value::String(v)))
        .collect();
    problems
        .into_iter()
        .map(|(path, why)| format!("{path}: {why} (the server would refuse this config)"))
        .collect()
}

/// The limits for a run: the defaults, changed by the flags, refused beyond what the config allows.
pub fn limits(
    fuel: Option<u64>,
    timeout: Option<HumanDuration>,
    memory: Option<ByteSize>,
) -> Result<Limits, String> {
    let d = Limits::default();
    if let Some(m) = &memory {
        // The same bounds as `plugins.<name>.limits.memory`: a test that passes only with more
        // memory than the server can give proves nothing.
        if !(1 << 20..=MAX_PLUGIN_MEMORY).contains(&m.0) {
            return Err(format!(
                "--memory {} bytes is outside what tocsin allows a plugin (1 MiB to {} MiB, as \
                 for limits.memory in the config)",
                m.0,
                MAX_PLUGIN_MEMORY >> 20
            ));
        }
    }
    Ok(Limits {
        fuel: fuel.unwrap_or(d.fuel),
        timeout: timeout.map_or(d.timeout, |t| t.0),
        memory: memory.map_or(d.memory, |m| m.0 as usize),
    })
}

/// Where compiled plugins are cached: `--cache`, else the user's cache directory; none with
/// `--no-cache` or when no home is known. `env` reads an environment variable (a parameter so the
/// rule is testable).
pub fn cache_dir(opts: &TestOptions, env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if opts.no_cache {
        return None;
    }
    if let Some(dir) = &opts.cache {
        return Some(dir.clone());
    }
    let base = env("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|d| !d.is_empty())
                .map(|h| Path::new(&h).join(".cache"))
        })?;
    Some(base.join("tocsin").join("plugins"))
}

/// Compiles the plugin, through the cache when there is one.
pub fn compile(plugin: &Path, opts: &TestOptions) -> Result<Compiled, String> {
    let cache = cache_dir(opts, |k| std::env::var(k).ok());
    if let Some(dir) = &cache {
        // wasmtime does not create the directory itself.
        let _ = std::fs::create_dir_all(dir);
    }
    let engine = Engine::new(cache.as_deref()).map_err(|e| e.to_string())?;
    engine.compile(plugin).map_err(|e| e.to_string())
}

/// The cost part of a case's line. Fuel after a trap is only a lower bound (see
/// [`fixtures::fuel_counted`]).
fn cost(report: &CallReport) -> String {
    let fuel = match fixtures::fuel_counted(report) {
        (Some(n), _) => format!("fuel {n}"),
        (None, at_least) => format!("fuel ≥ {} (not counted past a trap)", at_least.unwrap_or(0)),
    };
    format!(
        "{fuel}, memory {} KiB, {} µs",
        report.peak_memory / 1024,
        report.elapsed.as_micros()
    )
}

/// Runs `case` once more with the profiler on (its limits, with [`PROFILE_SLOWDOWN`] times the
/// timeout). Returns the profile, and a note when the profiled run did not end as `normal` did
/// (the same decision or error and the same fuel), which only a deadline should cause.
pub fn profile_case(
    compiled: &Compiled,
    case: &Case,
    limits: Limits,
    normal: &CallReport,
) -> (Profile, Option<String>) {
    let limits = Limits {
        timeout: limits.timeout.saturating_mul(PROFILE_SLOWDOWN),
        ..limits
    };
    let (report, _) = fixtures::run_case_profiled(compiled, case, limits);
    let same = report.result == normal.result && report.fuel_used == normal.fuel_used;
    let note = (!same).then(|| {
        format!(
            "the profiled run ended otherwise: {}, fuel {} (the profile is of that run)",
            fixtures::describe(&report.result),
            report.fuel_used
        )
    });
    (report.profile.unwrap_or_default(), note)
}

/// Prints `--profile`'s table for `profile` (of `what`) and writes its folded stacks if asked.
pub fn print_profile(profile: &Profile, what: &str, opts: &TestOptions) -> Result<(), String> {
    println!();
    println!(
        "Profile of {what}: {} fuel (self: in the function's own code; total: with what it calls)",
        profile.total()
    );
    print!("{}", profile.table(PROFILE_TOP));
    if let Some(file) = &opts.profile_folded {
        std::fs::write(file, profile.folded())
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        println!("Folded stacks written to {}", file.display());
    }
    Ok(())
}

/// Runs every case of the fixtures folder; prints one line per case and the mismatches of the
/// failing ones. Exit 1 if any failed.
pub fn run_fixtures(plugin: &Path, dir: &Path, limits: Limits, opts: &TestOptions) -> ExitCode {
    let compiled = match compile(plugin, opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (cases, manifest) =
        match fixtures::load_cases(dir).and_then(|c| Ok((c, manifest(plugin, opts)?))) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
    let mut warm = WarmRunner::new(&compiled, limits);
    let mut failed = 0;
    let mut profile = Profile::default();
    for (file, case) in &cases {
        let mut case = case.clone();
        let refused = fit(&mut case, manifest.as_ref());
        let case = &case;
        let fresh = fixtures::run_case(&compiled, case, limits);
        let warm_run = warm.run(case);
        let mut profile_note = None;
        if opts.profile {
            let (p, note) = profile_case(&compiled, case, limits, &fresh.0);
            profile.merge(&p);
            profile_note = note;
        }
        let file = file
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
        let mut problems: Vec<String> = fixtures::check(case, &fresh.0, &fresh.1)
            .err()
            .map(|d| d.lines().map(str::to_string).collect())
            .unwrap_or_default();
        if let Some(leak) = fixtures::leak(&fresh, &warm_run) {
            problems.extend(leak.lines().map(str::to_string));
        }
        let cost = cost(&fresh.0);
        if problems.is_empty() {
            println!("ok   {file}: {} ({cost})", case.name);
            for note in refused {
                println!("     note: {note}");
            }
        } else {
            failed += 1;
            println!("FAIL {file}: {} ({cost})", case.name);
            for line in problems {
                println!("     {line}");
            }
            for note in refused {
                println!("     note: {note}");
            }
            for log in &fresh.0.logs {
                println!("     log {}: {}", log.level, log.message);
            }
        }
        if let Some(note) = profile_note {
            println!("     note: {note}");
        }
    }
    println!("{} passed, {failed} failed", cases.len() - failed);
    if opts.profile {
        let what = match cases.len() {
            1 => "1 case".to_string(),
            n => format!("{n} cases, summed"),
        };
        if let Err(e) = print_profile(&profile, &what, opts) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_above_the_configs_cap_is_refused() {
        let too_much = Some(ByteSize(MAX_PLUGIN_MEMORY + 1));
        let e = limits(None, None, too_much).unwrap_err();
        assert!(e.contains("256 MiB"), "{e}");
        assert!(limits(None, None, Some(ByteSize(1024))).is_err());
        let ok = limits(None, None, Some(ByteSize(MAX_PLUGIN_MEMORY))).unwrap();
        assert_eq!(ok.memory as u64, MAX_PLUGIN_MEMORY);
        assert_eq!(limits(None, None, None).unwrap(), Limits::default());
    }

    #[test]
    fn the_cache_defaults_to_the_users_cache_directory() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let default = TestOptions::default();
        assert_eq!(
            cache_dir(&default, env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/tocsin/plugins"))
        );
        assert_eq!(
            cache_dir(&default, env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/tocsin/plugins"))
        );
        assert_eq!(cache_dir(&default, env(&[])), None);
        let given = TestOptions {
            cache: Some("/c".into()),
            ..TestOptions::default()
        };
        assert_eq!(cache_dir(&given, env(&[])), Some(PathBuf::from("/c")));
        let off = TestOptions {
            no_cache: true,
            ..TestOptions::default()
        };
        assert_eq!(cache_dir(&off, env(&[("HOME", "/h")])), None);
    }
}
