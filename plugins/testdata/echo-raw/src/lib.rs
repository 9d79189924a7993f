//! echo-raw: puts the sender's raw JSON (if tocsin passed it) into the ticket body, for the host's tests.

use tocsin_plugin_sdk::prelude::*;

struct EchoRaw;

impl Plugin for EchoRaw {
    fn handle(ev: &Event) -> Result<Decision, String> {
        let body = match &ev.raw_json {
            Some(raw) => format!("raw: {raw}"),
            None => "raw: none".to_string(),
        };
        Ok(Decision::route().body(body))
    }
}

export_plugin!(EchoRaw);
