//! Jobs and their `needs` as a directed acyclic graph: the checks made while
//! validating, and the selections a runner makes from a valid pipeline.

use std::collections::BTreeSet;

use crate::diagnostic::Pos;
use crate::model::{Job, JobName, Pipeline};
use crate::reader::{Reader, suggest};

/// Reports `needs` that name no job, and every dependency cycle with all its jobs.
pub(crate) fn check(r: &mut Reader, jobs: &[Job], needs_pos: &[Vec<Pos>]) {
    let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate() {
        for (need, pos) in job.needs.iter().zip(&needs_pos[i]) {
            match names.iter().position(|n| *n == need.as_str()) {
                Some(j) => edges[i].push(j),
                None => {
                    let message =
                        format!("job `{}` needs `{need}`, which is not defined", job.name);
                    match suggest(need.as_str(), &names) {
                        Some(s) => r.error_with_help(*pos, message, format!("did you mean `{s}`?")),
                        None => r.error_with_help(
                            *pos,
                            message,
                            format!("defined jobs: {}", names.join(", ")),
                        ),
                    }
                }
            }
        }
    }
    for cycle in cycles(&edges) {
        let mut path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        path.push(names[cycle[0]]);
        r.error_with_help(
            jobs[cycle[0]].pos,
            format!("dependency cycle: {}", path.join(" → ")),
            "remove one of these `needs` so the jobs can run in some order",
        );
    }
}

/// One cycle through each strongly connected component that has one, as a path
/// of job indices starting at the component's first job in file order.
fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut found = Vec::new();
    for component in strongly_connected(edges) {
        let start = component[0];
        let is_cycle = component.len() > 1 || edges[start].contains(&start);
        if is_cycle {
            found.push(cycle_path(edges, &component, start));
        }
    }
    found
}

/// A path from `start` back to itself visiting every job of the component it can
/// (a depth-first walk that stays inside the component).
fn cycle_path(edges: &[Vec<usize>], component: &[usize], start: usize) -> Vec<usize> {
    let inside: BTreeSet<usize> = component.iter().copied().collect();
    let mut path = vec![start];
    let mut seen = BTreeSet::from([start]);
    let mut at = start;
    // Prefer unvisited members so the message names as many jobs of the cycle as it can.
    while let Some(&next) = edges[at]
        .iter()
        .find(|n| inside.contains(n) && !seen.contains(n))
    {
        path.push(next);
        seen.insert(next);
        at = next;
    }
    // Close the loop: walk back to start through the shortest route inside the component.
    if !edges[at].contains(&start) {
        path.extend(shortest_path(edges, &inside, at, start));
    }
    path
}

/// Jobs after `from` on the shortest route to `to` (exclusive of both ends).
fn shortest_path(
    edges: &[Vec<usize>],
    inside: &BTreeSet<usize>,
    from: usize,
    to: usize,
) -> Vec<usize> {
    let mut prev = vec![usize::MAX; edges.len()];
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(at) = queue.pop_front() {
        for &n in &edges[at] {
            if inside.contains(&n) && prev[n] == usize::MAX && n != from {
                prev[n] = at;
                queue.push_back(n);
            }
        }
    }
    let mut route = Vec::new();
    let mut at = prev[to];
    while at != from && at != usize::MAX {
        route.push(at);
        at = prev[at];
    }
    route.reverse();
    route
}

/// Tarjan's algorithm without recursion; components come out with members sorted.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
    let (mut on_stack, mut stack) = (vec![false; n], Vec::new());
    let mut next_index = 0;
    let mut components = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = edges[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                component.sort_unstable();
                components.push(component);
            }
        }
    }
    components.sort_unstable();
    components
}

impl Pipeline {
    /// The named jobs and every job they need, directly or not, in file order.
    pub fn with_needs(&self, wanted: &[JobName]) -> Result<Vec<&Job>, String> {
        let mut keep: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = Vec::new();
        for name in wanted {
            // A job with a matrix is asked for by the name the file gives it.
            let combinations: Vec<&str> = self
                .jobs
                .iter()
                .filter(|j| j.matrix.as_ref().is_some_and(|m| m.job == *name))
                .map(|j| j.name.as_str())
                .collect();
            if !combinations.is_empty() {
                todo.extend(combinations);
                continue;
            }
            if self.job(name.as_str()).is_none() {
                let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
                return Err(format!(
                    "there is no job `{name}`; jobs: {}",
                    names.join(", ")
                ));
            }
            todo.push(name.as_str());
        }
        while let Some(name) = todo.pop() {
            if keep.insert(name)
                && let Some(job) = self.job(name)
            {
                todo.extend(job.needs.iter().map(JobName::as_str));
            }
        }
        Ok(self
            .jobs
            .iter()
            .filter(|j| keep.contains(j.name.as_str()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_components() {
        // 0 → 1 → 2 → 0, 3 → 3, 4 alone
        let edges = vec![vec![1], vec![2], vec![0], vec![3], vec![]];
        assert_eq!(cycles(&edges), vec![vec![0, 1, 2], vec![3]]);
    }

    #[test]
    fn cycle_names_every_job_it_can() {
        // 0 → 1, 1 → 0, 1 → 2, 2 → 0 : one component {0,1,2}
        let edges = vec![vec![1], vec![0, 2], vec![0]];
        assert_eq!(cycles(&edges), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn closes_the_loop_through_the_component() {
        // 0 → 1 → 2, 2 → 1, 1 → 0 : after 0,1,2 we must go back via 1
        let edges = vec![vec![1], vec![2, 0], vec![1]];
        assert_eq!(cycles(&edges), vec![vec![0, 1, 2, 1]]);
    }
}
