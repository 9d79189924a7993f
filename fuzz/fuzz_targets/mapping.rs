//! Fuzzes the `mapping` parser: no input may panic it, whatever the sender posts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A mapping that reaches into nested objects, arrays and every rule.
    static MAPPING: std::sync::OnceLock<tocsin::config::MappingConfig> = std::sync::OnceLock::new();
    let mapping = MAPPING.get_or_init(|| {
        serde_yaml::from_str(include_str!("mapping.yaml")).expect("the fuzz mapping is valid")
    });
    let _ = tocsin::ingest::kinds::mapping::parse(mapping, data, &tocsin_fuzz::cx());
});
