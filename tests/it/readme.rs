//! The README documents the input contract column by column: it must not drift from the code.

use growth_jobs::input::contract::{Absent, TABLES};

#[test]
fn the_readme_documents_every_contract_column() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for table in TABLES {
        let heading = format!("### `{}` (", table.name);
        let start = readme
            .find(&heading)
            .unwrap_or_else(|| panic!("README has no section {heading}"));
        let section = &readme[start..];
        let section = &section[..section[4..]
            .find("\n### ")
            .map(|i| i + 4)
            .unwrap_or(section.len())];
        let required_word = if table.required {
            "(required)"
        } else {
            "(optional)"
        };
        assert!(
            section.starts_with(&format!("### `{}` {required_word}", table.name)),
            "{heading}"
        );
        let rows: Vec<&str> = section.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(
            rows.len(),
            table.columns.len(),
            "{}: one README row per column",
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
