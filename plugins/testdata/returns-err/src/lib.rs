//! returns-err: fails every event with `Err`, the polite way for a plugin to fail.

use tocsin_plugin_sdk::prelude::*;

struct ReturnsErr;

impl Plugin for ReturnsErr {
    fn handle(ev: &Event) -> Result<Decision, String> {
        Err(format!("returns-err: refusing {:?} on purpose", ev.title))
    }
}

export_plugin!(ReturnsErr);
