//! `tocsin plugin test --profile`: the table names the function that burns the fuel (testdata
//! hot-spot's `burn`), its columns add up to the call's fuel, the folded stacks parse and sum to
//! it too, profiling leaves the decision and fuel of the run as they are, and the Python plugin
//! (an interpreter) profiles as well.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::dist;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

/// One row of the profile table.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    self_fuel: u64,
    self_pct: f64,
    total_fuel: Option<u64>,
    function: String,
}

/// What `--profile` printed after the usual output.
#[derive(Debug)]
struct Printed {
    /// The fuel in the profile's heading.
    total: u64,
    rows: Vec<Row>,
}

impl Printed {
    fn row(&self, function: &str) -> &Row {
        self.rows
            .iter()
            .find(|r| r.function == function)
            .unwrap_or_else(|| panic!("no row for {function}: {self:?}"))
    }
}

/// Reads the profile part of `stdout`: `Profile of WHAT: N fuel (...)`, a header row, then rows
/// `SELF SELF% TOTAL TOTAL%  FUNCTION` and maybe `SELF SELF%  (K more functions)`.
fn printed(stdout: &str) -> Printed {
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with("Profile of "));
    let heading = lines
        .next()
        .unwrap_or_else(|| panic!("no profile:\n{stdout}"));
    let total = heading
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("heading {heading:?}"));
    let header = lines.next().unwrap();
    assert!(
        header.contains("self fuel") && header.ends_with("function"),
        "{header}"
    );
    let mut rows = Vec::new();
    for line in lines.take_while(|l| !l.is_empty() && !l.starts_with("Folded")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let pct = |w: &str| w.trim_end_matches('%').parse::<f64>().unwrap();
        let row = if line.trim_end().ends_with("more functions)") {
            Row {
                self_fuel: words[0].parse().unwrap(),
                self_pct: pct(words[1]),
                total_fuel: None,
                function: words[2..].join(" "),
            }
        } else {
            Row {
                self_fuel: words[0].parse().unwrap(),
                self_pct: pct(words[1]),
                total_fuel: Some(words[2].parse().unwrap()),
                function: words[4..].join(" "),
            }
        };
        rows.push(row);
    }
    Printed { total, rows }
}

/// Runs `plugin test PLUGIN --event E EXTRA...` on the event `json` (with `--no-cache` unless EXTRA
/// gives `--cache`); returns the exit code, the JSON report at the start of stdout and the whole
/// stdout.
fn event(plugin: &str, json: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, json).unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "test", &dist(plugin), "--event"])
        .arg(&ev)
        .args(extra)
        .args(if extra.contains(&"--cache") {
            &[][..]
        } else {
            &["--no-cache"][..]
        })
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| {
            panic!(
                "no JSON report:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (out.status.code(), report, stdout)
}

/// Checks that folded stacks parse (every line `frame;frame;... FUEL`, no empty frame) and
/// returns the fuel per stack.
fn folded(text: &str) -> BTreeMap<Vec<String>, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let (stack, fuel) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let fuel: u64 = fuel.parse().unwrap_or_else(|_| panic!("{line:?}"));
        let frames: Vec<String> = stack.split(';').map(str::to_string).collect();
        assert!(frames.iter().all(|f| !f.is_empty()), "{line:?}");
        assert!(out.insert(frames, fuel).is_none(), "{line:?} twice");
    }
    out
}

