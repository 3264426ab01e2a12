//! Pictures of a run drawn on the server as SVG: the job graph (columns by
//! depth in the DAG, boxes coloured by state, lines for `needs`) and each
//! job's step timeline. Charts of figures are in [`super::chart`].

use std::collections::HashMap;

use super::ansi::escape;
use super::chart;

/// One job as the graph shows it.
pub struct Node {
    pub name: String,
    pub state: String,
    pub needs: Vec<String>,
    pub duration: String,
}

const W: i64 = 170;
const H: i64 = 44;
const GAP_X: i64 = 50;
const GAP_Y: i64 = 16;

fn fill(state: &str) -> &'static str {
    match state {
        "succeeded" => "#bfeccb",
        "failed" => "#f6c4c4",
        "running" => "#ffe49a",
        "queued" | "waiting" => "#e8eaee",
        _ => "#dddddd",
    }
}

pub fn job_graph(nodes: &[Node]) -> String {
    let mut depth: HashMap<&str, i64> = HashMap::new();
    // Needs come first in a valid DAG's order, but settle in a few passes to be safe.
    for _ in 0..nodes.len().max(1) {
        for n in nodes {
            let d = n
                .needs
                .iter()
                .filter_map(|need| depth.get(need.as_str()))
                .max()
                .map_or(0, |d| d + 1);
            depth.insert(&n.name, d);
        }
    }
    let mut rows: HashMap<i64, i64> = HashMap::new();
    let mut at: HashMap<&str, (i64, i64)> = HashMap::new();
    for n in nodes {
        let col = depth[n.name.as_str()];
        let row = rows.entry(col).or_default();
        at.insert(&n.name, (col * (W + GAP_X) + 4, *row * (H + GAP_Y) + 4));
        *row += 1;
    }
    let width = (depth.values().max().copied().unwrap_or(0) + 1) * (W + GAP_X);
    let height = rows.values().max().copied().unwrap_or(1) * (H + GAP_Y) + 8;
    let mut svg = format!(
        "<svg class=\"graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for n in nodes {
        let (x, y) = at[n.name.as_str()];
        for need in &n.needs {
            if let Some((nx, ny)) = at.get(need.as_str()) {
                svg.push_str(&format!(
                    "<line x1=\"{}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"#8a93a3\"/>",
                    nx + W,
                    ny + H / 2,
                    y + H / 2
                ));
            }
        }
    }
    for n in nodes {
        let (x, y) = at[n.name.as_str()];
        svg.push_str(&format!(
            "<g class=\"job {state}\" id=\"job-{name}\"><title>{name}: {state} {}</title><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{}\" stroke=\"#7a8190\"/><text x=\"{}\" y=\"{}\">{shown}</text><text x=\"{}\" y=\"{}\">{state} {}</text></g>",
            escape(&n.duration),
            fill(&n.state),
            x + 8,
            y + 17,
            x + 8,
            y + 34,
            escape(&n.duration),
            state = escape(&n.state),
            name = escape(&n.name),
            // What fits a box at the page's 13px: the hover has the whole name.
            shown = escape(&chart::fit(&n.name, 20)),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// One step on a job's timeline: where it starts (milliseconds after the
/// job's first step started) and how long it took (`None` while it runs).
pub struct StepBar {
    pub title: String,
    pub offset_ms: i64,
    pub duration_ms: Option<i64>,
    pub failed: bool,
}

/// Characters of a step title shown beside its bar (the hover has it whole).
const STEP_LABEL: usize = 32;

/// Where a job's time went: a row per step with its title, a bar from its
/// start to its end on a time axis in seconds, and its duration.
pub fn step_timeline(steps: &[StepBar], now_offset_ms: i64) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let end = |s: &StepBar| s.offset_ms + s.duration_ms.unwrap_or(now_offset_ms - s.offset_ms);
    let total_ms = steps.iter().map(end).max().unwrap_or(0).max(1);
    let ticks = chart::ticks(total_ms as f64 / 1000.0, false);
    let span_s = ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let (label_w, plot_w, row_h, text_w) = (230.0, 420.0, 20.0, 70.0);
    let left = label_w + 8.0;
    let base = steps.len() as f64 * row_h + 6.0;
    let (width, height) = (left + plot_w + text_w, base + 40.0);
    let mut svg = format!(
        "<svg class=\"chart steps\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" style=\"font-family:sans-serif;font-size:11px\">"
    );
    let x_of = |ms: i64| left + ms as f64 / 1000.0 / span_s * plot_w;
    for t in &ticks {
        let x = left + t / span_s * plot_w;
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"2\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#e3e6ea\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            base + 4.0,
            base + 16.0,
            chart::number(*t)
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\" stroke=\"#555\"/><text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">seconds since the job's first step started</text>",
        left + plot_w,
        left + plot_w / 2.0,
        base + 32.0
    ));
    for (i, s) in steps.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let (x0, x1) = (x_of(s.offset_ms), x_of(end(s)));
        let took = s.duration_ms.map_or_else(
            || "running".to_string(),
            |ms| super::pages::duration(Some(0), Some(ms)),
        );
        let colour = if s.failed { "#e06c75" } else { "#61afef" };
        svg.push_str(&format!(
            "<g class=\"step\"><title>{title}: {took} (from {from}s to {to}s)</title><text class=\"label\" x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\"/><text class=\"duration\" x=\"{:.1}\" y=\"{:.1}\">{took}</text></g>",
            y + 12.0,
            escape(&chart::fit(&s.title, STEP_LABEL)),
            (x1 - x0).max(1.5),
            row_h - 6.0,
            x1 + 5.0,
            y + 12.0,
            title = escape(&s.title),
            from = chart::number(s.offset_ms as f64 / 1000.0),
            to = chart::number(end(s) as f64 / 1000.0),
        ));
    }
    svg.push_str("</svg>");
    svg
}
