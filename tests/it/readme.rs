//! The reference documents the input contract column by column: it must not drift from the code.

use growth_jobs::input::contract::{Absent, TABLES};

#[test]
fn the_readme_documents_every_contract_column() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/input-contract.md"
    ))
    .unwrap();
    for table in TABLES {
        let heading = format!("## `{}` (", table.name);
        let start = readme
            .find(&heading)
            .unwrap_or_else(|| panic!("the reference has no section {heading}"));
        let section = &readme[start..];
        let section = &section[..section[4..].find("\n## ").map(|i| i + 4).unwrap_or(section.len())];
        let required_word = if table.required {
            "(required)"
        } else {
            "(optional)"
        };
        assert!(
            section.starts_with(&format!("## `{}` {required_word}", table.name)),
            "{heading}"
        );
        let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(
            rows.len(),
            table.columns.len(),
            "{}: one reference row per column",
            table.name
        );
        for (row, column) in rows.iter().zip(table.columns) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(
                cells[1],
                format!("`{}`", column.name),
                "{}: columns in contract order",
                table.name
            );
            let required = if column.default == Absent::Required {
                "yes"
            } else {
                "no"
            };
            assert_eq!(cells[3], required, "{}.{}: required", table.name, column.name);
            let default = match column.default {
                Absent::Required => String::new(),
                Absent::Null => "null".into(),
                Absent::Text(text) => format!("`{text}`"),
            };
            assert_eq!(cells[4], default, "{}.{}: default", table.name, column.name);
        }
    }
}

/// The ids mdBook gives a page's headings: lowercased, spaces to `-`, other punctuation dropped.
fn heading_ids(page: &str) -> Vec<String> {
    let mut in_code = false;
    page.lines()
        .filter(|line| {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            !in_code && line.starts_with('#')
        })
        .map(|line| {
            line.trim_start_matches('#')
                .trim()
                .chars()
                .filter_map(|c| match c {
                    c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
                    c if c.is_whitespace() => Some('-'),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn heading_ids_are_mdbooks() {
    let ids =
        heading_ids("# The binaries\n```\n# not a heading\n```\n## `nightly`\n## Row rules and rejects\n");
    assert_eq!(ids, ["the-binaries", "nightly", "row-rules-and-rejects"]);
}

/// The README and the book link only to files that exist, at headings that exist, and the book's summary lists every
/// page, so `mdbook build docs` finds them all.
#[test]
fn every_link_of_the_readme_and_the_book_resolves_and_the_summary_lists_every_page() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    let summary = std::fs::read_to_string(root.join("docs/SUMMARY.md")).unwrap();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for target in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") {
                continue;
            }
            let resolved = page.parent().unwrap().join(file);
            assert!(
                resolved.exists(),
                "{}: link to {target} goes nowhere",
                page.display()
            );
            if let Some((_, anchor)) = target.split_once('#') {
                let headings = heading_ids(&std::fs::read_to_string(&resolved).unwrap());
                assert!(
                    headings.iter().any(|id| id == anchor),
                    "{}: link to {target}: no heading there has the id {anchor} (ids: {headings:?})",
                    page.display()
                );
            }
        }
        if let Ok(inside) = page.strip_prefix(root.join("docs"))
            && inside != std::path::Path::new("SUMMARY.md")
        {
            let listed = format!("]({})", inside.display());
            assert!(
                summary.contains(&listed),
                "docs/SUMMARY.md does not list {}",
                inside.display()
            );
        }
    }
}
