#![no_main]
//! JUnit XML: any bytes parse or are refused, never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = slipway_quality::junit::parse(data);
});
