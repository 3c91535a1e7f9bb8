//! Finding the SQL models under `sql/`, reading their headers, and ordering them by the
//! tables they read.
//!
//! A model is one `.sql` file holding one `select` (CTEs allowed); its file name is its table
//! name. Dependencies come from DataFusion's own SQL parser, so a CTE named like a table is not
//! mistaken for one, and a model never has to declare what it reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::resolve::resolve_table_references;

use crate::error::{Error, Result};
use crate::output::manifest::Materialized;

/// One SQL model.
#[derive(Clone, Debug)]
pub struct Model {
    /// The table name: the file name without `.sql`.
    pub name: String,
    /// The file, relative to the models folder (`marts/kpi_daily.sql`).
    pub file: String,
    pub sql: String,
    pub materialized: Materialized,
    /// Tables the model reads (inputs, other models, `run_context`), sorted.
    pub reads: Vec<String>,
    /// What its header says: the data dictionary entry.
    pub doc: ModelDoc,
    /// Its data tests, from `<name>.tests.toml` next to it.
    pub tests: Option<crate::transform::data_tests::DataTests>,
}

/// A model's header comment, read as documentation:
///
/// ```sql
/// -- What the table is for, in a sentence or a paragraph.
/// -- grain: one row per ...
/// -- materialized: table
/// -- columns:
/// --   column_name: definition, with its unit
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ModelDoc {
    pub description: String,
    pub grain: String,
    /// (column, definition), in the header's order.
    pub columns: Vec<(String, String)>,
}

impl ModelDoc {
    /// Reads the header of a model's SQL.
    pub fn parse(sql: &str) -> Self {
        let mut doc = ModelDoc::default();
        let mut description = Vec::new();
        let mut in_columns = false;
        for line in leading_comments(sql) {
            if in_columns {
                if let Some((name, definition)) = line.split_once(':') {
                    doc.columns
                        .push((name.trim().to_string(), definition.trim().to_string()));
                }
            } else if let Some(grain) = line.strip_prefix("grain:") {
                doc.grain = grain.trim().to_string();
            } else if line.trim_end() == "columns:" {
                in_columns = true;
            } else if !line.is_empty() && !line.starts_with("materialized:") {
                description.push(line);
            }
        }
        doc.description = description.join(" ");
        doc
    }

    /// Checks the documented columns against the columns the query returns.
    pub(crate) fn check_columns(&self, returned: &[String]) -> std::result::Result<(), String> {
        let documented: Vec<&str> = self.columns.iter().map(|(name, _)| name.as_str()).collect();
        if documented == returned.iter().map(String::as_str).collect::<Vec<_>>() {
            return Ok(());
        }
        let undocumented: Vec<&String> = returned
            .iter()
            .filter(|c| !documented.contains(&c.as_str()))
            .collect();
        let stale: Vec<&&str> = documented
            .iter()
            .filter(|c| !returned.iter().any(|r| r == **c))
            .collect();
        Err(format!(
            "the header's columns: list must name every output column once, in order; \
             returned but undocumented: {undocumented:?}; documented but not returned: {stale:?}; \
             returned: {returned:?}"
        ))
    }
}

/// Reads `-- materialized: ephemeral` (or `table`, the default) from the leading comments.
fn parse_materialized(model: &str, file: &str, sql: &str) -> Result<Materialized> {
    for line in leading_comments(sql) {
        if let Some(value) = line.strip_prefix("materialized:") {
            return match value.trim() {
                "table" => Ok(Materialized::Table),
                "ephemeral" => Ok(Materialized::Ephemeral),
                other => Err(Error::BadModel {
                    model: model.into(),
                    file: file.into(),
                    reason: format!("materialized must be table or ephemeral, not {other}"),
                }),
            };
        }
    }
    Ok(Materialized::Table)
}

/// The text of the `--` comment lines before the first line of SQL.
pub(crate) fn leading_comments(sql: &str) -> impl Iterator<Item = &str> {
    sql.lines()
        .map(str::trim)
        .take_while(|line| line.is_empty() || line.starts_with("--"))
        .filter_map(|line| line.strip_prefix("--").map(str::trim))
}

