//! What every fuzz target shares: the context a parser runs in.

use std::time::Duration;

use tocsin::domain::time::Timestamp;
use tocsin::ingest::parse::Context;

/// A fixed context, with raw JSON kept so that path is fuzzed too.
pub fn cx() -> Context<'static> {
    Context {
        source: "fuzz",
        now: Timestamp::from_millis(1_795_348_800_000),
        resolve_timeout: Duration::from_secs(300),
        keep_raw: true,
    }
}
