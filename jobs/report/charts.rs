//! Inline SVG charts, drawn by the project so the page needs no script and no network: lines
//! (with an optional interval band), horizontal bars, and a heatmap. Every drawn mark has the
//! class `mark`, so a test can count what was drawn; every chart has a title and a text
//! alternative (`role="img"`, `aria-label`).
//!
//! Colours are Okabe and Ito's colour-blind-safe palette; series are also told apart by their
//! legend order and by a table beside each chart.

use std::fmt::Write;

use super::page::escape;

/// Okabe-Ito: blue, orange, bluish green, vermillion, reddish purple, sky blue, yellow, black.
pub(crate) const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 36.0;

/// One line of a line chart: (x, y) points, and an optional band of (x, lower, upper).
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
    /// Drawn dashed (a forecast, a reference line).
    pub dashed: bool,
}

/// The axes of an (x, y) chart.
#[derive(Clone, Debug)]
pub struct Axes {
    /// Tick positions on x with their labels.
    pub x_ticks: Vec<(f64, String)>,
    pub x_label: String,
    pub y_label: String,
    /// Fixed y range; None fits the data (from 0 when all values are positive).
    pub y_range: Option<(f64, f64)>,
    /// Fixed x range; None fits the data.
    pub x_range: Option<(f64, f64)>,
    /// Formats a y tick.
    pub y_format: fn(f64) -> String,
}

fn open_svg(out: &mut String, id: &str, title: &str, height: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" id="{id}" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
        t = escape(title)
    );
}

fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |range, v| match range {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A line chart of one or more series on shared axes.
pub fn lines(id: &str, title: &str, axes: &Axes, series: &[Series]) -> String {
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0).chain(s.band.iter().map(|b| b.0)));
    let (x0, x1) = axes.x_range.or_else(|| extent(xs)).unwrap_or((0.0, 1.0));
    let ys = series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.1)
            .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
    });
    let (mut y0, mut y1) = axes.y_range.or_else(|| extent(ys)).unwrap_or((0.0, 1.0));
    if axes.y_range.is_none() && y0 > 0.0 {
        y0 = 0.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let x1 = if x1 <= x0 { x0 + 1.0 } else { x1 };
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT);
    let sy = |y: f64| HEIGHT - BOTTOM - (y - y0) / (y1 - y0) * (HEIGHT - TOP - BOTTOM);
    let mut out = String::new();
    open_svg(&mut out, id, title, HEIGHT);
    // Grid and y ticks: five levels.
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            sy(y) + 4.0,
            escape(&(axes.y_format)(y)),
            py = sy(y),
        );
    }
    for (x, label) in &axes.x_ticks {
        // A label at either end of the axis is anchored inside the chart, not cut by its edge.
        let anchor = match sx(*x) {
            at if at < LEFT + 20.0 => "start",
            at if at > WIDTH - RIGHT - 20.0 => "end",
            _ => "middle",
        };
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="{anchor}" font-size="11">{}</text>"#,
            sx(*x),
            HEIGHT - BOTTOM + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle" font-size="11">{}</text><text x="12" y="{}" font-size="11" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        HEIGHT - 4.0,
        escape(&axes.x_label),
        HEIGHT / 2.0,
        HEIGHT / 2.0,
        escape(&axes.y_label)
    );
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        if !s.band.is_empty() {
            let upper = s.band.iter().map(|b| format!("{:.1},{:.1}", sx(b.0), sy(b.2)));
            let lower = s
                .band
                .iter()
                .rev()
                .map(|b| format!("{:.1},{:.1}", sx(b.0), sy(b.1)));
            let points: Vec<String> = upper.chain(lower).collect();
            let _ = write!(
                out,
                r#"<polygon class="mark band" points="{}" fill="{colour}" fill-opacity="0.18"/>"#,
                points.join(" ")
            );
        }
        let finite: Vec<&(f64, f64)> = s.points.iter().filter(|p| p.1.is_finite()).collect();
        if !finite.is_empty() {
            let path: Vec<String> = finite
                .iter()
                .enumerate()
                .map(|(j, p)| format!("{}{:.1},{:.1}", if j == 0 { "M" } else { "L" }, sx(p.0), sy(p.1)))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"<path class="mark" d="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#,
                path.join(" ")
            );
            for p in &finite {
                let _ = write!(
                    out,
                    r#"<circle class="mark" cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                    sx(p.0),
                    sy(p.1)
                );
            }
        }
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            LEFT + 8.0 + 150.0 * (i % 4) as f64,
            6.0 + 12.0 * (i / 4) as f64,
            LEFT + 22.0 + 150.0 * (i % 4) as f64,
            15.0 + 12.0 * (i / 4) as f64,
            escape(&s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one per label, with the formatted value at the bar's end.
pub(crate) fn bars(id: &str, title: &str, bars: &[(String, f64)], format: fn(f64) -> String) -> String {
    let row = 22.0;
    let height = TOP + row * bars.len().max(1) as f64 + 8.0;
    let label_width = 170.0;
    let max = bars
        .iter()
        .map(|b| b.1.abs())
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE);
    let min = bars.iter().map(|b| b.1).fold(0.0, f64::min);
    let span = WIDTH - label_width - 90.0;
    let zero = label_width
        + if min < 0.0 {
            span * (-min) / (max - min)
        } else {
            0.0
        };
    let scale = if min < 0.0 { span / (max - min) } else { span / max };
    let mut out = String::new();
    open_svg(&mut out, id, title, height);
    for (i, (label, value)) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let length = value.abs() * scale;
        let x = if *value < 0.0 { zero - length } else { zero };
        let colour = if *value < 0.0 { PALETTE[3] } else { PALETTE[0] };
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="12">{}</text><rect class="mark" x="{x:.1}" y="{:.1}" width="{:.1}" height="{}" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            label_width - 6.0,
            y + 14.0,
            escape(label),
            y + 3.0,
            length.max(1.0),
            row - 6.0,
            zero + value.max(0.0) * scale + 6.0,
            y + 14.0,
            escape(&format(*value))
        );
    }
    out.push_str("</svg>");
    out
}

