//! Tests of the plugin manifest check: unknown keys with a suggestion, types, defaults, required keys,
//! rooms and members against the config.

use std::path::Path;

use proptest::prelude::*;

use super::*;

const ROUTER: &str = "\
config:
  db_room: {type: room, required: true}
  hold_for: {type: duration, default: 5m}
  max: {type: int}
  loud: {type: bool, default: false}
tables:
  oncall: {value: member}
";

fn config(plugin_config: &str) -> Config {
    let yaml = format!(
        "rooms:\n  db: {{sink: {{kind: webhook, url: \"http://x.test/h\"}}}}\n\
         members:\n  alice: {{role: admin, token: \"0123456789abcdef-alice\"}}\n\
         groups:\n  dba: [alice]\n\
         plugins:\n  router:\n    path: router.wasm\n{plugin_config}"
    );
    Config::from_yaml(&yaml, Path::new("t.yaml")).unwrap()
}

fn run(plugin_config: &str) -> (Vec<Found>, Config) {
    let mut c = config(plugin_config);
    let m = parse_manifest(ROUTER).unwrap();
    let found = apply(&mut c, |_| Ok(m.clone()));
    (found, c)
}

#[test]
fn a_typo_is_refused_with_the_key_it_meant() {
    let (found, _) = run("    config: {db-room: db}\n");
    assert!(
        found.contains(&(
            "plugins.router.config.db-room".into(),
            "unknown key; did you mean db_room?".into()
        )),
        "{found:?}"
    );
    // And the required key it meant is missing.
    assert!(found
        .iter()
        .any(|(k, m)| k == "plugins.router.config.db_room" && m.contains("required")));
}

#[test]
fn a_far_off_key_lists_the_keys() {
    let (found, _) = run("    config: {db_room: db, zzzzzzzz: 1}\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .1
            .contains("the plugin's keys are: db_room, hold_for, loud, max"),
        "{found:?}"
    );
}

#[test]
fn defaults_are_filled_in_and_set_values_kept() {
    let (found, c) = run("    config: {db_room: db, loud: true}\n");
    assert!(found.is_empty(), "{found:?}");
    let cfg = &c.plugins["router"].config;
    assert_eq!(cfg["hold_for"].0, "5m");
    assert_eq!(cfg["loud"].0, "true");
    assert!(!cfg.contains_key("max"), "no default, not set: stays unset");
}

#[test]
fn values_must_fit_their_type() {
    let (found, _) = run("    config: {db_room: dbx, max: lots, hold_for: soon, loud: maybe}\n");
    let msg = |k: &str| {
        found
            .iter()
            .find(|(p, _)| p == &format!("plugins.router.config.{k}"))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    };
    assert!(msg("db_room").contains("`dbx` is not declared under rooms:; did you mean db?"));
    assert!(msg("max").contains("not a whole number"));
    assert!(msg("hold_for").contains("invalid duration"));
    assert!(msg("loud").contains("not true or false"));
}

#[test]
fn tables_are_checked_when_the_manifest_declares_them() {
    let (found, _) =
        run("    config: {db_room: db}\n    tables:\n      oncall: {db: alicee, web: dba, x: here}\n      owners: {a: b}\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found
        .iter()
        .any(|(k, m)| k == "plugins.router.tables.oncall.db"
            && m.contains("`alicee` is neither a member")
            && m.contains("did you mean alice?")));
    assert!(found
        .iter()
        .any(|(k, m)| k == "plugins.router.tables.owners" && m.starts_with("unknown table")));
}

#[test]
fn a_plugin_without_a_manifest_is_not_checked() {
    let mut c = config("    config: {anything: 1}\n");
    assert!(apply(&mut c, |_| Ok(None)).is_empty());
}

#[test]
fn bad_manifests_are_refused() {
    assert!(parse_manifest("config: {a: {type: colour}}").is_err());
    assert!(parse_manifest("config: {a: {typ: int}}").is_err());
    assert!(parse_manifest("config: {a: {type: int, default: x}}")
        .unwrap_err()
        .contains("config.a.default"));
    assert!(parse_manifest("config: {a: {required: true, default: 1}}").is_err());
}

#[test]
fn closest_prefers_separator_and_case_variants() {
    let known = ["db_room".to_string(), "db_rooms".to_string()];
    assert_eq!(closest("DB-ROOM", known.iter()), Some("db_room"));
    assert_eq!(closest("xyz", known.iter()), None);
}

