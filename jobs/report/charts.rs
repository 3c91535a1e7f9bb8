//! Inline SVG charts, drawn by the project so the page needs no script and no network: lines
//! (with an optional interval band), horizontal bars, and a heatmap. Every drawn mark has the
//! class `mark`, so a test can count what was drawn; every chart has a title and a text
//! alternative (`role="img"`, `aria-label`). Elements are closed explicitly (`<line ...></line>`):
//! inside HTML, an SVG element left open would swallow the elements after it.
//!
//! Colours are Okabe and Ito's colour-blind-safe palette; series are also told apart by their
//! legend order and by a table beside each chart.

use maud::{Markup, html};

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
/// The widest a bar label may be before it is shortened (its whole text stays in its tooltip).
const BAR_LABEL_MAX: f64 = 300.0;
/// An estimate of a 12px sans-serif character's mean width: SVG text cannot be measured
/// without a browser, and a label cut by the chart's edge reads worse than a wide margin.
const CHAR_WIDTH: f64 = 7.0;

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

/// A coordinate as the SVG carries it.
fn at(value: f64) -> String {
    format!("{value:.1}")
}

fn svg(id: &str, title: &str, height: f64, body: Markup) -> Markup {
    html! {
        svg.chart id=(id) role="img" aria-label=(title) viewBox={ "0 0 " (WIDTH) " " (height) }
            width=(WIDTH) height=(height) xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            (body)
        }
    }
}

fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |range, v| match range {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Round tick values covering `lo..=hi`: about five, a step of 1, 2, 2.5 or 5 times a power of
/// ten, the range widened to whole steps (ticks at $400, not at $357.01).
fn round_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 4.0;
    if !(raw.is_finite() && raw > 0.0) {
        return vec![lo, hi];
    }
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power);
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// A line chart of one or more series on shared axes.
pub fn lines(id: &str, title: &str, axes: &Axes, series: &[Series]) -> Markup {
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
    let y_ticks = round_ticks(y0, y1);
    let (y0, y1) = (y_ticks[0], y_ticks[y_ticks.len() - 1]);
    let x1 = if x1 <= x0 { x0 + 1.0 } else { x1 };
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * (WIDTH - LEFT - RIGHT);
    let sy = |y: f64| HEIGHT - BOTTOM - (y - y0) / (y1 - y0) * (HEIGHT - TOP - BOTTOM);
    // A label at either end of the x axis is anchored inside the chart, not cut by its edge.
    let anchor = |x: f64| match sx(x) {
        at if at < LEFT + 20.0 => "start",
        at if at > WIDTH - RIGHT - 20.0 => "end",
        _ => "middle",
    };
    let body = html! {
        @for y in &y_ticks {
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(at(sy(*y))) y2=(at(sy(*y))) stroke="#ddd" {}
            text x=(LEFT - 6.0) y=(at(sy(*y) + 4.0)) text-anchor="end" font-size="11" { ((axes.y_format)(*y)) }
        }
        @for (x, label) in &axes.x_ticks {
            text x=(at(sx(*x))) y=(HEIGHT - BOTTOM + 16.0) text-anchor=(anchor(*x)) font-size="11" { (label) }
        }
        text x=((LEFT + WIDTH - RIGHT) / 2.0) y=(HEIGHT - 4.0) text-anchor="middle" font-size="11" { (axes.x_label) }
        text x="12" y=(HEIGHT / 2.0) font-size="11" transform={ "rotate(-90 12 " (HEIGHT / 2.0) ")" }
            text-anchor="middle" { (axes.y_label) }
        @for (i, s) in series.iter().enumerate() {
            @let colour = PALETTE[i % PALETTE.len()];
            @if !s.band.is_empty() {
                @let upper = s.band.iter().map(|b| format!("{},{}", at(sx(b.0)), at(sy(b.2))));
                @let lower = s.band.iter().rev().map(|b| format!("{},{}", at(sx(b.0)), at(sy(b.1))));
                polygon.mark.band points=(upper.chain(lower).collect::<Vec<_>>().join(" "))
                    fill=(colour) fill-opacity="0.18" {}
            }
            @let finite: Vec<&(f64, f64)> = s.points.iter().filter(|p| p.1.is_finite()).collect();
            @if !finite.is_empty() {
                @let path: Vec<String> = finite
                    .iter()
                    .enumerate()
                    .map(|(j, p)| format!("{}{},{}", if j == 0 { "M" } else { "L" }, at(sx(p.0)), at(sy(p.1))))
                    .collect();
                path.mark d=(path.join(" ")) fill="none" stroke=(colour) stroke-width="2"
                    stroke-dasharray=[s.dashed.then_some("6 4")] {}
                @for p in &finite {
                    circle.mark cx=(at(sx(p.0))) cy=(at(sy(p.1))) r="2.5" fill=(colour) {}
                }
            }
            rect x=(LEFT + 8.0 + 150.0 * (i % 4) as f64) y=(6.0 + 12.0 * (i / 4) as f64)
                width="10" height="10" fill=(colour) {}
            text x=(LEFT + 22.0 + 150.0 * (i % 4) as f64) y=(15.0 + 12.0 * (i / 4) as f64)
                font-size="11" { (s.name) }
        }
    };
    svg(id, title, HEIGHT, body)
}

