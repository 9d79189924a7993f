//! Typed plugin config: the manifest a plugin ships beside its component (`<name>.wasm` +
//! `<name>.yaml`) declaring its config keys (type, default, required) and lookup tables, and the
//! pure check of `plugins.<name>` against it, run by `tocsin check`, at start and on reload.
//!
//! A plain YAML file beside the component is something every language's build can ship (a custom
//! wasm section would need a tool per language). A plugin without a manifest is not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Config, Env, PluginConfig};

/// The SDK's own duration parser, compiled into the host too, so `type: duration` accepts exactly
/// what the plugin's `parse_duration_ms` will.
#[path = "../../plugins/sdk/src/duration.rs"]
mod sdk_duration;

/// A plugin's manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What the plugin does, for people reading the file.
    #[serde(default)]
    pub description: Option<String>,
    /// Config keys the plugin reads with `config(key)`; any other key is refused.
    #[serde(default)]
    pub config: BTreeMap<String, KeySpec>,
    /// Lookup tables the plugin reads. Absent: tables are not checked; present: any other table is
    /// refused.
    #[serde(default)]
    pub tables: Option<BTreeMap<String, TableSpec>>,
}

/// `config.<key>` in a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    #[serde(rename = "type", default)]
    pub ty: ValueType,
    /// The config must set it.
    #[serde(default)]
    pub required: bool,
    /// Filled in when the config does not set the key (the plugin then reads it like any value).
    #[serde(default)]
    pub default: Option<serde_yaml::Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `tables.<table>` in a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The type of every value in the table.
    #[serde(default)]
    pub value: ValueType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// What a config value must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    #[default]
    String,
    /// A whole number (`-3`, `42`).
    Int,
    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`, as the SDK's `config_flag` reads them).
    Bool,
    /// `90s`, `5m`, `1h30m`, `0`: the SDK's `parse_duration_ms`.
    Duration,
    /// A room declared under `rooms:`.
    Room,
    /// Someone to mention: a member, a group, `here` or `all`.
    Member,
}

/// The names a config declares, for `room` and `member` values.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub rooms: BTreeSet<String>,
    pub members: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    /// Any name is taken for a room or a member (only its shape is checked): there is no config
    /// to look names up in (a fixture case).
    pub any: bool,
}

impl Names {
    pub fn of(config: &Config) -> Names {
        Names {
            rooms: config.rooms.keys().cloned().collect(),
            members: config.members.keys().cloned().collect(),
            groups: config.groups.keys().cloned().collect(),
            any: false,
        }
    }

    /// Why `room` is not a room of this config, if it is not.
    pub fn room_problem(&self, room: &str) -> Option<String> {
        if self.any {
            return type_problem(ValueType::Room, room);
        }
        if self.rooms.contains(room) {
            return None;
        }
        Some(format!(
            "`{room}` is not declared under rooms:{}",
            hint(room, self.rooms.iter())
        ))
    }

    /// Why `who` cannot be mentioned in this config, if it cannot.
    pub fn mention_problem(&self, who: &str) -> Option<String> {
        if self.any {
            return type_problem(ValueType::Member, who);
        }
        if who == "here" || who == "all" || self.members.contains(who) || self.groups.contains(who)
        {
            return None;
        }
        Some(format!(
            "`{who}` is neither a member, a group, `here` nor `all`{}",
            hint(who, self.members.iter().chain(self.groups.iter()))
        ))
    }
}

/// Where a component's manifest lives: beside it, `.wasm` replaced by `.yaml`.
pub fn manifest_path(component: &Path) -> PathBuf {
    component.with_extension("yaml")
}

/// Reads the manifest beside `component`: `Ok(None)` when there is none.
pub fn read_manifest(component: &Path) -> Result<Option<Manifest>, String> {
    let path = manifest_path(component);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the manifest {}: {e}", path.display())),
    };
    parse_manifest(&text).map_err(|e| format!("manifest {}: {e}", path.display()))
}

/// Parses a manifest's text and checks it makes sense on its own. Pure.
pub fn parse_manifest(text: &str) -> Result<Option<Manifest>, String> {
    let m: Manifest = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    for (key, spec) in &m.config {
        if spec.required && spec.default.is_some() {
            return Err(format!(
                "config.{key}: a key with a default cannot also be required"
            ));
        }
        if let Some(d) = &spec.default {
            let d = scalar(d);
            // Room and member defaults name things only a config declares: checked with the config.
            if let Some(why) = type_problem(spec.ty, &d) {
                return Err(format!("config.{key}.default: {why}"));
            }
        }
    }
    Ok(Some(m))
}

/// One problem found, at a key path under `plugins.<name>`.
pub type Found = (String, String);

/// Checks `plugins.<name>` against its manifest and fills in defaults. Pure. Returns the problems,
/// each a dotted key path and a message.
pub fn check(name: &str, pc: &mut PluginConfig, m: &Manifest, names: &Names) -> Vec<Found> {
    let mut config: BTreeMap<String, String> = pc
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let tables: Tables = pc
        .tables
        .iter()
        .map(|(t, entries)| {
            let entries = entries.iter().map(|(k, v)| (k.clone(), v.0.clone()));
            (t.clone(), entries.collect())
        })
        .collect();
    let out = check_values(&format!("plugins.{name}"), &mut config, &tables, m, names);
    for (key, value) in config {
        pc.config.entry(key).or_insert(Env(value));
    }
    out
}

/// A plugin's lookup tables as plain strings.
pub type Tables = BTreeMap<String, BTreeMap<String, String>>;

/// Checks a fixture case's plugin config and tables against the manifest and fills in the
/// manifest's defaults, as the server does for `plugins.<name>`, so a case runs the plugin with
/// what the server would give it. Pure. Rooms and members are only checked for shape: a case has
/// no config declaring them (chain tests, `plugin test --config`, check them by name). Problems'
/// paths start at `config.` or `tables.`.
pub fn fit_case(
    m: &Manifest,
    config: &mut BTreeMap<String, String>,
    tables: &Tables,
) -> Vec<Found> {
    let names = Names {
        any: true,
        ..Names::default()
    };
    let mut out = check_values("", config, tables, m, &names);
    for (path, _) in &mut out {
        *path = path.trim_start_matches('.').to_string();
    }
    out
}

/// The rule behind [`check`] and [`fit_case`], on plain strings; `at` prefixes the key paths.
fn check_values(
    at: &str,
    config: &mut BTreeMap<String, String>,
    tables: &Tables,
    m: &Manifest,
    names: &Names,
) -> Vec<Found> {
    let mut out = Vec::new();
    let at = |rest: &str| format!("{at}.{rest}");
    for key in config.keys() {
        if !m.config.contains_key(key) {
            out.push((
                at(&format!("config.{key}")),
                format!(
                    "unknown key{}",
                    hint_or_list(key, m.config.keys(), "the plugin's keys")
                ),
            ));
        }
    }
    for (key, spec) in &m.config {
        match config.get(key) {
            Some(v) => {
                if let Some(why) = value_problem(spec.ty, v, names) {
                    out.push((at(&format!("config.{key}")), why));
                }
            }
            None if spec.required => out.push((
                at(&format!("config.{key}")),
                "is required by the plugin's manifest".into(),
            )),
            None => {
                if let Some(d) = &spec.default {
                    let d = scalar(d);
                    if let Some(why) = value_problem(spec.ty, &d, names) {
                        out.push((
                            at(&format!("config.{key}")),
                            format!("the manifest's default does not fit this config: {why}"),
                        ));
                    }
                    config.insert(key.clone(), d);
                }
            }
        }
    }
    if let Some(specs) = &m.tables {
        for table in tables.keys() {
            if !specs.contains_key(table) {
                out.push((
                    at(&format!("tables.{table}")),
                    format!(
                        "unknown table{}",
                        hint_or_list(table, specs.keys(), "the plugin's tables")
                    ),
                ));
            }
        }
        for (table, spec) in specs {
            match tables.get(table) {
                Some(entries) => {
                    for (k, v) in entries {
                        if let Some(why) = value_problem(spec.value, v, names) {
                            out.push((at(&format!("tables.{table}.{k}")), why));
                        }
                    }
                }
                None if spec.required => out.push((
                    at(&format!("tables.{table}")),
                    "is required by the plugin's manifest".into(),
                )),
                None => {}
            }
        }
    }
    out
}

/// Checks every plugin of `config` that has a manifest (found by `read`, given the component's path)
/// and fills in its defaults. Returns the problems, each a dotted key path and a message.
pub fn apply(
    config: &mut Config,
    read: impl Fn(&Path) -> Result<Option<Manifest>, String>,
) -> Vec<Found> {
    let names = Names::of(config);
    let mut out = Vec::new();
    for (name, pc) in config.plugins.iter_mut() {
        match read(Path::new(&pc.path.0)) {
            Ok(Some(m)) => out.extend(check(name, pc, &m, &names)),
            Ok(None) => {}
            Err(e) => out.push((format!("plugins.{name}.path"), e)),
        }
    }
    out
}

/// Why `value` is not a `ty` in a config with `names`, if it is not.
pub fn value_problem(ty: ValueType, value: &str, names: &Names) -> Option<String> {
    match ty {
        ValueType::Room => names.room_problem(value),
        ValueType::Member => names.mention_problem(value),
        other => type_problem(other, value),
    }
}

/// Why `value` does not have the shape of `ty` (rooms and members: only not empty).
fn type_problem(ty: ValueType, value: &str) -> Option<String> {
    let v = value.trim();
    match ty {
        ValueType::String => None,
        ValueType::Int => v
            .parse::<i64>()
            .err()
            .map(|_| format!("`{value}` is not a whole number")),
        ValueType::Bool => (!matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "1" | "0"
        ))
        .then(|| format!("`{value}` is not true or false")),
        ValueType::Duration => sdk_duration::parse_duration_ms(v).err(),
        ValueType::Room | ValueType::Member => v.is_empty().then(|| "is empty".to_string()),
    }
}

/// Numbers and booleans in YAML become strings, as in `plugins.<name>.config` (and in fixtures).
pub fn scalar(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// `; did you mean X?` when a known name is close to `got`, else nothing.
fn hint<'a>(got: &str, known: impl Iterator<Item = &'a String>) -> String {
    closest(got, known).map_or_else(String::new, |k| format!("; did you mean {k}?"))
}

/// Like [`hint`], else the whole list (`; the plugin's keys are: a, b`).
fn hint_or_list<'a>(
    got: &str,
    known: impl Iterator<Item = &'a String> + Clone,
    what: &str,
) -> String {
    match closest(got, known.clone()) {
        Some(k) => format!("; did you mean {k}?"),
        None => {
            let all: Vec<&str> = known.map(String::as_str).collect();
            if all.is_empty() {
                format!("; {what}: none")
            } else {
                format!("; {what} are: {}", all.join(", "))
            }
        }
    }
}

/// The known name nearest to `got`, if near enough to be a typo: the same but for case and `-`/`_`,
/// or within an edit distance of a third of its length (at least 1).
pub fn closest<'a>(got: &str, known: impl Iterator<Item = &'a String>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let g = norm(got);
    let budget = (g.chars().count() / 3).max(1);
    known
        .map(|k| {
            let d = if norm(k) == g {
                0
            } else {
                edit_distance(&g, &norm(k))
            };
            (d, k)
        })
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
#[path = "plugin_manifest_tests.rs"]
mod tests;
