//! Fuzzes the `sentry` parser: no input may panic it, whatever the sender posts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The resource header picks the shape; try each with the same body.
    for resource in ["event_alert", "issue", "metric_alert", "error", "installation"] {
        let _ = tocsin::ingest::kinds::sentry::parse(resource, data, &tocsin_fuzz::cx());
    }
});
