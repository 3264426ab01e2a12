//! Charts people can read: every one has axes with their units and tick
//! values, the value of each bar or point on hover (an SVG `<title>`), and
//! labels that fit (long ones are cut with an ellipsis; the hover text has
//! them whole). Text widths are estimated, not measured: the server has no
//! fonts, so room is given for a wide sans-serif character.

use super::ansi::escape;

/// Width given to one character of 11px text.
const CHAR_W: f64 = 6.6;
/// The longest label drawn; longer ones end in an ellipsis.
const MAX_LABEL: usize = 22;
const PLOT_H: f64 = 150.0;
const TOP: f64 = 14.0;
const STYLE: &str = "font-family:sans-serif;font-size:11px";

/// What a chart's axes say.
pub struct Axes<'a> {
    /// Under the x axis: what each bar or point is.
    pub x: &'a str,
    /// Beside the y axis, with its unit: `deployments`, `seconds`, `%`.
    pub y: &'a str,
    /// After each value on hover: `deployments`, `s`, `%`.
    pub unit: &'a str,
    /// Counts: ticks at whole numbers only.
    pub whole: bool,
}

/// `label` cut to at most `max` characters, ending in `…` when it was cut.
pub fn fit(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_string();
    }
    let mut cut: String = label.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Tick values from 0 to the first 1, 2 or 5 step (times a power of ten)
/// that makes at most five intervals up to `max`: a few ticks, at round numbers.
pub fn ticks(max: f64, whole: bool) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    if whole {
        step = step.ceil().max(1.0);
    }
    let count = (max / step).ceil() as i64;
    (0..=count).map(|i| i as f64 * step).collect()
}

/// A value as a tick or hover shows it: no needless decimals.
pub fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The y axis (line, ticks with values and grid lines) and the axis titles,
/// for a plot at `left` that is `width` wide.
fn frame(axes: &Axes, ticks: &[f64], left: f64, width: f64, bottom_room: f64) -> String {
    let top_value = ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let base = TOP + PLOT_H;
    let mut svg = format!(
        "<g class=\"axis y\"><line x1=\"{left}\" y1=\"{TOP}\" x2=\"{left}\" y2=\"{base}\" stroke=\"#555\"/>"
    );
    for t in ticks {
        let y = base - t / top_value * PLOT_H;
        svg.push_str(&format!(
            "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#e3e6ea\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            left + width,
            left - 7.0,
            y + 4.0,
            number(*t)
        ));
    }
    svg.push_str(&format!(
        "<text class=\"axis-label\" transform=\"translate(13 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text></g>",
        TOP + PLOT_H / 2.0,
        escape(axes.y)
    ));
    svg.push_str(&format!(
        "<g class=\"axis x\"><line x1=\"{left}\" y1=\"{base}\" x2=\"{}\" y2=\"{base}\" stroke=\"#555\"/><text class=\"axis-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
        left + width,
        left + width / 2.0,
        base + bottom_room - 6.0,
        escape(axes.x)
    ));
    svg
}

