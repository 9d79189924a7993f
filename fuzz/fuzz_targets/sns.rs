//! Fuzzes the `sns` parser: no input may panic it, whatever the sender posts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = tocsin::ingest::kinds::sns::envelope(data) {
        let _ = tocsin::ingest::kinds::sns::string_to_sign(&envelope);
        let _ = tocsin::ingest::kinds::sns::alerts(&envelope, &tocsin_fuzz::cx());
    }
});
