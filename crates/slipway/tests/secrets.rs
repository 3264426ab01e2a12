//! Secrets reach the steps that ask for them and never the terminal or the logs.

mod common;

use common::{Repo, text};

const SECRET: &str = "s3cr3t-Value-42";

#[test]
fn an_echoed_secret_is_masked_everywhere() {
    // The second step prints the secret in two writes with a pause between,
    // so it arrives in two chunks of output.
    let repo = Repo::new(
        r#"
jobs:
  leak:
    secrets: [API_TOKEN]
    steps:
      - run: echo "token is $API_TOKEN" && echo "$API_TOKEN" >&2
      - run: |
          printf '%s' "$(printf %s "$API_TOKEN" | cut -c1-6)"
          sleep 0.2
          printf '%s\n' "$(printf %s "$API_TOKEN" | cut -c7-)"
      - run: test "$API_TOKEN" = s3cr3t-Value-42
"#,
        &[],
    );
    let out = repo.slipway(&["run", "--secret", &format!("API_TOKEN={SECRET}")]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(SECRET), "terminal shows the secret:\n{all}");
    assert!(all.contains("token is ***"), "{all}");
    let recorded = repo.recorded();
    assert!(!recorded.contains(SECRET), "a run record holds the secret");
    let log = std::fs::read_to_string(repo.run_dir(1).join("leak.log")).expect("log");
    for line in [
        " out token is ***\n",
        " err ***\n",
        " out ***\n",
        "step 3/3: test \"$API_TOKEN\" = ***\n",
    ] {
        assert!(log.contains(line), "log lacks {line:?}:\n{log}");
    }
}

#[test]
fn secrets_come_from_a_file_and_missing_ones_stop_the_run() {
    let repo = Repo::new(
        "jobs:\n  use:\n    secrets: [DB_PASSWORD]\n    steps:\n      - run: test \"$DB_PASSWORD\" = from-file && touch \"$SLIPWAY_WORKSPACE/../ran\"\n",
        &[],
    );
    let out = repo.slipway(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("missing secrets: `DB_PASSWORD` (job `use`)"),
        "{}",
        text(&out)
    );
    let file = repo.path().join("secrets.env");
    std::fs::write(&file, "# local secrets\nDB_PASSWORD=from-file\n").expect("write");
    let out = repo.slipway(&["run", "--secret-file", file.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_secret_printed_in_a_container_is_masked() {
    common::require_docker();
    let repo = Repo::new(
        &format!(
            "jobs:\n  leak:\n    image: {}\n    secrets: [API_TOKEN]\n    steps:\n      - run: echo \"in container $API_TOKEN\"\n",
            common::BUSYBOX
        ),
        &[],
    );
    let out = repo.slipway(&["run", "--secret", &format!("API_TOKEN={SECRET}")]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("in container ***") && !all.contains(SECRET),
        "{all}"
    );
    assert!(!repo.recorded().contains(SECRET));
}
