//! The data dictionary: every table the night can publish, the SQL models' from their headers
//! and the model stages' from the schemas they write, as Markdown for people or JSON for tools.
//! The same texts go into each published file (see [`crate::output::described`]) and the
//! catalog scripts, so the three never disagree.

use serde::Serialize;

use crate::learn::trained_tables;
use crate::output::described;
use crate::output::manifest::Materialized;
use crate::transform::sql_models::Model;

/// One table of the dictionary.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Entry {
    pub table: String,
    pub description: String,
    /// One row per what; empty for the model stages' tables, whose description says it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub grain: String,
    /// What builds it: `sql/<file>` or `stage <name>`.
    pub built_by: String,
    /// Whether the night publishes it (an ephemeral model is only read by other models).
    pub published: bool,
    pub columns: Vec<Column>,
}

/// One column of a table.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Column {
    pub name: String,
    /// The Arrow type, where it is known before a run (the model stages' tables).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    pub definition: String,
}

/// Every model under the models folder, then every model stage's table.
pub fn entries(models: &[Model]) -> Vec<Entry> {
    let sql = models.iter().map(|model| Entry {
        table: model.name.clone(),
        description: model.doc.description.clone(),
        grain: model.doc.grain.clone(),
        built_by: format!("sql/{}", model.file),
        published: model.materialized == Materialized::Table,
        columns: model
            .doc
            .columns
            .iter()
            .map(|(name, definition)| Column {
                name: name.clone(),
                data_type: None,
                definition: definition.clone(),
            })
            .collect(),
    });
    let trained = trained_tables().into_iter().map(|t| Entry {
        table: t.table.into(),
        description: described::comment(t.schema.metadata()).unwrap_or_default().into(),
        grain: String::new(),
        built_by: format!("stage {}", t.stage),
        published: true,
        columns: t
            .schema
            .fields()
            .iter()
            .map(|f| Column {
                name: f.name().clone(),
                data_type: Some(f.data_type().to_string()),
                definition: described::comment(f.metadata()).unwrap_or_default().into(),
            })
            .collect(),
    });
    sql.chain(trained).collect()
}

/// The dictionary as Markdown: a section per table, a row per column.
pub fn markdown(entries: &[Entry]) -> String {
    let mut out = String::from("# Data dictionary\n\n");
    for entry in entries {
        out.push_str(&format!("### `{}`\n\n{}\n\n", entry.table, entry.description));
        if !entry.grain.is_empty() {
            out.push_str(&format!("Grain: {}. ", entry.grain));
        }
        out.push_str(&format!(
            "Built by `{}`. {}.\n\n",
            entry.built_by,
            if entry.published {
                "Published"
            } else {
                "Ephemeral (a view other models read, not published)"
            }
        ));
        out.push_str("| column | definition |\n|---|---|\n");
        for column in &entry.columns {
            let typed = column
                .data_type
                .as_ref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "| `{}`{typed} | {} |\n",
                column.name,
                column.definition.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}
