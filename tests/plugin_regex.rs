//! One regex dialect: every row of plugins/testdata/regex-table.json, run through the plugin SDK's
//! `Matcher` in a plugin (plugins/testdata/regex-table-check) hosted by `tocsin plugin test`. The
//! server's unit tests run the same rows against routes' and silences' patterns
//! (src/domain/pattern.rs), so a pattern that means one thing in a plugin and another in a route
//! fails one of the two.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn dist(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("plugins/dist/{name}.wasm"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins (scripts/test does it)",
        p.display()
    );
    p.display().to_string()
}

#[test]
fn the_sdk_matcher_agrees_with_the_server_on_the_dialect_table() {
    let table: Value = serde_json::from_str(include_str!("../plugins/testdata/regex-table.json"))
        .expect("the table is JSON");
    let cases = table["cases"].as_array().unwrap();
    // One fixture per row; JSON is YAML, so the fixture file is written with serde_json.
    let fixtures: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let expect = match &c["expect"] {
                Value::Bool(true) => "match",
                Value::Bool(false) => "no match",
                Value::String(s) if s == "invalid" => "invalid",
                other => panic!("row {i}: expect must be true, false or \"invalid\", not {other}"),
            };
            json!({
                "name": format!("row {i}: {} on {}", c["pattern"], c["input"]),
                "event": {"title": "t", "labels": {"pattern": c["pattern"], "input": c["input"]}},
                "expect": {"drop": expect},
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("table.yaml"),
        serde_json::to_string_pretty(&fixtures).unwrap(),
    )
    .unwrap();

    let out = Command::new(BIN)
        .args(["plugin", "test", &dist("regex-table-check"), "--fixtures"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the plugin side disagrees with the table:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", cases.len())),
        "{stdout}"
    );
}
