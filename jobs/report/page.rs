//! The page's HTML pieces: number formats, status badges, tables, and the frame with its style
//! sheet (no script, no font, no image: nothing is fetched when the page is opened). Markup is
//! built with maud, which escapes every interpolated string: text from the tables cannot become
//! markup.

use maud::{DOCTYPE, Markup, html};

/// A count or amount with thousands separators and `decimals` places.
pub fn grouped(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    let text = format!("{:.*}", decimals, value.abs());
    let (whole, fraction) = text.split_once('.').map_or((text.as_str(), ""), |(w, f)| (w, f));
    let mut digits = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            digits.push(',');
        }
        digits.push(c);
    }
    let sign = if value < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    if fraction.is_empty() {
        format!("{sign}{digits}")
    } else {
        format!("{sign}{digits}.{fraction}")
    }
}

pub fn count(value: f64) -> String {
    grouped(value, 0)
}

pub(crate) fn usd(value: f64) -> String {
    let decimals = if value.abs() >= 1000.0 { 0 } else { 2 };
    format!("${}", grouped(value, decimals)).replace("$-", "-$")
}

pub(crate) fn percent(value: f64) -> String {
    if value.is_finite() {
        format!("{:.1}%", value * 100.0)
    } else {
        "n/a".into()
    }
}

pub fn ratio(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.2}")
    } else {
        "n/a".into()
    }
}

/// The format a KPI is shown in, from its name.
pub(crate) fn kpi_format(kpi: &str) -> fn(f64) -> String {
    if kpi.ends_with("_usd") {
        usd
    } else if kpi.starts_with("ltv_to_cac") || kpi.ends_with("roas") {
        ratio
    } else {
        percent
    }
}

/// A status in words beside its colour, so the page reads without colour.
pub fn status(status: Option<&str>) -> Markup {
    match status {
        Some(s @ ("green" | "yellow" | "red")) => {
            let mark = match s {
                "green" => "\u{2713}",
                "yellow" => "!",
                _ => "\u{2717}",
            };
            html! { span class={ "status " (s) } { (mark) " " (s) } }
        }
        Some("partial") => {
            html! { span.status.partial { "partial: no status until the period ends" } }
        }
        _ => html! { span.status.none { "no status" } },
    }
}

/// A table: a header row and body rows of cells.
pub fn table(caption: &str, header: &[&str], rows: &[Vec<Markup>]) -> Markup {
    html! {
        table {
            caption { (caption) }
            thead { tr { @for h in header { th scope="col" { (h) } } } }
            tbody { @for row in rows { tr { @for cell in row { td { (cell) } } } } }
        }
    }
}

/// A paragraph of plain text.
pub fn paragraph(text: &str) -> Markup {
    html! { p { (text) } }
}

/// Pieces of markup one after the other.
pub fn join(parts: Vec<Markup>) -> Markup {
    html! { @for part in parts { (part) } }
}

/// A section of the page with an anchor.
pub fn section(id: &str, title: &str, body: Markup) -> Markup {
    html! {
        section id=(id) aria-labelledby={ (id) "-title" } {
            h2 id={ (id) "-title" } { (title) }
            (body)
        }
    }
}

/// A section whose tables are not published for the run date.
pub fn missing(id: &str, title: &str, tables: &str) -> Markup {
    section(
        id,
        title,
        html! { p.missing { "Not in this run: " (tables) " not published for the run date." } },
    )
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1080px;padding:16px;color:#111;background:#fff}\
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:2em}\
table{border-collapse:collapse;margin:8px 0 16px;font-size:.9em}caption{text-align:left;font-weight:600;padding:4px 0}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}\
.status{display:inline-block;padding:1px 6px;border-radius:3px;font-weight:600;white-space:nowrap}\
.status.green{background:#d7f0dd;color:#0b5d1e}.status.yellow{background:#fff1c2;color:#6b4e00}.status.red{background:#fad4d0;color:#8a1c0f}.status.none,.status.partial{color:#555}\
.chart{max-width:100%;height:auto;display:block;margin:8px 0}.missing{color:#555;font-style:italic}\
nav ul{columns:3;padding-left:1.2em}.note{color:#444;font-size:.9em}\
.trends{display:flex;flex-wrap:wrap;gap:12px}.trends figure{width:340px;margin:0}.trends figcaption{font-size:.85em;font-weight:600}";

/// The whole page.
pub(crate) fn frame(title: &str, nav: &[(&str, &str)], body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header { h1 { (title) } }
                nav aria-label="sections" {
                    ul { @for (id, name) in nav { li { a href={ "#" (id) } { (name) } } } }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_the_way_a_manager_expects() {
        assert_eq!(count(1234567.0), "1,234,567");
        assert_eq!(count(999.0), "999");
        assert_eq!(usd(4.937), "$4.94");
        assert_eq!(usd(-1234.6), "-$1,235");
        assert_eq!(percent(0.1234), "12.3%");
        assert_eq!(grouped(-0.001, 2), "0.00");
        assert_eq!(count(f64::NAN), "n/a");
        assert!(status(Some("red")).into_string().contains("red"));
        assert!(status(None).into_string().contains("no status"));
    }

    #[test]
    fn text_from_the_tables_never_becomes_markup() {
        let hostile = r#"<script>alert("x")</script>&'"#;
        let page = frame(
            hostile,
            &[(hostile, hostile)],
            section(
                hostile,
                hostile,
                table(hostile, &[hostile], &[vec![html! { (hostile) }]]),
            ),
        );
        assert!(!page.contains("<script>"), "{page}");
        // The title, heading, nav link and its target, the section id, its label and heading id
        // and heading, the caption, the header cell and the body cell.
        assert_eq!(page.matches("&lt;script&gt;").count(), 11, "{page}");
    }
}
