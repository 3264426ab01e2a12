//! The matrix as the user writes it: expansions and every refusal, with its place.

use crate::{Pipeline, parse};

fn errors(source: &str) -> String {
    let diagnostics = parse(source).expect_err("the file is refused");
    crate::render_all(".slipway.yml", source, &diagnostics)
}

fn pipeline(source: &str) -> Pipeline {
    parse(source).unwrap_or_else(|d| panic!("{}", crate::render_all("p", source, &d)))
}

const EXAMPLE: &str = r#"
jobs:
  test:
    matrix:
      PYTHON: ["3.11", "3.12"]
      DB: [sqlite, postgres]
      exclude: [ { PYTHON: "3.11", DB: postgres } ]
      include: [ { PYTHON: "3.13", DB: sqlite } ]
    env: { MODE: ci }
    cache: { key: "pip-{{ matrix.PYTHON }}-{{ job }}", paths: [.venv] }
    steps: [ "echo $PYTHON $DB" ]
  report:
    needs: [test]
    steps: [ "true" ]
"#;

#[test]
fn expands_with_exclude_and_include() {
    let p = pipeline(EXAMPLE);
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "test.3.11-sqlite",
            "test.3.12-sqlite",
            "test.3.12-postgres",
            "test.3.13-sqlite",
            "report"
        ]
    );
    let first = &p.jobs[0];
    assert_eq!(first.title(), "test [PYTHON=3.11, DB=sqlite]");
    let env: Vec<(&str, &str)> = first
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, [("MODE", "ci"), ("PYTHON", "3.11"), ("DB", "sqlite")]);
    assert_eq!(first.caches[0].key.source, "pip-3.11-{{ job }}");
    let report = p.job("report").expect("report");
    assert_eq!(report.needs.len(), 4, "needs every combination");
    assert!(report.matrix.is_none());
    assert_eq!(report.title(), "report");
}

#[test]
fn a_run_of_the_job_takes_every_combination() {
    let p = pipeline(EXAMPLE);
    let wanted = [crate::JobName::parse("report").expect("name")];
    assert_eq!(p.with_needs(&wanted).expect("known").len(), 5);
    let wanted = [crate::JobName::parse("test").expect("name")];
    assert_eq!(p.with_needs(&wanted).expect("the group").len(), 4);
}

#[test]
fn values_unfit_for_names_are_made_safe_each_on_its_own() {
    let p = pipeline("jobs:\n  t:\n    matrix: { V: [\"a b\", c] }\n    steps: [\"true\"]\n");
    let names: Vec<&str> = p.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["t.a_b", "t.c"]);
    assert_eq!(p.jobs[0].title(), "t [V=a b]");
}

#[test]
fn two_values_alike_in_names_are_refused_not_renumbered() {
    // Adding `a_b` beside `a b` used to rename every combination `t.1`, `t.2`.
    let e = errors("jobs:\n  t:\n    matrix: { V: [\"a b\", a_b] }\n    steps: [\"true\"]\n");
    assert!(
        e.contains(".slipway.yml:3:26: error: `jobs.t.matrix.V` lists `a b` and `a_b`, which are both `a_b` in job names, cache keys and image tags"),
        "{e}"
    );
    assert!(e.contains("help: change one of them"), "{e}");
    // Across variables and `include`, the whole names are compared.
    let e = errors(
        "jobs:\n  t:\n    matrix:\n      A: [a-b, a]\n      B: [c, b-c]\n    steps: [\"true\"]\n",
    );
    assert!(
        e.contains("4:7: error: combinations `t [A=a-b, B=c]` and `t [A=a, B=b-c]` of job `t` would both be named `t.a-b-c`"),
        "{e}"
    );
}

#[test]
fn names_too_long_are_refused_not_renumbered() {
    let long = "x".repeat(70);
    let e = errors(&format!(
        "jobs:\n  t:\n    matrix: {{ V: [a, {long}] }}\n    steps: [\"true\"]\n"
    ));
    assert!(e.contains("3:13: error: combination `t [V=xxxx"), "{e}");
    assert!(e.contains("would be named `t.xxx"), "{e}");
    assert!(e.contains("job names have at most 64 characters"), "{e}");
    assert!(
        e.contains("help: shorten the job name or the values"),
        "{e}"
    );
}

