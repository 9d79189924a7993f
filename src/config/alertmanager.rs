//! `alertmanager_api:` (who may read tocsin's Alertmanager API v2), and the routes rendered as an
//! Alertmanager config for that API's `status.config.original` (what `amtool config routes` reads).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::Config;

/// The Alertmanager version the API reports unless the config says otherwise: the one whose API
/// tocsin's matches (and whose amtool then prints no version warning).
pub const DEFAULT_VERSION: &str = "0.25.0";

/// `alertmanager_api:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerApiConfig {
    /// Who may read alerts, groups, silences, receivers and status: `members` (any member's token) or
    /// `open` (anyone who reaches the port). Writes always need an editor's or admin's token.
    #[serde(default)]
    pub read: ReadAccess,
    /// The version `status` reports. amtool warns when it differs from its own; Karma needs a
    /// semantic version.
    #[serde(default = "default_version")]
    pub version: String,
}

impl Default for AlertmanagerApiConfig {
    fn default() -> Self {
        AlertmanagerApiConfig {
            read: ReadAccess::default(),
            version: default_version(),
        }
    }
}

fn default_version() -> String {
    DEFAULT_VERSION.to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadAccess {
    #[default]
    Members,
    Open,
}

impl AlertmanagerApiConfig {
    /// Problems, as `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let v = &self.version;
        let core = v.split(['-', '+']).next().unwrap_or("");
        let parts: Vec<&str> = core.split('.').collect();
        let semver = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if semver {
            Vec::new()
        } else {
            vec![(
                "alertmanager_api.version".into(),
                format!("`{v}` is not a version like 0.25.0 (Karma and amtool compare it)"),
            )]
        }
    }
}

/// The name of the root route's receiver: alerts no route sends anywhere. `tocsin`, unless a room
/// has that name.
pub fn root_receiver(config: &Config) -> String {
    let mut name = "tocsin".to_string();
    while config.rooms.contains_key(&name) {
        name.push('_');
    }
    name
}

#[derive(Serialize)]
struct AmConfig {
    route: AmRoute,
    receivers: Vec<AmReceiver>,
}

#[derive(Serialize)]
struct AmRoute {
    receiver: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    matchers: Vec<String>,
    #[serde(rename = "continue", skip_serializing_if = "std::ops::Not::not")]
    continue_matching: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    routes: Vec<AmRoute>,
}

#[derive(Serialize)]
struct AmReceiver {
    name: String,
}

/// A label value in an Alertmanager matcher: double-quoted, `\` and `"` escaped, newlines as `\n`.
fn quoted(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// tocsin's routes as an Alertmanager config: one child route per (route, room), in order, each
/// with the route's matchers; a route with several rooms becomes that many routes, all but the last
/// with `continue: true`, so Alertmanager's tree sends where tocsin sends. Receivers are names only:
/// no URL, token or other secret of a room appears. Plugin-added rooms are not in the tree.
pub fn render_routes(config: &Config) -> String {
    let root = root_receiver(config);
    let mut children = Vec::new();
    for route in &config.routes {
        let matchers: Vec<String> = route
            .matchers
            .iter()
            .map(|(k, v)| format!("{k}={}", quoted(&v.0)))
            .chain(
                route
                    .match_re
                    .iter()
                    .map(|(k, v)| format!("{k}=~{}", quoted(&v.0))),
            )
            .collect();
        let rooms: Vec<&String> = route.rooms.iter().collect();
        if rooms.is_empty() {
            // Mentions only: Alertmanager's tree still needs a receiver.
            children.push(AmRoute {
                receiver: root.clone(),
                matchers,
                continue_matching: route.continue_matching,
                routes: Vec::new(),
            });
            continue;
        }
        for (i, room) in rooms.iter().enumerate() {
            let last = i + 1 == rooms.len();
            children.push(AmRoute {
                receiver: (*room).clone(),
                matchers: matchers.clone(),
                continue_matching: !last || route.continue_matching,
                routes: Vec::new(),
            });
        }
    }
    let mut names: BTreeSet<String> = config.rooms.keys().cloned().collect();
    names.insert(root.clone());
    let rendered = AmConfig {
        route: AmRoute {
            receiver: root,
            matchers: Vec::new(),
            continue_matching: false,
            routes: children,
        },
        receivers: names.into_iter().map(|name| AmReceiver { name }).collect(),
    };
    let yaml = serde_yaml::to_string(&rendered).unwrap_or_default();
    format!(
        "# tocsin's routes, rendered as an Alertmanager configuration (read-only; rooms appear as\n\
         # receivers without their settings). Edit tocsin's config to change them.\n{yaml}"
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "rooms:\n  ops: {{sink: {{kind: webhook, url: \"http://x.test/hook?token=s3cret\"}}}}\n  \
             db: {{sink: {{kind: webhook, url: \"http://x.test/db\"}}}}\n{extra}"
        );
        Config::from_yaml(&yaml, Path::new("tocsin.yaml")).unwrap()
    }

    #[test]
    fn routes_render_as_an_alertmanager_tree_without_secrets() {
        let c = config(
            "routes:\n  \
             - {match: {team: \"d\\\"b\"}, match_re: {severity: \"crit.*\"}, rooms: [ops, db]}\n  \
             - {rooms: [ops]}\n",
        );
        let text = render_routes(&c);
        assert!(!text.contains("s3cret"), "{text}");
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let routes = v["route"]["routes"].as_sequence().unwrap();
        assert_eq!(v["route"]["receiver"], "tocsin");
        assert_eq!(routes.len(), 3);
        assert_eq!(routes[0]["receiver"], "ops");
        assert_eq!(routes[0]["continue"], true);
        assert_eq!(routes[1]["receiver"], "db");
        assert!(routes[1].get("continue").is_none());
        let matchers: Vec<&str> = routes[1]["matchers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(matchers, ["team=\"d\\\"b\"", "severity=~\"crit.*\""]);
        assert!(routes[2].get("matchers").is_none());
        let receivers: Vec<&str> = v["receivers"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(receivers, ["db", "ops", "tocsin"]);
    }

    #[test]
    fn the_root_receiver_never_takes_a_rooms_name() {
        let yaml = "rooms:\n  tocsin: {sink: {kind: webhook, url: \"http://x.test/t\"}}\n";
        let c = Config::from_yaml(yaml, Path::new("tocsin.yaml")).unwrap();
        assert_eq!(root_receiver(&c), "tocsin_");
    }

    #[test]
    fn the_version_must_be_semantic() {
        let mut c = AlertmanagerApiConfig::default();
        assert!(c.problems().is_empty());
        c.version = "0.27.0-rc.1".into();
        assert!(c.problems().is_empty());
        c.version = "tocsin-0.1.0".into();
        assert_eq!(c.problems()[0].0, "alertmanager_api.version");
    }
}