fn hot_spot_event(rounds: u32) -> String {
    format!(r#"{{"title": "x", "labels": {{"rounds": "{rounds}"}}}}"#)
}

#[test]
fn the_table_names_burn_first_and_adds_up_to_the_calls_fuel() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hot.folded");
    let (code, plain, plain_out) = event("hot-spot", &hot_spot_event(20_000), &[]);
    assert_eq!(code, Some(0), "{plain_out}");
    assert!(!plain_out.contains("Profile of"), "{plain_out}");
    let (code, report, out) = event(
        "hot-spot",
        &hot_spot_event(20_000),
        &["--profile", "--profile-folded", file.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{out}");

    // Profiling changes nothing in the report: same decision, same fuel.
    assert_eq!(report["decision"], plain["decision"], "{out}");
    assert_eq!(report["fuel_used"], plain["fuel_used"], "{out}");
    assert!(!out.contains("note:"), "{out}");
    let fuel = report["fuel_used"].as_u64().unwrap();

    let p = printed(&out);
    assert_eq!(p.total, fuel, "{out}");
    assert_eq!(p.rows[0].function, "hot_spot::burn", "{out}");
    assert!(p.rows[0].self_pct > 50.0, "{out}");
    // The self column is the whole: every unit of fuel is somewhere, and the percentages agree.
    assert_eq!(
        p.rows.iter().map(|r| r.self_fuel).sum::<u64>(),
        fuel,
        "{out}"
    );
    let pct: f64 = p.rows.iter().map(|r| r.self_pct).sum();
    assert!(
        (pct - 100.0).abs() <= 0.05 * p.rows.len() as f64,
        "{pct}\n{out}"
    );
    for r in &p.rows {
        if let Some(total) = r.total_fuel {
            assert!(total >= r.self_fuel && total <= fuel, "{r:?}\n{out}");
        }
    }
    // `step` is only called by `tally`: tally's total holds step's fuel and its own.
    let (tally, step) = (p.row("hot_spot::tally"), p.row("hot_spot::step"));
    assert!(step.self_fuel > 0, "{out}");
    assert_eq!(
        tally.total_fuel,
        Some(tally.self_fuel + step.self_fuel),
        "{out}"
    );
    assert!(out.contains(&format!("Folded stacks written to {}", file.display())));

    // The folded stacks parse, sum to the call's fuel, and put burn's fuel under the export.
    let stacks = folded(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(stacks.values().sum::<u64>(), fuel);
    let burn: Vec<_> = stacks
        .iter()
        .filter(|(s, _)| s.last().is_some_and(|f| f == "hot_spot::burn"))
        .collect();
    assert_eq!(
        burn.iter().map(|(_, f)| **f).sum::<u64>(),
        p.rows[0].self_fuel
    );
    assert!(burn.iter().all(|(s, _)| s.len() > 1), "{burn:?}");
}

/// burn's loop makes no calls, so wasmtime writes its fuel count back only when burn returns:
/// the profile must still give every extra round to burn, and only to burn.
#[test]
fn more_rounds_of_burn_are_all_burns_fuel() {
    let run = |rounds| {
        let (code, report, out) = event("hot-spot", &hot_spot_event(rounds), &["--profile"]);
        assert_eq!(code, Some(0), "{out}");
        let p = printed(&out);
        let others: Vec<Row> = p
            .rows
            .iter()
            .filter(|r| r.function != "hot_spot::burn")
            .cloned()
            .collect();
        (
            report["fuel_used"].as_u64().unwrap(),
            p.row("hot_spot::burn").self_fuel,
            others,
        )
    };
    let (fuel_a, burn_a, others_a) = run(10_000);
    let (fuel_b, burn_b, others_b) = run(30_000);
    assert!(fuel_b > fuel_a);
    assert_eq!(burn_b - burn_a, fuel_b - fuel_a);
    let fuel_of = |rows: &[Row]| -> Vec<(String, u64)> {
        rows.iter()
            .map(|r| (r.function.clone(), r.self_fuel))
            .collect()
    };
    assert_eq!(fuel_of(&others_a), fuel_of(&others_b));
}

#[test]
fn fixtures_profile_sums_the_cases_and_a_trap_is_profiled_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cases.yaml"),
        "- name: few rounds\n  event: {title: x, labels: {rounds: '1000'}}\n  expect: route\n\
         - name: many rounds\n  event: {title: y, labels: {rounds: '5000'}}\n  expect: route\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "plugin",
            "test",
            &dist("hot-spot"),
            "--no-cache",
            "--profile",
            "--fixtures",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("2 passed, 0 failed"), "{stdout}");
    // Each case's line shows its fuel; the profile is their sum.
    let case_fuel: u64 = stdout
        .lines()
        .filter(|l| l.starts_with("ok "))
        .map(|l| {
            let n = l.split("(fuel ").nth(1).unwrap().split(',').next().unwrap();
            n.parse::<u64>().unwrap()
        })
        .sum();
    assert!(stdout.contains("Profile of 2 cases, summed: "), "{stdout}");
    let p = printed(&stdout);
    assert_eq!(p.total, case_fuel, "{stdout}");
    assert_eq!(p.rows[0].function, "hot_spot::burn", "{stdout}");

    // A plugin stopped by running out of fuel: the whole budget is in the profile.
    let (code, report, out) = event(
        "loop-forever",
        r#"{"title": "x"}"#,
        &["--fuel", "200000", "--profile"],
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(report["error"]["kind"], "out_of_fuel", "{out}");
    assert_eq!(printed(&out).total, 200_000, "{out}");
    assert!(!out.contains("note:"), "{out}");
}

#[test]
fn the_python_plugin_profiles_its_interpreter() {
    let json = r#"{"title": "disk full", "labels": {"env": "prod"}}"#;
    // Compiling the interpreter takes a while: once, for both runs.
    let cache = tempfile::tempdir().unwrap();
    let cache = ["--cache", cache.path().to_str().unwrap()];
    let (code, plain, _) = event("python-tagger", json, &cache);
    let (code_p, report, out) = event(
        "python-tagger",
        json,
        &[&cache[..], &["--profile"]].concat(),
    );
    assert_eq!(code, Some(0));
    assert_eq!(code_p, code, "{out}");
    assert_eq!(report["decision"], plain["decision"], "{out}");
    assert_eq!(report["fuel_used"], plain["fuel_used"], "{out}");
    let p = printed(&out);
    assert_eq!(p.total, report["fuel_used"].as_u64().unwrap(), "{out}");
    assert!(p.rows.len() > 3, "{out}");
    assert_eq!(
        p.rows.iter().map(|r| r.self_fuel).sum::<u64>(),
        p.total,
        "{out}"
    );
}

#[test]
fn folded_output_needs_profile() {
    let out = Command::new(BIN)
        .args([
            "plugin",
            "test",
            &dist("hot-spot"),
            "--event",
            "e.json",
            "--profile-folded",
            "f",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--profile"));
}
