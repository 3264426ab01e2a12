//! Pictures drawn on the server as SVG: the job graph of a run (columns by
//! depth in the DAG, boxes coloured by state, lines for `needs`), bar charts
//! and a sparkline.

use std::collections::HashMap;

use super::ansi::escape;

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
            "<g class=\"job {state}\" id=\"job-{name}\"><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" fill=\"{}\" stroke=\"#7a8190\"/><text x=\"{}\" y=\"{}\">{name}</text><text x=\"{}\" y=\"{}\">{state} {}</text></g>",
            fill(&n.state),
            x + 8,
            y + 17,
            x + 8,
            y + 34,
            escape(&n.duration),
            state = escape(&n.state),
            name = escape(&n.name),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical bars with a label under each.
pub fn bars(values: &[(String, f64)], unit: &str) -> String {
    if values.is_empty() {
        return "<p class=\"muted\">Nothing in this window.</p>".into();
    }
    let max = values.iter().map(|v| v.1).fold(0.0_f64, f64::max).max(1e-9);
    let (bw, h) = (26_i64, 120_i64);
    let width = values.len() as i64 * (bw + 6) + 10;
    let mut svg = format!("<svg width=\"{width}\" height=\"{}\">", h + 40);
    for (i, (label, v)) in values.iter().enumerate() {
        let bar = ((v / max) * h as f64).round() as i64;
        let x = i as i64 * (bw + 6) + 5;
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{bw}\" height=\"{bar}\" fill=\"#61afef\"><title>{} {v:.2} {unit}</title></rect><text x=\"{x}\" y=\"{}\" transform=\"rotate(45 {x} {})\">{}</text>",
            h - bar + 5,
            escape(label),
            h + 18,
            h + 18,
            escape(label)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A line through values in 0..=100 (percentages).
pub fn sparkline(values: &[f64]) -> String {
    if values.len() < 2 {
        return "<p class=\"muted\">Not enough gated runs yet.</p>".into();
    }
    let (w, h) = (360.0, 60.0);
    let step = w / (values.len() - 1) as f64;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - v.clamp(0.0, 100.0) / 100.0 * h
            )
        })
        .collect();
    format!(
        "<svg width=\"{w}\" height=\"{}\"><polyline fill=\"none\" stroke=\"#2f8f4e\" stroke-width=\"2\" points=\"{}\"/></svg>",
        h + 4.0,
        points.join(" ")
    )
}
