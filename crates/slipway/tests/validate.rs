//! `slipway validate` (and `slipway run`) on real files, through the real binary:
//! every kind of problem comes out as `FILE:LINE:COL: error: MESSAGE` with exit
//! code 1, and hostile files are refused quickly instead of being parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/validate");

/// A run that takes longer than this is hung: it is killed and the test fails.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Hostile files must be refused within this time (binary loading excluded).
const FAST: Duration = Duration::from_secs(1);

/// Every header `slipway validate FILE` must print for each invalid fixture, in
/// order: `FILE:LINE:COL: error: MESSAGE`. A new fixture needs only its lines here.
const EXPECTED: &str = "\
bad_environments.yml:5:12: error: `release.version` cannot use `hash`: a version comes from the run, not the files
bad_environments.yml:9:22: error: `environments.dev.target.local` has no `command`
bad_environments.yml:10:3: error: `Staging` is not a valid environment name
bad_environments.yml:14:5: error: `environments.qa` says neither `branch` nor `from`
bad_environments.yml:14:43: error: `environments.qa.target.docker.port` is 70000; at most 65535 is allowed
bad_environments.yml:15:13: error: `environments.qa.deploy` is `sometimes`
bad_environments.yml:17:11: error: `environments.prod` has both `branch` and `from`
bad_environments.yml:19:13: error: `environments.prod.target` must name exactly one kind, found 2
bad_environments.yml:20:21: error: `environments.prod.health.http` must be a path
bad_environments.yml:21:27: error: `environments.prod.approval.required` must be at least 1 (leave `approval` out for none)
bad_environments.yml:21:36: error: `environments.prod.approval.role` is `boss`
bad_environments.yml:22:43: error: `environments.prod.promote.merge.mode` is `squash`
bad_environment_refs.yml:8:20: error: environments.staging.promote.to names the environment itself
bad_environment_refs.yml:10:11: error: environments.prod.from: there is no environment `stagin`
yaml_syntax.yml:4:18: error: invalid YAML: mapping values are not allowed in this context
yaml_unclosed_quote.yml:4:14: error: invalid YAML: while scanning a quoted scalar, found unexpected end of stream
unknown_key.yml:6:5: error: unknown key `neds` in `jobs.test`
top_level_unknown.yml:1:1: error: unknown key `stages` in `pipeline`
top_level_typo.yml:1:1: error: unknown key `job` in `pipeline`
top_level_typo.yml:1:1: error: the pipeline has no `jobs`
wrong_types.yml:3:12: error: job `build` needs `3`, which is not defined
wrong_types.yml:4:12: error: `jobs.build.retry` must be a whole number, found a string
wrong_types.yml:5:20: error: `jobs.build.allow_failure` must be true or false, found a string
wrong_types.yml:9:12: error: `jobs.test.needs` must be a list of strings, found a mapping
wrong_types.yml:11:7: error: `jobs.test.steps` must be a list of steps, found a mapping
no_steps.yml:2:3: error: job `build` has no steps
missing_need.yml:6:13: error: job `test` needs `biuld`, which is not defined
cycle.yml:2:3: error: dependency cycle: a → b → c → a
self_dependency.yml:2:3: error: dependency cycle: lint → lint
duplicate_job.yml:5:3: error: duplicate key `build` in `jobs` (first defined on line 2)
cache_key_space.yml:4:14: error: invalid cache key `my deps`: whitespace is not allowed
cache_key_slash.yml:4:39: error: invalid cache key `deps-{{ hash \"src/*.rs\" }}/{{ branch }}`: `/` is not allowed
cache_key_unknown_function.yml:4:20: error: invalid template in `jobs.build.cache.key`: unknown template expression `hsh \"x\"`; known: run.number, commit, commit.short, branch, job, matrix.NAME, and hash \"GLOB\"
cache_key_unclosed.yml:4:17: error: invalid template in `jobs.build.cache.key`: `{{` is never closed with `}}`
cache_key_hash_no_arg.yml:4:21: error: invalid template in `jobs.build.cache.key`: `hash` needs at least one file glob, e.g. hash \"Cargo.lock\"
bad_timeout.yml:3:24: error: `jobs.build.timeout` is not a duration: expected a number
zero_timeout.yml:3:14: error: `jobs.build.timeout` must be longer than zero
reserved_env.yml:4:7: error: `SLIPWAY_X` is reserved: variables starting with SLIPWAY_ are set by Slipway
many_errors.yml:2:3: error: `SLIPWAY_TOKEN` is reserved: variables starting with SLIPWAY_ are set by Slipway
many_errors.yml:7:14: error: `jobs.build.timeout` is not a duration: expected a number
many_errors.yml:8:3: error: job `test` has no steps
many_errors.yml:9:20: error: job `test` needs `deploy`, which is not defined
many_errors.yml:10:5: error: unknown key `stepz` in `jobs.test`
many_errors.yml:12:3: error: job `package` has no steps
many_errors.yml:13:12: error: `jobs.package.retry` must be a whole number, found a string
bad_push_target.yml:4:13: error: `jobs.image.image_build.push` is `Web`, which is not REPOSITORY/IMAGE
bad_push_target.yml:7:7: error: `jobs.other.image_build` needs `tags`
bad_gate.yml:2:5: error: `new_coverge` in `new_coverge >= 80` is not a measure; known: tests_total, tests_run, tests_passed, tests_failed, tests_errored, tests_skipped, tests_flaky, coverage, lines_to_cover, uncovered_lines, conditions_to_cover, uncovered_conditions, new_coverage, new_lines_to_cover, new_uncovered_lines, new_conditions_to_cover, new_uncovered_conditions, new_lines, coverage_files, issues, new_issues, debt_minutes, debt_ratio, rating, lines_of_code
bad_gate.yml:8:14: error: `/etc/passwd` leaves the workspace
bad_new_code.yml:2:3: error: `new_code` takes one of `reference`, `branch` or `days`
bad_new_code.yml:3:9: error: `new_code.days` must be between 1 and 3650
bad_new_code_reference.yml:2:14: error: `new_code.reference` is `last_tuesday`
";

