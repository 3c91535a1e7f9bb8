//! The data dictionary: every shipped model and every model stage's table documents itself, and
//! the command prints it all, as Markdown or JSON.

use std::process::Command;

use growth_jobs::learn::trained_tables;
use growth_jobs::output::described;
use growth_jobs::transform::sql_models;

use crate::support::repo_models;

#[test]
fn every_shipped_model_has_a_description_a_grain_and_its_columns() {
    let models = sql_models::discover(&repo_models()).unwrap();
    assert!(models.len() >= 8, "{}", models.len());
    for model in &models {
        assert!(
            !model.doc.description.is_empty(),
            "{}: no description",
            model.file
        );
        assert!(!model.doc.grain.is_empty(), "{}: no grain", model.file);
        assert!(!model.doc.columns.is_empty(), "{}: no columns", model.file);
        for (column, definition) in &model.doc.columns {
            assert!(
                !definition.is_empty(),
                "{}: {column} has no definition",
                model.file
            );
        }
    }
}

#[test]
fn every_trained_table_has_a_description_and_every_column_a_definition() {
    let tables = trained_tables();
    assert_eq!(tables.len(), 7);
    for table in &tables {
        assert!(
            described::comment(table.schema.metadata()).is_some_and(|d| d.len() > 20),
            "{}: no description",
            table.table
        );
        for field in table.schema.fields() {
            assert!(
                described::comment(field.metadata()).is_some(),
                "{}.{} has no definition",
                table.table,
                field.name()
            );
        }
    }
}

fn dictionary(format: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_dictionary"))
        .arg("--models")
        .arg(repo_models())
        .args(["--format", format])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_dictionary_command_prints_every_model_and_trained_table_with_its_columns() {
    let text = dictionary("markdown");
    for model in sql_models::discover(&repo_models()).unwrap() {
        assert!(text.contains(&format!("### `{}`", model.name)), "{}", model.name);
        for (column, _) in &model.doc.columns {
            assert!(
                text.contains(&format!("| `{column}` |")),
                "{}.{column}",
                model.name
            );
        }
    }
    for table in trained_tables() {
        assert!(
            text.contains(&format!("### `{}`", table.table)),
            "{}",
            table.table
        );
        for field in table.schema.fields() {
            assert!(
                text.contains(&format!("| `{}` ({}) |", field.name(), field.data_type())),
                "{}.{}",
                table.table,
                field.name()
            );
        }
    }
}

#[test]
fn the_json_dictionary_lists_every_table_once_with_typed_stage_columns() {
    let entries: Vec<serde_json::Value> = serde_json::from_str(&dictionary("json")).unwrap();
    let models = sql_models::discover(&repo_models()).unwrap();
    assert_eq!(entries.len(), models.len() + trained_tables().len());
    let names: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e["table"].as_str().unwrap()).collect();
    assert_eq!(names.len(), entries.len(), "a table listed twice");
    let churn = entries.iter().find(|e| e["table"] == "churn_scores").unwrap();
    assert_eq!(churn["built_by"], "stage churn");
    assert_eq!(churn["published"], true);
    assert_eq!(churn["columns"][1]["name"], "churn_probability");
    assert_eq!(churn["columns"][1]["type"], "Float64");
    let kpi = entries.iter().find(|e| e["table"] == "kpi_daily").unwrap();
    assert!(kpi["grain"].as_str().unwrap().starts_with("one row"), "{kpi}");
    assert!(kpi["columns"][0].get("type").is_none(), "{kpi}");
    let ephemeral = entries.iter().filter(|e| e["published"] == false).count();
    assert!(ephemeral >= 1, "the utilities are ephemeral");
}
