//! {{name}}: a tocsin plugin. Drops the Watchdog heartbeat and sends critical alerts to the room
//! named in config `critical_room`; everything else passes to the next plugin unchanged.

use tocsin_plugin_sdk::prelude::*;

struct Rule;

impl Plugin for Rule {
    fn handle(ev: &Event) -> Result<Decision, String> {
        // Alertmanager's always-firing heartbeat: proof the pipeline works, not a problem.
        let heartbeat = Matcher::parse(r#"alertname="Watchdog""#)?;
        if heartbeat.matches(ev) {
            return Ok(Decision::drop("watchdog heartbeat"));
        }

        if ev.severity == Severity::Critical {
            let room = config("critical_room").ok_or("config critical_room is not set")?;
            log::info(format!("critical {:?} goes to {room}", ev.title));
            return Ok(Decision::route().room(room).tag("critical"));
        }

        Ok(Decision::pass())
    }
}

export_plugin!(Rule);
