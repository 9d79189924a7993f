//! trap: panics on every event, which aborts into a wasm trap (the SDK logs the message first).

use tocsin_plugin_sdk::prelude::*;

struct Trap;

impl Plugin for Trap {
    fn handle(ev: &Event) -> Result<Decision, String> {
        // Depends on the input so it is a real runtime panic, not a compile-time one.
        let labels = std::hint::black_box(&ev.labels);
        panic!(
            "trap plugin: deliberate panic on {:?} ({} labels)",
            ev.title,
            labels.len()
        );
    }
}

export_plugin!(Trap);