proptest! {
    /// Any key the manifest does not declare is refused, by its own path; any declared key with a
    /// string value is accepted.
    #[test]
    fn unknown_keys_are_always_named(key in "[a-z][a-z0-9_-]{0,12}", value in "[ -~]{0,20}") {
        let m = parse_manifest("config:\n  known_key: {}\n").unwrap().unwrap();
        let mut pc = config("").plugins["router"].clone();
        pc.config.insert(key.clone(), Env(value));
        let found = check("router", &mut pc, &m, &Names::default());
        if key == "known_key" {
            prop_assert!(found.is_empty());
        } else {
            prop_assert_eq!(found.len(), 1);
            prop_assert_eq!(&found[0].0, &format!("plugins.router.config.{key}"));
            prop_assert!(found[0].1.starts_with("unknown key"));
        }
    }
}

/// The shipped configs fit the example plugins' manifests (read from their projects, so this holds
/// whether or not plugins/dist is built).
#[test]
fn the_shipped_configs_fit_the_example_manifests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |component: &Path| -> Result<Option<Manifest>, String> {
        let stem = component.file_stem().unwrap().to_string_lossy();
        let text = std::fs::read_to_string(
            root.join("plugins/examples")
                .join(&*stem)
                .join("plugin.yaml"),
        )
        .map_err(|e| format!("{stem}: {e}"))?;
        parse_manifest(&text)
    };
    for file in ["config/tocsin.yaml", "examples/full.yaml"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let env = |name: &str| -> Option<String> {
            Some(match name {
                "PAYMENTS_SLACK_WEBHOOK" => {
                    "https://hooks.slack.com/services/T1/B2/c3d4e5f6g7h8i9j0".into()
                }
                "TEAMS_WORKFLOW_URL" => "https://prod.logic.azure.com/workflows/0a1b2c3d".into(),
                "DISCORD_WEBHOOK" => "https://discord.com/api/webhooks/1/c3d4e5f6g7h8i9j0".into(),
                _ => format!("{}-0123456789abcdef", name.to_ascii_lowercase()),
            })
        };
        let expanded = crate::config::expand_env(&text, &env).unwrap();
        let mut c = Config::from_yaml(&expanded, Path::new(file)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.plugins.is_empty(), "{file}");
        assert_eq!(apply(&mut c, read), vec![], "{file}");
        // A typo in one of them is caught.
        let typo = expanded.replacen(
            "\n    config: {default_room: ops",
            "\n    config: {default-room: ops",
            1,
        );
        if file == "examples/full.yaml" {
            assert_ne!(typo, expanded);
            let mut c = Config::from_yaml(&typo, Path::new(file)).unwrap();
            let found = apply(&mut c, read);
            assert!(
                found
                    .iter()
                    .any(|(_, m)| m == "unknown key; did you mean default_room?"),
                "{found:?}"
            );
        }
    }
}

/// A fixture case gets the manifest's defaults and the server's refusals, with rooms and members
/// checked only for shape (a case has no config declaring them).
#[test]
fn a_case_is_fitted_as_the_server_fits_a_config() {
    let m = parse_manifest(
        "config:\n  hold_for: {type: duration, default: \"5m\"}\n  room: {type: room}\n  \
         need: {required: true}\ntables:\n  owners: {value: member}\n",
    )
    .unwrap()
    .unwrap();
    let mut config = BTreeMap::from([
        ("room".to_string(), "anything".to_string()),
        ("need".to_string(), "x".to_string()),
    ]);
    let tables = Tables::from([(
        "owners".to_string(),
        BTreeMap::from([("db".to_string(), "alice".to_string())]),
    )]);
    assert_eq!(fit_case(&m, &mut config, &tables), vec![]);
    assert_eq!(config["hold_for"], "5m");

    let mut bad = BTreeMap::from([
        ("hold_fro".to_string(), "5m".to_string()),
        ("room".to_string(), String::new()),
    ]);
    let found = fit_case(
        &m,
        &mut bad,
        &Tables::from([("owner".to_string(), BTreeMap::new())]),
    );
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "config.hold_fro",
            "config.need",
            "config.room",
            "tables.owner"
        ]
    );
    assert!(found[0].1.contains("did you mean hold_for?"), "{found:?}");
    assert_eq!(found[1].1, "is required by the plugin's manifest");
}