/// Parses one model and finds the tables it reads.
pub(crate) fn parse_model(name: &str, file: &str, sql: String) -> Result<Model> {
    let bad = |reason: String| Error::BadModel {
        model: name.into(),
        file: file.into(),
        reason,
    };
    let materialized = parse_materialized(name, file, &sql)?;
    let mut statements = DFParser::parse_sql(&sql).map_err(|e| bad(format!("SQL syntax error: {e}")))?;
    if statements.len() != 1 {
        return Err(bad(format!(
            "a model holds exactly one select statement, this file holds {}",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    match &statement {
        Statement::Statement(s) if matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_)) => {}
        _ => {
            return Err(bad(
                "a model is a select (a query), not another kind of statement".into(),
            ));
        }
    }
    let (tables, _ctes) = resolve_table_references(&statement, true).map_err(|e| bad(e.to_string()))?;
    let reads: BTreeSet<String> = tables.iter().map(|t| t.to_string()).collect();
    Ok(Model {
        name: name.into(),
        file: file.into(),
        doc: ModelDoc::parse(&sql),
        sql,
        materialized,
        reads: reads.into_iter().collect(),
        tests: None,
    })
}

/// Finds every `.sql` file below `dir` (subfolders included) and parses it.
pub fn discover(dir: &Path) -> Result<Vec<Model>> {
    let mut files = Vec::new();
    collect_sql_files(dir, &mut files)?;
    files.sort();
    let mut by_name: BTreeMap<String, Model> = BTreeMap::new();
    for path in files {
        let file = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let sql = std::fs::read_to_string(&path).map_err(|source| Error::ModelUnreadable {
            path: path.clone(),
            source,
        })?;
        if let Some(first) = by_name.get(&name) {
            return Err(Error::DuplicateModel {
                name,
                first: first.file.clone(),
                second: file,
            });
        }
        let mut model = parse_model(&name, &file, sql)?;
        model.tests = crate::transform::data_tests::load(&path, &file)?;
        by_name.insert(name, model);
    }
    Ok(by_name.into_values().collect())
}

fn collect_sql_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::ModelUnreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| Error::ModelUnreadable {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.is_dir() {
            collect_sql_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "sql") {
            out.push(path);
        }
    }
    Ok(())
}

/// Orders models so each comes after the models it reads (ties by name, so the order is
/// stable). `known` are the other tables a model may read (inputs, `run_context`).
pub fn order(models: Vec<Model>, known: &BTreeSet<String>) -> Result<Vec<Model>> {
    let names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
    for model in &models {
        for table in &model.reads {
            if !names.contains(table) && !known.contains(table) {
                return Err(Error::UnknownTable {
                    model: model.name.clone(),
                    file: model.file.clone(),
                    table: table.clone(),
                });
            }
        }
    }
    let mut remaining: BTreeMap<String, Model> = models.into_iter().map(|m| (m.name.clone(), m)).collect();
    let mut ordered: Vec<Model> = Vec::with_capacity(remaining.len());
    let mut done: BTreeSet<String> = BTreeSet::new();
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .values()
            .filter(|m| m.reads.iter().all(|t| !names.contains(t) || done.contains(t)))
            .map(|m| m.name.clone())
            .collect();
        if ready.is_empty() {
            return Err(Error::ModelCycle {
                files: find_cycle(&remaining),
            });
        }
        for name in ready {
            let model = remaining.remove(&name).expect("ready models are remaining");
            done.insert(name);
            ordered.push(model);
        }
    }
    Ok(ordered)
}

/// One cycle among models that cannot be ordered, as file names, first file repeated last.
fn find_cycle(remaining: &BTreeMap<String, Model>) -> Vec<String> {
    let start = remaining.keys().next().expect("a cycle has models").clone();
    let mut path: Vec<String> = vec![start.clone()];
    let mut current = start;
    loop {
        let next = remaining[&current]
            .reads
            .iter()
            .find(|t| remaining.contains_key(*t))
            .expect("a model left unordered reads another one left")
            .clone();
        if let Some(at) = path.iter().position(|n| *n == next) {
            let mut cycle: Vec<String> = path[at..].iter().map(|n| remaining[n].file.clone()).collect();
            cycle.push(remaining[&next].file.clone());
            return cycle;
        }
        path.push(next.clone());
        current = next;
    }
}

/// The SQL models under `dir` that `selection` needs (all when empty), in run order: what the
/// transform and the features-as-of path both start from.
pub fn load(dir: &Path, selection: &[String]) -> Result<Vec<Model>> {
    let known = crate::input::catalog::known_tables();
    select(order(discover(dir)?, &known)?, selection)
}