/// Fixtures whose whole report is checked: header, source line, caret and help.
const FULL_REPORTS: &[(&str, &str)] = &[
    (
        "unknown_key.yml",
        "unknown_key.yml:6:5: error: unknown key `neds` in `jobs.test`
  |
6 |     neds: [build]
  |     ^
  = help: did you mean `needs`?
",
    ),
    (
        "top_level_unknown.yml",
        "top_level_unknown.yml:1:1: error: unknown key `stages` in `pipeline`
  |
1 | stages: [build]
  | ^
  = help: known keys: env, jobs, gate, new_code, debt_minutes, release, environments, checkout
",
    ),
    (
        "cycle.yml",
        "cycle.yml:2:3: error: dependency cycle: a → b → c → a
  |
2 |   a:
  |   ^
  = help: remove one of these `needs` so the jobs can run in some order
",
    ),
    (
        "cache_key_slash.yml",
        "cache_key_slash.yml:4:39: error: invalid cache key `deps-{{ hash \"src/*.rs\" }}/{{ branch }}`: `/` is not allowed
  |
4 |       key: 'deps-{{ hash \"src/*.rs\" }}/{{ branch }}'
  |                                       ^
  = help: cache keys use letters, digits, `.`, `_` and `-`, plus {{ hash \"FILE\" }}, {{ branch }}, {{ job }}, {{ matrix.NAME }}
",
    ),
    (
        "bad_timeout.yml",
        "bad_timeout.yml:3:24: error: `jobs.build.timeout` is not a duration: expected a number
  |
3 |     timeout: 5 minutes please
  |                        ^
  = help: write a duration such as `90s`, `5m` or `1h 30m`
",
    ),
];

/// Fixtures that the tables above do not list, with the test that uses them.
const OTHER_FIXTURES: &[&str] = &["valid.yml", "run_refuses_invalid.yml"];

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `slipway ARGS` in `dir`, killing it (and failing) if it outlives the watchdog.
fn slipway(dir: &Path, args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLIPWAY_DIR")
        .env_remove("SLIPWAY_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the slipway binary");
    // Drain both pipes while waiting, so a chatty child cannot block on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let code = wait_or_kill(&mut child, args);
    let elapsed = start.elapsed();
    Run {
        code,
        stdout: stdout.join().expect("stdout reader panicked"),
        stderr: stderr.join().expect("stderr reader panicked"),
        elapsed,
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            pipe.read_to_end(&mut bytes)
                .expect("cannot read the child's output");
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn wait_or_kill(child: &mut Child, args: &[&str]) -> Option<i32> {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for slipway") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`slipway {}` ran longer than {WATCHDOG:?}; killed",
                args.join(" ")
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn validate_fixture(name: &str) -> Run {
    slipway(Path::new(FIXTURES), &["validate", "-f", name])
}

/// The `FILE:…: error: …` lines of a report, without source lines, carets or help.
fn headers<'a>(file: &str, stderr: &'a str) -> Vec<&'a str> {
    let prefix = format!("{file}:");
    stderr.lines().filter(|l| l.starts_with(&prefix)).collect()
}

/// `(line, col)` of a header line that follows `FILE:`.
fn position(file: &str, header: &str) -> (usize, usize) {
    let rest = &header[file.len() + 1..];
    let mut numbers = rest
        .split(':')
        .map(|n| n.parse().expect("LINE:COL in header"));
    let line = numbers.next().expect("a line number");
    (line, numbers.next().expect("a column number"))
}

/// The expected headers grouped by fixture, in the order they must appear.
fn expected_by_fixture() -> BTreeMap<&'static str, Vec<&'static str>> {
    let mut by_file: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for line in EXPECTED.lines() {
        let (file, _) = line.split_once(':').expect("FILE:LINE:COL in EXPECTED");
        by_file.entry(file).or_default().push(line);
    }
    by_file
}

#[test]
fn every_error_kind_is_reported_with_its_position() {
    for (file, expected) in expected_by_fixture() {
        let run = validate_fixture(file);
        assert_eq!(run.code, Some(1), "{file}: exit code\n{}", run.stderr);
        assert_eq!(run.stdout, "", "{file}: nothing on stdout");
        assert_eq!(
            headers(file, &run.stderr),
            expected,
            "{file}\n{}",
            run.stderr
        );
        let positions: Vec<_> = expected.iter().map(|h| position(file, h)).collect();
        assert!(positions.is_sorted(), "{file}: errors out of line order");
    }
}

#[test]
fn reports_show_the_line_the_caret_and_the_help() {
    for (file, expected) in FULL_REPORTS {
        let run = validate_fixture(file);
        assert_eq!(run.code, Some(1), "{file}: exit code");
        assert_eq!(run.stderr, *expected, "{file}: full report");
    }
}

#[test]
fn a_valid_file_prints_one_summary_line() {
    let run = validate_fixture("valid.yml");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "valid.yml: valid: 2 jobs, 3 steps, 0 in containers, 0 image builds\n"
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn every_fixture_is_tested() {
    let listed: BTreeSet<&str> = expected_by_fixture()
        .into_keys()
        .chain(OTHER_FIXTURES.iter().copied())
        .collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(FIXTURES)
        .expect("fixtures directory")
        .map(|e| {
            e.expect("fixture entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let on_disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    assert_eq!(listed, on_disk, "fixtures on disk and in EXPECTED differ");
}

#[test]
fn run_refuses_an_invalid_file_before_running_anything() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let marker = dir.path().join("marker");
    let source = std::fs::read_to_string(Path::new(FIXTURES).join("run_refuses_invalid.yml"))
        .expect("run fixture");
    let source = source.replace("@MARKER@", &marker.display().to_string());
    write(&dir.path().join(".slipway.yml"), source);

    let run = slipway(dir.path(), &["run"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let file = "./.slipway.yml";
    assert_eq!(
        headers(file, &run.stderr),
        [format!(
            "{file}:7:12: error: `jobs.broken.retry` must be a whole number, found a string"
        )],
        "{}",
        run.stderr
    );
    assert!(!marker.exists(), "a step ran although the file is invalid");
    let validate = slipway(dir.path(), &["validate"]);
    assert_eq!(run.stderr, validate.stderr, "run and validate report alike");
}

/// A hostile file: its name, how to make it, and part of the one header it must get.
type Hostile = (&'static str, fn(&Path), &'static str);

const DEEP: &str = ": error: nesting deeper than 64 levels";

#[rustfmt::skip] // one line per file, like EXPECTED
const HOSTILE: &[Hostile] = &[
    ("huge.yml", huge, ":1:1: error: the file is 104857633 bytes; pipeline files may be at most"),
    ("alias_bomb.yml", alias_bomb, ":6:10: error: the document expands to more than 200000 values"),
    ("deep_flow_seq.yml", |p| write(p, "[".repeat(10_000)), DEEP),
    ("deep_flow_map.yml", |p| write(p, "{a: ".repeat(10_000)), DEEP),
    ("deep_block_seq.yml", |p| write(p, "- ".repeat(10_000) + "x"), DEEP),
    ("deep_block_map.yml", deep_block_map, DEEP),
    ("not_utf8.yml", not_utf8, ":4:1: error: the file is not valid UTF-8"),
];

#[test]
fn hostile_files_are_refused_quickly() {
    let dir = tempfile::tempdir().expect("temporary directory");
    // Warm-up, so loading the binary from disk is not part of the timings.
    assert_eq!(validate_fixture("valid.yml").code, Some(0));
    for (name, make, expected) in HOSTILE {
        let path = dir.path().join(name);
        make(&path);
        let run = slipway(dir.path(), &["validate", "-f", name]);
        assert_eq!(run.code, Some(1), "{name}: exit code\n{}", run.stderr);
        let headers = headers(name, &run.stderr);
        assert_eq!(headers.len(), 1, "{name}: one error\n{}", run.stderr);
        assert!(headers[0].contains(expected), "{name}: {}", headers[0]);
        assert!(run.elapsed < FAST, "{name}: took {:?}", run.elapsed);
    }
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A valid pipeline followed by 100 MiB of comments, streamed to disk.
fn huge(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the huge file");
    file.write_all(b"jobs:\n  build:\n    steps: [make]\n")
        .expect("write the huge file");
    let mib = format!("#{}\n", "x".repeat(1022)).repeat(1024);
    for _ in 0..100 {
        file.write_all(mib.as_bytes()).expect("write the huge file");
    }
}

/// Billion laughs: 10 levels, each a list of 10 aliases to the level before.
fn alias_bomb(path: &Path) {
    let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let alias = format!("*a{}", i - 1);
        text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![alias; 10].join(", ")));
    }
    write(path, text);
}

/// `a:` nested in block style, one space deeper per line. 1000 levels rather than
/// 10 000: at that depth the indentation alone (50 MB) trips the size limit first.
fn deep_block_map(path: &Path) {
    let text: String = (0..1000)
        .map(|depth| format!("{}a:\n", " ".repeat(depth)))
        .collect();
    write(path, text);
}

/// Valid up to the `\xff` byte on line 4.
fn not_utf8(path: &Path) {
    write(
        path,
        b"jobs:\n  build:\n    steps:\n      - run: echo \xff\xfe\n",
    );
}
