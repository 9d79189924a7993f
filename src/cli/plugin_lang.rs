//! The languages `tocsin plugin new --lang` can start a project in, beyond Rust (whose template is
//! in plugin.rs): their files, embedded at build time like the Rust template, and how to build them.

/// Language of a new plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with a copy of the tocsin plugin SDK (cargo, target wasm32-wasip2).
    Rust,
    /// Python, built with componentize-py (PyPI).
    Python,
    /// JavaScript, built with componentize-js (npm).
    Js,
}

/// The same rule and so the same fixtures in every language: tests/plugin_langs.rs runs them.
const FIXTURES: (&str, &str) = (
    "fixtures/basic.yaml",
    include_str!("../../plugins/template/fixtures/basic.yaml"),
);
/// The manifest: the same config keys in every language.
pub const MANIFEST: (&str, &str) = (
    "plugin.yaml",
    include_str!("../../plugins/template/plugin.yaml"),
);
const WIT: (&str, &str) = (
    "wit/tocsin-plugin.wit",
    include_str!("../../plugins/wit/tocsin-plugin.wit"),
);

const PYTHON: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../plugins/template-python/app.py"),
    ),
    (
        "README.md",
        include_str!("../../plugins/template-python/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../plugins/template-python/.gitignore"),
    ),
    FIXTURES,
    MANIFEST,
    WIT,
];

const JS: &[(&str, &str)] = &[
    (
        "plugin.js",
        include_str!("../../plugins/template-js/plugin.js"),
    ),
    (
        "package.json",
        include_str!("../../plugins/template-js/package.json"),
    ),
    (
        "README.md",
        include_str!("../../plugins/template-js/README.md"),
    ),
    (
        ".gitignore",
        include_str!("../../plugins/template-js/.gitignore"),
    ),
    FIXTURES,
    MANIFEST,
    WIT,
];

/// The files of a Python or JavaScript project (`None` for Rust: its template lives in plugin.rs).
pub fn files(lang: Lang) -> Option<&'static [(&'static str, &'static str)]> {
    match lang {
        Lang::Rust => None,
        Lang::Python => Some(PYTHON),
        Lang::Js => Some(JS),
    }
}

/// What to run next in the new project `name`, one command a line.
pub fn next_steps(lang: Lang, name: &str) -> Vec<String> {
    match lang {
        Lang::Rust => {
            let underscored = name.replace('-', "_");
            vec![
                "cargo build --release --target wasm32-wasip2".into(),
                format!("tocsin plugin test target/wasm32-wasip2/release/{underscored}.wasm --manifest plugin.yaml --fixtures fixtures"),
            ]
        }
        Lang::Python => vec![
            "python3 -m venv .venv && .venv/bin/pip install componentize-py==0.25.1".into(),
            format!(".venv/bin/componentize-py -d wit -w plugin componentize app -o {name}.wasm"),
            format!("tocsin plugin test {name}.wasm --manifest plugin.yaml --fixtures fixtures"),
        ],
        Lang::Js => vec![
            "npm install && npm run build".into(),
            format!("tocsin plugin test {name}.wasm --manifest plugin.yaml --fixtures fixtures"),
        ],
    }
}
