//! chaos: a routing plugin that misbehaves on command, to test the per-key breaker, decision
//! entries and plugin logs in the server.
//!
//! - Label `chaos=loop`: never returns (out of fuel or past its deadline).
//! - Label `chaos=err`: logs a few lines at each level, then returns `Err`.
//! - Label `chaos=spam`: logs 20 lines, then routes as below.
//! - Otherwise routes: to the room in label `room`, else config `default_room`; severity
//!   `critical` when label `raise` is `critical`; tag `chaos-checked`.

use tocsin_plugin_sdk::prelude::*;

struct Chaos;

impl Plugin for Chaos {
    fn handle(ev: &Event) -> Result<Decision, String> {
        match ev.label("chaos") {
            Some("loop") => {
                let mut n = ev.title.len() as u64;
                loop {
                    n = std::hint::black_box(
                        n.wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407),
                    );
                }
            }
            Some("err") => {
                log::debug(format!("looking at {:?}", ev.title));
                log::info("chaos=err: about to fail");
                log::warn("this alert asked for an error");
                return Err(format!("chaos: refusing {:?} on purpose", ev.title));
            }
            Some("spam") => {
                for i in 0..20 {
                    log::info(format!("spam line {i}"));
                }
            }
            _ => {}
        }
        let mut d = Decision::route().tag("chaos-checked");
        if let Some(room) = ev.label("room").map(str::to_string).or_else(|| config("default_room")) {
            d = d.room(room);
        }
        if ev.label("raise") == Some("critical") {
            d = d.severity(Severity::Critical);
        }
        Ok(d)
    }
}

export_plugin!(Chaos);
