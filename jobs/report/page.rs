//! The page's HTML pieces: escaping, number formats, status badges, tables, and the frame with
//! its style sheet (no script, no font, no image: nothing is fetched when the page is opened).

use std::fmt::Write;

/// Text made safe for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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
pub fn status(status: Option<&str>) -> String {
    match status {
        Some(s @ ("green" | "yellow" | "red")) => {
            let mark = match s {
                "green" => "&#10003;",
                "yellow" => "!",
                _ => "&#10007;",
            };
            format!(r#"<span class="status {s}">{mark} {s}</span>"#)
        }
        Some("partial") => {
            r#"<span class="status partial">partial: no status until the period ends</span>"#.into()
        }
        _ => r#"<span class="status none">no status</span>"#.into(),
    }
}

/// A table: a header row and body rows of already-escaped cells.
pub fn table(caption: &str, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table><caption>{}</caption><thead><tr>", escape(caption));
    for h in header {
        let _ = write!(out, r#"<th scope="col">{}</th>"#, escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// A section of the page with an anchor.
pub fn section(id: &str, title: &str, body: &str) -> String {
    format!(
        r#"<section id="{id}" aria-labelledby="{id}-title"><h2 id="{id}-title">{}</h2>{body}</section>"#,
        escape(title)
    )
}

/// A section whose tables are not published for the run date.
pub fn missing(id: &str, title: &str, tables: &str) -> String {
    section(
        id,
        title,
        &format!(
            r#"<p class="missing">Not in this run: {} not published for the run date.</p>"#,
            escape(tables)
        ),
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
pub(crate) fn frame(title: &str, nav: &[(&str, &str)], body: &str) -> String {
    let mut links = String::new();
    for (id, name) in nav {
        let _ = write!(links, r##"<li><a href="#{id}">{}</a></li>"##, escape(name));
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><header><h1>{t}</h1></header><nav aria-label=\"sections\"><ul>{links}</ul></nav><main>{body}</main></body></html>",
        t = escape(title)
    )
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
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert!(status(Some("red")).contains("red"));
        assert!(status(None).contains("no status"));
    }
}
