#![no_main]
//! `git diff -U0` output, then new-code totals against an LCOV made of the same text.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(new) = slipway_quality::diff::parse(text) {
            if let Ok((coverage, _)) = slipway_quality::coverage::parse(data) {
                let _ = coverage.new_code_totals(&new);
                let _ = slipway_quality::uncovered_new_lines(&coverage, &new);
            }
        }
    }
});