#[test]
fn empty_matrix_and_empty_values() {
    let e = errors("jobs:\n  t:\n    matrix: {}\n    steps: [\"true\"]\n");
    assert!(
        e.contains(".slipway.yml:3:13: error: `jobs.t.matrix` is empty"),
        "{e}"
    );
    let e = errors("jobs:\n  t:\n    matrix: { A: [] }\n    steps: [\"true\"]\n");
    assert!(
        e.contains("3:18: error: `jobs.t.matrix.A` has no values"),
        "{e}"
    );
}

#[test]
fn values_must_be_scalars() {
    let e = errors("jobs:\n  t:\n    matrix:\n      A: [1, [2, 3]]\n    steps: [\"true\"]\n");
    assert!(
        e.contains("4:14: error: a value of `jobs.t.matrix.A` is a list"),
        "{e}"
    );
    let e = errors("jobs:\n  t:\n    matrix:\n      A: x\n    steps: [\"true\"]\n");
    assert!(
        e.contains("4:10: error: `jobs.t.matrix.A` must be a list of values, found a string"),
        "{e}"
    );
}

#[test]
fn variable_names_are_environment_names() {
    let e = errors(
        "jobs:\n  t:\n    matrix:\n      1X: [a]\n      SLIPWAY_X: [b]\n    steps: [\"true\"]\n",
    );
    assert!(
        e.contains("4:7: error: matrix variable `1X` is not a valid variable name"),
        "{e}"
    );
    assert!(
        e.contains("5:7: error: matrix variable `SLIPWAY_X` is reserved"),
        "{e}"
    );
}

#[test]
fn exclude_names_known_variables_and_matches_something() {
    let e = errors(
        "jobs:\n  t:\n    matrix:\n      PY: [a, b]\n      exclude: [ { PI: a } ]\n    steps: [\"true\"]\n",
    );
    assert!(
        e.contains(
            "5:18: error: `jobs.t.matrix.exclude` names `PI`, which is not a variable of the matrix"
        ),
        "{e}"
    );
    assert!(e.contains("did you mean `PY`?"), "{e}");
    let e = errors(
        "jobs:\n  t:\n    matrix:\n      PY: [a, b]\n      exclude: [ { PY: c } ]\n    steps: [\"true\"]\n",
    );
    assert!(
        e.contains("5:18: error: this entry of `jobs.t.matrix.exclude` matches no combination"),
        "{e}"
    );
    assert!(e.contains("PY takes a, b"), "{e}");
}

#[test]
fn too_many_combinations() {
    let values: Vec<String> = (0..9).map(|i| i.to_string()).collect();
    let list = values.join(", ");
    let source = format!(
        "jobs:\n  t:\n    matrix:\n      A: [{list}]\n      B: [{list}]\n    steps: [\"true\"]\n"
    );
    let e = errors(&source);
    assert!(
        e.contains("4:7: error: `jobs.t.matrix` makes 81 combinations; at most 64 are allowed"),
        "{e}"
    );
    let big: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let big = big.join(", ");
    let source = format!(
        "jobs:\n  t:\n    matrix:\n      A: [{big}]\n      B: [{big}]\n    steps: [\"true\"]\n"
    );
    assert!(errors(&source).contains("makes more than 4096 combinations"));
}

#[test]
fn include_gives_whole_combinations() {
    let e = errors(
        "jobs:\n  t:\n    matrix:\n      A: [x]\n      B: [y]\n      include: [ { A: z } ]\n    steps: [\"true\"]\n",
    );
    assert!(e.contains("6:18: error: an entry of `jobs.t.matrix.include` must give each of the matrix's variables"), "{e}");
    let e = errors(
        "jobs:\n  t:\n    matrix:\n      A: [x]\n      include: [ { A: x } ]\n    steps: [\"true\"]\n",
    );
    assert!(e.contains("is already a combination"), "{e}");
    let p = pipeline(
        "jobs:\n  t:\n    matrix:\n      include: [ { A: x }, { A: y } ]\n    steps: [\"true\"]\n",
    );
    assert_eq!(p.jobs.len(), 2);
}

