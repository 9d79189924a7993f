//! `tocsin plugin test [PLUGIN] --replay <server URL or file> [--config F] [--source S] [--since 24h]`:
//! runs a plugin (or, with `--config`, the source's whole chain) over the alerts the server received
//! and shows, per alert whose outcome would change, what happened then and what would happen now.
//!
//! The alerts come from `GET /api/replay` (a URL: the server's base URL, with the member token in
//! `TOCSIN_TOKEN`), or from that answer saved to a file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

use super::plugin_chain::Chain;
use crate::plugin::fixtures::{FixtureEvent, DEFAULT_NOW_MS};

/// What to replay with.
pub struct Replay {
    pub from: String,
    pub plugin: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub source: Option<String>,
    pub since: String,
}

pub fn run(r: Replay) -> ExitCode {
    match replay(&r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn replay(r: &Replay) -> Result<(), String> {
    let answer = fetch(r)?;
    let source = r
        .source
        .clone()
        .or_else(|| answer["source"].as_str().map(str::to_string));
    let chain = match (&r.config, &r.plugin) {
        (Some(config), _) => {
            let source = source.ok_or("--config needs --source (or a saved answer naming one)")?;
            Chain::load(config, &source)?
        }
        (None, Some(plugin)) => Chain::single(plugin)?,
        (None, None) => return Err("give a plugin, or --config with --source".into()),
    };
    let alerts = answer["alerts"]
        .as_array()
        .ok_or("not an /api/replay answer: no `alerts` list")?;
    let mut changed = 0;
    for (i, a) in alerts.iter().enumerate() {
        let event: FixtureEvent = serde_json::from_value(a["event"].clone())
            .map_err(|e| format!("alerts[{i}].event: {e}"))?;
        let kind = event.source_kind.clone();
        let alert = event.to_alert(DEFAULT_NOW_MS);
        // The plugins see the time the server received the alert, as they did then.
        let at = alert.received_at;
        let outcome = chain.run(alert, kind.as_deref(), "replay", &Default::default(), at);
        let lines = diff(&a["then"], &outcome.json);
        if lines.is_empty() && outcome.unknown.is_empty() {
            continue;
        }
        changed += 1;
        let what = a["ticket"]
            .as_str()
            .map_or_else(|| "dropped alert".to_string(), str::to_string);
        println!(
            "{what} {:?} ({})",
            event.title,
            a["at"].as_str().unwrap_or("?")
        );
        for line in lines.iter().chain(outcome.unknown.iter()) {
            println!("  {line}");
        }
    }
    println!("{} alerts replayed: {changed} would change", alerts.len());
    Ok(())
}

/// `key: then → now` for each key of `then` whose value differs now. Pure.
pub fn diff(then: &Value, now: &Value) -> Vec<String> {
    let Some(then) = then.as_object() else {
        return Vec::new();
    };
    then.iter()
        .filter(|(k, v)| now.get(k.as_str()).unwrap_or(&Value::Null) != *v)
        .map(|(k, v)| format!("{k}: {v} → {}", now.get(k.as_str()).unwrap_or(&Value::Null)))
        .collect()
}

/// The `/api/replay` answer, from the server or a file.
fn fetch(r: &Replay) -> Result<Value, String> {
    if !(r.from.starts_with("http://") || r.from.starts_with("https://")) {
        let text =
            std::fs::read_to_string(Path::new(&r.from)).map_err(|e| format!("{}: {e}", r.from))?;
        return serde_json::from_str(&text).map_err(|e| format!("{}: {e}", r.from));
    }
    let source = r
        .source
        .as_deref()
        .ok_or("--replay from a server needs --source")?;
    let token = std::env::var("TOCSIN_TOKEN")
        .map_err(|_| "set TOCSIN_TOKEN to your member token to read from the server")?;
    let url = format!("{}/api/replay", r.from.trim_end_matches('/'));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let (status, body) = crate::sinks::http::Client::new()
            .get_bearer(
                &url,
                &[("source", source), ("since", r.since.as_str())],
                &token,
            )
            .await?;
        if status != 200 {
            return Err(format!("{url}: {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_only_what_changed() {
        let then = json!({"dropped": null, "rooms": ["ops"], "title": "x"});
        let now = json!({"dropped": null, "rooms": ["db"], "title": "x", "tags": []});
        assert_eq!(diff(&then, &now), vec!["rooms: [\"ops\"] → [\"db\"]"]);
        let then = json!({"dropped": {"plugin": "s", "reason": "r"}});
        assert_eq!(
            diff(&then, &json!({"dropped": null})),
            vec!["dropped: {\"plugin\":\"s\",\"reason\":\"r\"} → null"]
        );
    }
}
