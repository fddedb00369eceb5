//! The config loader (YAML → raw → typed): any input is a config or an error, never a panic,
//! and an error always says what is wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = shardcar::Config::from_yaml(text) {
        assert!(!e.to_string().is_empty());
    }
});