#[test]
fn matrix_names_in_templates_are_checked() {
    let e = errors(
        "jobs:\n  t:\n    matrix: { A: [x] }\n    cache: { key: \"k-{{ matrix.B }}\", paths: [a] }\n    steps: [\"true\"]\n",
    );
    assert!(
        e.contains("names `matrix.B`, which is not a variable of this matrix"),
        "{e}"
    );
    let e = errors(
        "jobs:\n  t:\n    cache: { key: \"k-{{ matrix.B }}\", paths: [a] }\n    steps: [\"true\"]\n",
    );
    assert!(e.contains("job `t` has no matrix"), "{e}");
    let e =
        errors("jobs:\n  t:\n    matrix: { A: [x] }\n    env: { A: y }\n    steps: [\"true\"]\n");
    assert!(
        e.contains("`A` is both a variable of the matrix of job `t` and in its `env`"),
        "{e}"
    );
}

#[test]
fn a_combination_may_not_take_another_jobs_name() {
    let e = errors(
        "jobs:\n  t:\n    matrix: { A: [x] }\n    steps: [\"true\"]\n  t.x:\n    steps: [\"true\"]\n",
    );
    assert!(
        e.contains("two jobs are named `t.x` once the matrix is expanded"),
        "{e}"
    );
}

fn image_job(values: &str, build: &str) -> String {
    format!("jobs:\n  t:\n    matrix: {{ {values} }}\n    image_build: {{ {build} }}\n")
}

#[test]
fn combinations_may_not_push_or_tag_the_same_image() {
    // The default push tags (run number, short commit) are alike in every combination.
    let e = errors(&image_job("V: [a, b]", "push: ci/web"));
    assert!(
        e.contains(".slipway.yml:2:3: error: combinations `t [V=a]` and `t [V=b]` of job `t` would both push the tag `{{ run.number }}` (`jobs.t.image_build.push_tags`): they run at once and the last to finish wins"),
        "{e}"
    );
    assert!(
        e.contains("its default, the run number and short commit"),
        "{e}"
    );
    // A tag naming one variable of two is alike for the other's values.
    let e = errors(&image_job(
        "P: [\"3.11\"], D: [x, y]",
        "push: ci/web, push_tags: [\"{{ matrix.P }}\"]",
    ));
    assert!(
        e.contains("combinations `t [P=3.11, D=x]` and `t [P=3.11, D=y]` of job `t` would both push the tag `3.11`"),
        "{e}"
    );
    let e = errors(&image_job("V: [a, b]", "tags: [\"app:latest\"]"));
    assert!(
        e.contains("would both tag the image `app:latest` (`jobs.t.image_build.tags`)"),
        "{e}"
    );
    assert!(e.contains("help: name the matrix's variables in each of `tags`, e.g. `tags: [\"app:{{ matrix.V }}\"]`"), "{e}");
    let p = pipeline(&image_job(
        "V: [a, \"..\"]",
        "tags: [\"app:v{{ matrix.V }}\"], push: ci/web, push_tags: [\"{{ run.number }}-{{ matrix.V }}\"]",
    ));
    assert_eq!(
        p.jobs[1].image_build.as_ref().expect("build").push_tags[0].source,
        "{{ run.number }}-.."
    );
}

#[test]
fn matrix_values_in_image_names_must_be_valid_there() {
    let e = errors(&image_job(
        "V: [a, \"..\"]",
        "tags: [\"app:{{ matrix.V }}\"]",
    ));
    assert!(
        e.contains("2:3: error: `jobs.t.image_build`: value `..` of `matrix.V` makes `..` in `app:{{ matrix.V }}`, which is not a valid image name: an image tag starts with a letter, digit or `_`"),
        "{e}"
    );
    assert!(
        e.contains("help: change the value, or move `{{ matrix.V }}` within the tag"),
        "{e}"
    );
    let e = errors(&image_job(
        "V: [\"-O2\"]",
        "push: ci/web, push_tags: [\"{{ matrix.V }}\"]",
    ));
    assert!(e.contains("value `-O2` of `matrix.V` makes `-O2`"), "{e}");
    let e = errors(&image_job("V: [Big]", "tags: [\"app-{{ matrix.V }}:1\"]"));
    assert!(e.contains("an image name takes lowercase letters"), "{e}");
}
