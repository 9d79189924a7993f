//! enrich: adds ownership and runbook links from lookup tables, so routing plugins and people
//! downstream have them.
//!
//! - Table `owners` (value of label `service` → team): adds label `team`, unless the alert
//!   already has one (the sender knows better than a static table).
//! - Table `runbooks` (value of label `alertname` → URL): adds label `runbook_url`, unless
//!   present, and a Markdown ticket body linking to it.
//! - Nothing to add: passes.

use tocsin_plugin_sdk::prelude::*;

struct Enrich;

impl Plugin for Enrich {
    fn handle(ev: &Event) -> Result<Decision, String> {
        // Starting from `pass` keeps the decision a pass when nothing is added.
        let mut decision = Decision::pass();

        if ev.label("team").is_none() {
            if let Some(team) = ev.label("service").and_then(|s| lookup("owners", s)) {
                decision = decision.add_label("team", team);
            }
        }

        if ev.label("runbook_url").is_none() {
            if let Some(alertname) = ev.label("alertname") {
                if let Some(url) = lookup("runbooks", alertname) {
                    let body = format!("**Runbook:** [{alertname}]({url})");
                    decision = decision.add_label("runbook_url", url).body(body);
                }
            }
        }

        Ok(decision)
    }
}

export_plugin!(Enrich);
