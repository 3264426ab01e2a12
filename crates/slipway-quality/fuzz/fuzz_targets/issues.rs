#![no_main]
//! SARIF, cargo/clippy JSON lines and Code Climate JSON.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = slipway_quality::issues::parse(data);
});
