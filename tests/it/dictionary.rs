//! The data dictionary: every shipped model documents itself, and the command prints it all.

use std::path::Path;
use std::process::Command;

use growth_jobs::transform::sql_models;

fn repo_models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

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
fn the_dictionary_command_prints_every_model_and_column() {
    let output = Command::new(env!("CARGO_BIN_EXE_dictionary"))
        .arg("--models")
        .arg(repo_models())
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
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
}
