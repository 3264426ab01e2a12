//! Jobs that are combinations of a matrix keep which job of the file they
//! belong to and with which values, on SQLite and PostgreSQL alike.

#[macro_use]
mod common;

use slipway_store::{JobMatrix, NewJob, NewRun, Store};

stories!(a_combination_remembers_its_matrix);

async fn a_combination_remembers_its_matrix(store: Store) {
    let project = store
        .add_project("web", "/srv/git/web.git", &[], None)
        .await
        .expect("add");
    let matrix = JobMatrix {
        job: "test".into(),
        title: "test [PYTHON=3.11, DB=sqlite]".into(),
        values: [("PYTHON", "3.11"), ("DB", "sqlite")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    };
    let new = NewRun {
        commit: "c0ffee".into(),
        branch: "main".into(),
        trigger: "manual".into(),
        jobs: vec![
            NewJob {
                name: "test.3.11-sqlite".into(),
                matrix: Some(matrix.clone()),
                ..NewJob::default()
            },
            NewJob {
                name: "report".into(),
                needs: vec!["test.3.11-sqlite".into()],
                ..NewJob::default()
            },
        ],
        ..NewRun::default()
    };
    let run = store.create_run(project.id, &new).await.expect("run");
    let jobs = store.jobs_of(run.id).await.expect("jobs");
    assert_eq!(jobs[0].matrix.as_ref(), Some(&matrix));
    assert_eq!(jobs[1].matrix, None, "a job without a matrix has none");
    let again = store.job(jobs[0].id).await.expect("by id");
    assert_eq!(again.matrix, Some(matrix));
}