/// A heatmap: one row per row label, one cell per column, shaded by value from 0 to `max`
/// and labelled with the formatted value (empty cells left blank).
pub fn heatmap(
    id: &str,
    title: &str,
    row_labels: &[String],
    column_labels: &[String],
    values: &[Vec<Option<f64>>],
    max: f64,
    format: fn(f64) -> String,
) -> String {
    let label_width = 90.0;
    let cell_w = ((WIDTH - label_width - RIGHT) / column_labels.len().max(1) as f64).min(60.0);
    let cell_h = 20.0;
    let height = TOP + cell_h * (row_labels.len() as f64 + 1.0) + 8.0;
    let mut out = String::new();
    open_svg(&mut out, id, title, height);
    for (j, label) in column_labels.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle" font-size="11">{}</text>"#,
            label_width + cell_w * (j as f64 + 0.5),
            TOP + 12.0,
            escape(label)
        );
    }
    for (i, label) in row_labels.iter().enumerate() {
        let y = TOP + cell_h * (i as f64 + 1.0);
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"#,
            label_width - 6.0,
            y + 14.0,
            escape(label)
        );
        for (j, value) in values[i].iter().enumerate() {
            let Some(value) = value else { continue };
            let share = (value / max).clamp(0.0, 1.0);
            // From pale to the palette's blue; text turns white on dark cells.
            let shade = |from: f64, to: f64| (from + (to - from) * share).round() as u8;
            let fill = format!(
                "#{:02x}{:02x}{:02x}",
                shade(240.0, 0.0),
                shade(246.0, 114.0),
                shade(252.0, 178.0)
            );
            let text = if share > 0.5 { "#fff" } else { "#000" };
            let _ = write!(
                out,
                r#"<rect class="mark" x="{:.1}" y="{y:.1}" width="{:.1}" height="{}" fill="{fill}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="{text}">{}</text>"#,
                label_width + cell_w * j as f64,
                cell_w - 1.0,
                cell_h - 1.0,
                label_width + cell_w * (j as f64 + 0.5),
                y + 14.0,
                escape(&format(*value))
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(v: f64) -> String {
        format!("{v}")
    }

    #[test]
    fn every_point_bar_and_cell_is_a_mark_and_text_is_escaped() {
        let axes = Axes {
            x_ticks: vec![(0.0, "<jan>".into())],
            x_label: "month".into(),
            y_label: "customers".into(),
            y_range: None,
            x_range: None,
            y_format: plain,
        };
        let series = Series {
            name: "a & b".into(),
            points: vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0)],
            band: vec![(0.0, 0.5, 1.5), (2.0, 2.0, 4.0)],
            dashed: true,
        };
        let svg = lines("c", "title", &axes, &[series]);
        // A path, two points (the NaN skipped), one band.
        assert_eq!(svg.matches(r#"class="mark"#).count(), 4, "{svg}");
        assert!(svg.contains("&lt;jan&gt;") && svg.contains("a &amp; b") && !svg.contains("<jan>"));
        let b = bars("b", "t", &[("x".into(), 2.0), ("y".into(), -1.0)], plain);
        assert_eq!(b.matches(r#"class="mark"#).count(), 2);
        let h = heatmap(
            "h",
            "t",
            &["r".into()],
            &["0".into(), "1".into()],
            &[vec![Some(1.0), None]],
            1.0,
            plain,
        );
        assert_eq!(h.matches(r#"class="mark"#).count(), 1);
    }
}