/// The selected models and every model they read, in run order. An empty selection is all.
pub fn select(ordered: Vec<Model>, selection: &[String]) -> Result<Vec<Model>> {
    if selection.is_empty() {
        return Ok(ordered);
    }
    let by_name: BTreeMap<&str, &Model> = ordered.iter().map(|m| (m.name.as_str(), m)).collect();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = Vec::new();
    for name in selection {
        if !by_name.contains_key(name.as_str()) {
            return Err(Error::UnknownSelection { name: name.clone() });
        }
        stack.push(name.clone());
    }
    while let Some(name) = stack.pop() {
        if wanted.insert(name.clone())
            && let Some(model) = by_name.get(name.as_str())
        {
            stack.extend(
                model
                    .reads
                    .iter()
                    .filter(|t| by_name.contains_key(t.as_str()))
                    .cloned(),
            );
        }
    }
    Ok(ordered.into_iter().filter(|m| wanted.contains(&m.name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(name: &str, sql: &str) -> Model {
        parse_model(name, &format!("{name}.sql"), sql.to_string()).unwrap()
    }

    fn known() -> BTreeSet<String> {
        ["orders", "run_context"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ctes_are_not_dependencies() {
        let m = model(
            "a",
            "with orders_by_day as (select * from orders) select * from orders_by_day join b on true",
        );
        assert_eq!(m.reads, vec!["b".to_string(), "orders".to_string()]);
    }

    #[test]
    fn models_run_after_what_they_read() {
        let models = vec![
            model("c", "select * from b"),
            model("b", "select * from a join run_context on true"),
            model("a", "select * from orders"),
        ];
        let names: Vec<String> = order(models, &known())
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn a_cycle_names_its_files() {
        let models = vec![
            model("a", "select * from c"),
            model("b", "select * from a"),
            model("c", "select * from b"),
            model("d", "select * from orders"),
        ];
        match order(models, &known()) {
            Err(Error::ModelCycle { files }) => {
                assert_eq!(files.len(), 4, "{files:?}");
                assert_eq!(files.first(), files.last());
                assert!(!files.contains(&"d.sql".to_string()));
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_table_names_the_model() {
        let err = order(vec![model("a", "select * from ordres")], &known()).unwrap_err();
        assert!(
            matches!(err, Error::UnknownTable { ref model, ref table, .. } if model == "a" && table == "ordres")
        );
    }

    #[test]
    fn selection_brings_its_upstream_models() {
        let models = vec![
            model("a", "select * from orders"),
            model("b", "select * from a"),
            model("c", "select * from orders"),
        ];
        let ordered = order(models, &known()).unwrap();
        let names: Vec<String> = select(ordered, &["b".into()])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn header_marks_ephemeral_models_and_rejects_typos() {
        assert_eq!(
            model("a", "-- grain: x\n-- materialized: ephemeral\nselect 1").materialized,
            Materialized::Ephemeral
        );
        assert_eq!(model("a", "select 1").materialized, Materialized::Table);
        assert!(parse_model("a", "a.sql", "-- materialized: view\nselect 1".into()).is_err());
    }

    #[test]
    fn the_header_is_the_dictionary_entry() {
        let m = model(
            "a",
            "-- Orders per day.\n-- Second line.\n-- grain: one row per day\n-- materialized: table\n\
             -- columns:\n--   day: the UTC day\n--   orders: orders placed: any status\nselect 1",
        );
        assert_eq!(m.doc.description, "Orders per day. Second line.");
        assert_eq!(m.doc.grain, "one row per day");
        assert_eq!(
            m.doc.columns,
            vec![
                ("day".into(), "the UTC day".into()),
                ("orders".into(), "orders placed: any status".into())
            ]
        );
        assert!(m.doc.check_columns(&["day".into(), "orders".into()]).is_ok());
        let err = m
            .doc
            .check_columns(&["day".into(), "revenue".into()])
            .unwrap_err();
        assert!(err.contains("revenue") && err.contains("orders"), "{err}");
    }

    #[test]
    fn syntax_errors_and_non_queries_are_bad_models() {
        assert!(matches!(
            parse_model("a", "a.sql", "selec 1".into()),
            Err(Error::BadModel { .. })
        ));
        assert!(matches!(
            parse_model("a", "a.sql", "drop table orders".into()),
            Err(Error::BadModel { .. })
        ));
        assert!(matches!(
            parse_model("a", "a.sql", "select 1; select 2".into()),
            Err(Error::BadModel { .. })
        ));
    }
}
