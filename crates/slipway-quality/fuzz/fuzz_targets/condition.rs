#![no_main]
//! Gate conditions as people write them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = slipway_quality::parse_condition(text);
    }
});
