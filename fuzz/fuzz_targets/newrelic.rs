//! Fuzzes the `newrelic` parser: no input may panic it, whatever the sender posts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tocsin::ingest::kinds::newrelic::parse(data, &tocsin_fuzz::cx());
});
