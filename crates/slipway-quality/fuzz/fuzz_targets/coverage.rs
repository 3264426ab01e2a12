#![no_main]
//! LCOV and Cobertura (chosen by content), and the totals over what parsed.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok((coverage, _)) = slipway_quality::coverage::parse(data) {
        let _ = coverage.totals().percent();
    }
});
