//! A run page's jobs grouped by matrix: the combinations of one job of the
//! pipeline file (`test [PYTHON=3.11, DB=sqlite]`, …) are shown under that
//! job's name, and the job graph draws the group as one node.

use slipway_store::{Job, State};

use super::svg;

/// The line above a matrix's first combination on the run page.
pub struct GroupHead {
    /// The job as the file names it.
    pub name: String,
    /// The group's state, as one job's would read (see [`group_state`]).
    pub state: String,
    /// `4 combinations: 3 succeeded, 1 failed`.
    pub summary: String,
}

/// How the run page titles a job: its matrix values after the name, or its name.
pub fn title(job: &Job) -> String {
    job.matrix
        .as_ref()
        .map_or_else(|| job.name.clone(), |m| m.title.clone())
}

/// For each job in order: the head of its matrix group when it is the
/// group's first combination.
pub fn heads(jobs: &[Job]) -> Vec<Option<GroupHead>> {
    let mut last: Option<&str> = None;
    jobs.iter()
        .map(|job| {
            let Some(group) = job.matrix.as_ref().map(|m| m.job.as_str()) else {
                last = None;
                return None;
            };
            if last == Some(group) {
                return None;
            }
            last = Some(group);
            let members = members(jobs, group);
            Some(GroupHead {
                name: group.to_string(),
                state: group_state(&members).to_string(),
                summary: summary(&members),
            })
        })
        .collect()
}

fn members<'a>(jobs: &'a [Job], group: &str) -> Vec<&'a Job> {
    jobs.iter()
        .filter(|j| j.matrix.as_ref().is_some_and(|m| m.job == group))
        .collect()
}

/// A group is failed when any combination failed (the first reason a run
/// fails), else running while any runs, else as far as its least advanced one.
fn group_state(members: &[&Job]) -> State {
    let any = |s: State| members.iter().any(|j| j.state == s);
    [
        State::Failed,
        State::Canceled,
        State::Running,
        State::Queued,
        State::Waiting,
        State::Skipped,
    ]
    .into_iter()
    .find(|s| any(*s))
    .unwrap_or(State::Succeeded)
}

/// `4 combinations: 3 succeeded, 1 failed`.
fn summary(members: &[&Job]) -> String {
    let counts: Vec<String> = State::ALL
        .into_iter()
        .filter_map(|s| {
            let n = members.iter().filter(|j| j.state == s).count();
            (n > 0).then(|| format!("{n} {s}"))
        })
        .collect();
    format!("{} combinations: {}", members.len(), counts.join(", "))
}

/// The graph's nodes with each matrix drawn as one node named by its job,
/// which its needs point from and its dependents' needs point to.
pub fn group_nodes(nodes: Vec<svg::Node>, jobs: &[Job]) -> Vec<svg::Node> {
    let group_of = |name: &str| {
        jobs.iter()
            .find(|j| j.name == name)
            .and_then(|j| j.matrix.as_ref())
            .map(|m| m.job.clone())
    };
    let mut out: Vec<svg::Node> = Vec::new();
    for node in nodes {
        let mut needs: Vec<String> = Vec::new();
        for need in &node.needs {
            let need = group_of(need).unwrap_or_else(|| need.clone());
            if !needs.contains(&need) {
                needs.push(need);
            }
        }
        let Some(group) = group_of(&node.name) else {
            out.push(svg::Node { needs, ..node });
            continue;
        };
        if out.iter().any(|n| n.name == group) {
            continue;
        }
        let members = members(jobs, &group);
        out.push(svg::Node {
            state: group_state(&members).to_string(),
            duration: format!("×{}", members.len()),
            name: group,
            needs,
        });
    }
    out
}
