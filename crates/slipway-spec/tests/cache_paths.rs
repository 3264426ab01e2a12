//! Cache paths that name Slipway's own directory are refused by validate,
//! however the glob spells it; `*` stays allowed (the runner leaves
//! `.slipway` out of every match).

fn parse(path: &str) -> Result<(), String> {
    let file = format!(
        "jobs:\n  it:\n    steps: [{{ run: 'true' }}]\n    cache:\n      key: k\n      paths: [\"{path}\"]\n"
    );
    slipway_spec::parse(&file)
        .map(drop)
        .map_err(|d| slipway_spec::render_all(".slipway.yml", &file, &d))
}

#[test]
fn globs_aimed_at_the_state_directory_are_refused() {
    for path in [
        ".slipway",
        ".slipway/home",
        ".s*",
        "[.]slipway",
        ".slip*/x",
        "{.slipway,a}",
    ] {
        let err = parse(path).expect_err(path);
        assert!(
            err.contains("matches `.slipway`, Slipway's own directory"),
            "{path}: {err}"
        );
    }
    for path in ["*", "target", ".cache", "*/target", "~/.npm"] {
        parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    }
}
