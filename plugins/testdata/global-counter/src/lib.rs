//! global-counter: keeps a count of calls in a global, the state a warm instance carries from one
//! alert to the next. It labels each alert with the count, so tests can see instance reuse.

use std::sync::atomic::{AtomicU64, Ordering};

use tocsin_plugin_sdk::prelude::*;

/// Survives between calls exactly as long as the instance does.
static CALLS: AtomicU64 = AtomicU64::new(0);

struct GlobalCounter;

impl Plugin for GlobalCounter {
    fn handle(_ev: &Event) -> Result<Decision, String> {
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        Ok(Decision::route().add_label("calls", n.to_string()))
    }
}

export_plugin!(GlobalCounter);