/// Vertical bars, one per labelled value. Labels stand at 45° under their
/// bars, with room below and to the left for the longest.
pub fn bars(values: &[(String, f64)], axes: &Axes) -> String {
    if values.is_empty() {
        return "<p class=\"muted\">Nothing in this window.</p>".into();
    }
    let max = values.iter().map(|v| v.1).fold(0.0_f64, f64::max);
    let ticks = ticks(max, axes.whole);
    let top_value = ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let longest = values
        .iter()
        .map(|(l, _)| fit(l, MAX_LABEL).chars().count())
        .max()
        .unwrap_or(0) as f64;
    // A label at 45° reaches this far both down and to the left.
    let reach = longest * CHAR_W * std::f64::consts::FRAC_1_SQRT_2 + 8.0;
    let (bw, gap) = (28.0, 12.0);
    let left = (reach - gap - bw / 2.0).max(58.0);
    // Wide enough for its bars, and for the x axis's title under them.
    let title_w = axes.x.chars().count() as f64 * CHAR_W + 16.0;
    let width = (values.len() as f64 * (bw + gap) + gap).max(title_w);
    let bottom_room = reach + 28.0;
    let (svg_w, svg_h) = (left + width + 10.0, TOP + PLOT_H + bottom_room);
    let mut svg = format!(
        "<svg class=\"chart bars\" width=\"{svg_w:.0}\" height=\"{svg_h:.0}\" viewBox=\"0 0 {svg_w:.0} {svg_h:.0}\" style=\"{STYLE}\">"
    );
    svg.push_str(&frame(axes, &ticks, left, width, bottom_room));
    let base = TOP + PLOT_H;
    for (i, (label, v)) in values.iter().enumerate() {
        let h = v.max(0.0) / top_value * PLOT_H;
        let x = left + gap + i as f64 * (bw + gap);
        let (lx, ly) = (x + bw / 2.0, base + 12.0);
        svg.push_str(&format!(
            "<g class=\"bar\"><title>{}: {} {}</title><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw}\" height=\"{h:.1}\" fill=\"#61afef\"/><text class=\"label\" x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"end\" transform=\"rotate(-45 {lx:.1} {ly:.1})\">{}</text></g>",
            escape(label),
            number(*v),
            escape(axes.unit),
            base - h,
            escape(&fit(label, MAX_LABEL)),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A line through values in order (oldest first), a dot on each with its
/// value on hover; the x axis counts them from 1.
pub fn line(values: &[f64], axes: &Axes, top: Option<f64>) -> String {
    if values.len() < 2 {
        return "<p class=\"muted\">Not enough gated runs yet.</p>".into();
    }
    let max = top.unwrap_or_else(|| values.iter().copied().fold(0.0_f64, f64::max));
    let ticks = ticks(max, axes.whole);
    let top_value = ticks.last().copied().unwrap_or(1.0).max(1e-9);
    let (left, width, bottom_room) = (58.0, 420.0, 44.0);
    let base = TOP + PLOT_H;
    let step = width / (values.len() - 1) as f64;
    let (svg_w, svg_h) = (left + width + 16.0, base + bottom_room);
    let mut svg = format!(
        "<svg class=\"chart line\" width=\"{svg_w:.0}\" height=\"{svg_h:.0}\" viewBox=\"0 0 {svg_w:.0} {svg_h:.0}\" style=\"{STYLE}\">"
    );
    svg.push_str(&frame(axes, &ticks, left, width, bottom_room));
    let at = |i: usize, v: f64| {
        (
            left + i as f64 * step,
            base - v.clamp(0.0, top_value) / top_value * PLOT_H,
        )
    };
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (x, y) = at(i, *v);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    svg.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#2f8f4e\" stroke-width=\"2\" points=\"{}\"/>",
        points.join(" ")
    ));
    // Numbers under the x axis: the first, the last, and a few between.
    let every = values.len().div_ceil(8).max(1);
    for (i, v) in values.iter().enumerate() {
        let (x, y) = at(i, *v);
        svg.push_str(&format!(
            "<circle class=\"point\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"#2f8f4e\"><title>{} {}: {} {}</title></circle>",
            escape(axes.x),
            i + 1,
            number(*v),
            escape(axes.unit)
        ));
        if i % every == 0 || i + 1 == values.len() {
            svg.push_str(&format!(
                "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                base + 14.0,
                i + 1
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_reach_the_largest_value() {
        assert_eq!(ticks(7.0, true), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(1.0, true), [0.0, 1.0]);
        assert_eq!(ticks(100.0, false), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(0.0, true), [0.0, 1.0]);
        assert_eq!(ticks(3.2, false).last(), Some(&4.0));
    }

    #[test]
    fn a_long_label_is_cut_and_whole_on_hover() {
        let long = "integration-tests-against-postgres p95";
        let svg = bars(
            &[(long.to_string(), 12.5)],
            &Axes {
                x: "job",
                y: "seconds",
                unit: "s",
                whole: false,
            },
        );
        assert!(svg.contains(&format!("<title>{long}: 12.5 s</title>")));
        assert!(svg.contains(">integration-tests-aga…</text>"), "{svg}");
        assert!(svg.contains(">seconds</text>") && svg.contains(">job</text>"));
    }
}