/// Horizontal bars, one per label, with the formatted value at the bar's end. The label column
/// is as wide as the longest label needs, up to [`BAR_LABEL_MAX`]; a longer label is shortened
/// with an ellipsis and keeps its whole text as a tooltip.
pub(crate) fn bars(id: &str, title: &str, bars: &[(String, f64)], format: fn(f64) -> String) -> Markup {
    let row = 22.0;
    let height = TOP + row * bars.len().max(1) as f64 + 8.0;
    let widest = bars.iter().map(|b| b.0.chars().count()).max().unwrap_or(0);
    let label_width = (widest as f64 * CHAR_WIDTH + 12.0).clamp(60.0, BAR_LABEL_MAX);
    let fits = ((label_width - 12.0) / CHAR_WIDTH) as usize;
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
    let body = html! {
        @for (i, (label, value)) in bars.iter().enumerate() {
            @let y = TOP + row * i as f64;
            @let length = value.abs() * scale;
            @let x = if *value < 0.0 { zero - length } else { zero };
            @let colour = if *value < 0.0 { PALETTE[3] } else { PALETTE[0] };
            @let shown: String = if label.chars().count() > fits {
                label.chars().take(fits.saturating_sub(1)).chain(['\u{2026}']).collect()
            } else {
                label.clone()
            };
            text x=(label_width - 6.0) y=(at(y + 14.0)) text-anchor="end" font-size="12" {
                @if shown != *label { title { (label) } }
                (shown)
            }
            rect.mark x=(at(x)) y=(at(y + 3.0)) width=(at(length.max(1.0))) height=(row - 6.0) fill=(colour) {}
            text x=(at(zero + value.max(0.0) * scale + 6.0)) y=(at(y + 14.0)) font-size="12" { (format(*value)) }
        }
    };
    svg(id, title, height, body)
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
) -> Markup {
    let label_width = 90.0;
    let cell_w = ((WIDTH - label_width - RIGHT) / column_labels.len().max(1) as f64).min(60.0);
    let cell_h = 20.0;
    let height = TOP + cell_h * (row_labels.len() as f64 + 1.0) + 8.0;
    let body = html! {
        @for (j, label) in column_labels.iter().enumerate() {
            text x=(at(label_width + cell_w * (j as f64 + 0.5))) y=(TOP + 12.0) text-anchor="middle" font-size="11" { (label) }
        }
        @for (i, label) in row_labels.iter().enumerate() {
            @let y = TOP + cell_h * (i as f64 + 1.0);
            text x=(label_width - 6.0) y=(at(y + 14.0)) text-anchor="end" font-size="11" { (label) }
            @for (j, value) in values[i].iter().enumerate() {
                @if let Some(value) = value {
                    @let share = (value / max).clamp(0.0, 1.0);
                    // From pale to the palette's blue; text turns white on dark cells.
                    @let shade = |from: f64, to: f64| (from + (to - from) * share).round() as u8;
                    @let fill = format!("#{:02x}{:02x}{:02x}", shade(240.0, 0.0), shade(246.0, 114.0), shade(252.0, 178.0));
                    rect.mark x=(at(label_width + cell_w * j as f64)) y=(at(y)) width=(at(cell_w - 1.0))
                        height=(cell_h - 1.0) fill=(fill) {}
                    text x=(at(label_width + cell_w * (j as f64 + 0.5))) y=(at(y + 14.0)) text-anchor="middle"
                        font-size="10" fill=(if share > 0.5 { "#fff" } else { "#000" }) { (format(*value)) }
                }
            }
        }
    };
    svg(id, title, height, body)
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
        let svg = lines("c", "title", &axes, &[series]).into_string();
        // A path, two points (the NaN skipped), one band.
        assert_eq!(svg.matches(r#"class="mark"#).count(), 4, "{svg}");
        assert!(svg.contains("&lt;jan&gt;") && svg.contains("a &amp; b") && !svg.contains("<jan>"));
        assert!(!svg.contains("/>"), "every element closed by its end tag: {svg}");
        let b = bars("b", "t", &[("x".into(), 2.0), ("y".into(), -1.0)], plain).into_string();
        assert_eq!(b.matches(r#"class="mark"#).count(), 2);
        let h = heatmap(
            "h",
            "t",
            &["r".into()],
            &["0".into(), "1".into()],
            &[vec![Some(1.0), None]],
            1.0,
            plain,
        )
        .into_string();
        assert_eq!(h.matches(r#"class="mark"#).count(), 1);
    }

    #[test]
    fn axes_tick_at_round_values_that_cover_the_data() {
        assert_eq!(round_ticks(0.0, 357.01), vec![0.0, 100.0, 200.0, 300.0, 400.0]);
        assert_eq!(round_ticks(0.0, 1.0), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let ticks = round_ticks(0.0, 16.208);
        assert_eq!(ticks, vec![0.0, 5.0, 10.0, 15.0, 20.0]);
        let ticks = round_ticks(-0.37, 0.12);
        assert_eq!(ticks.first(), Some(&-0.4));
        assert!(*ticks.last().unwrap() >= 0.12 && ticks.len() <= 7, "{ticks:?}");
        // A chart's y labels are its ticks, formatted.
        let axes = Axes {
            x_ticks: vec![],
            x_label: String::new(),
            y_label: String::new(),
            y_range: None,
            x_range: None,
            y_format: plain,
        };
        let series = Series {
            points: vec![(0.0, 120.0), (1.0, 357.01)],
            ..Series::default()
        };
        let svg = lines("c", "t", &axes, &[series]).into_string();
        for tick in ["0", "100", "200", "300", "400"] {
            assert!(svg.contains(&format!(">{tick}</text>")), "{tick}: {svg}");
        }
        assert!(!svg.contains("357.01</text>"), "{svg}");
    }

    #[test]
    fn a_long_bar_label_widens_its_column_and_is_never_cut() {
        let long = "high value active frequent buyers".to_string();
        let svg = bars("b", "t", &[(long.clone(), 0.5), ("x".into(), 0.2)], plain).into_string();
        // The label's right edge is at its column's width less 6: room for every character.
        let x: f64 = svg
            .split(r#"text-anchor="end""#)
            .next()
            .unwrap()
            .rsplit("x=\"")
            .next()
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(x >= long.len() as f64 * CHAR_WIDTH, "{x}: {svg}");
        assert!(svg.contains(&format!(">{long}</text>")), "{svg}");
        let huge = "a".repeat(80);
        let svg = bars("b", "t", &[(huge.clone(), 1.0)], plain).into_string();
        assert!(svg.contains(&format!("<title>{huge}</title>")), "{svg}");
        assert!(svg.contains('\u{2026}'), "{svg}");
    }
}
