//! Data tests, as dbt has them: declared next to a model in `<model>.tests.toml`, run right
//! after the model is built (against the file that would be published), and blocking: a model
//! with a failing test is not published, nor is any model downstream of it.
//!
//! ```toml
//! # sql/marts/daily_sales.tests.toml
//! not_null = ["order_date", "market", "orders"]
//! unique = [["order_date", "market"]]
//! expect = ["purchases <= orders", "revenue_usd >= 0"]
//! row_count = { min = 1 }
//! freshness = { column = "order_date", max_age_days = 7 }
//! [accepted_values]
//! value_tier = ["high", "mid", "low"]
//! [relationships]
//! customer_id = "stg_customers.customer_id"
//! ```
//!
//! Every test is one SQL query counting the rows that break it, so the manifest can say which
//! test failed on how many rows.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::output::manifest::TestOutcome;

/// The file suffix of a model's tests, next to its `.sql`.
pub(crate) const SUFFIX: &str = ".tests.toml";

/// A model's declared tests.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataTests {
    /// Columns that must never be null.
    pub not_null: Vec<String>,
    /// Column sets whose values must not repeat (null counts as a value).
    pub unique: Vec<Vec<String>>,
    /// Column to the values it may take (null allowed: pair with not_null to forbid it).
    pub accepted_values: BTreeMap<String, Vec<String>>,
    /// Column to `table.column`: every non-null value must be found there.
    pub relationships: BTreeMap<String, String>,
    /// Bounds on the row count.
    pub row_count: Option<RowCount>,
    /// The newest value of a date or timestamp column must be this recent.
    pub freshness: Option<Freshness>,
    /// SQL conditions every row must meet (a null result counts as met, as in dbt).
    pub expect: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowCount {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    pub column: String,
    /// Days the newest value may lag the run date.
    pub max_age_days: u32,
}

/// One test, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    /// `not_null(order_date)`, `unique(order_date, market)`, ...
    pub name: String,
    /// A query returning one count: the rows that break the test.
    pub sql: String,
}

/// Reads the tests next to a model file, when there are any.
pub fn load(sql_file: &Path, shown: &str) -> Result<Option<DataTests>> {
    let stem = sql_file.file_stem().unwrap_or_default().to_string_lossy();
    let path = sql_file.with_file_name(format!("{stem}{SUFFIX}"));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(Error::io(format!("reading {}", path.display()))(source)),
    };
    toml::from_str(&text).map(Some).map_err(|e| Error::BadConfig {
        file: shown.replace(".sql", SUFFIX),
        reason: e.to_string(),
    })
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

impl DataTests {
    /// The tests as queries over `table`, checked against the model's columns; a test naming
    /// a column the model does not return is a model error.
    pub(crate) fn compile(
        &self,
        table: &str,
        schema: &DFSchema,
        run_date: NaiveDate,
    ) -> std::result::Result<Vec<Test>, String> {
        let has = |c: &str| schema.fields().iter().any(|f| f.name() == c);
        let check = |c: &str| {
            if has(c) {
                Ok(())
            } else {
                Err(format!(
                    "a test names column {c}, which the model does not return"
                ))
            }
        };
        let mut tests = Vec::new();
        let t = q(table);
        for column in &self.not_null {
            check(column)?;
            tests.push(Test {
                name: format!("not_null({column})"),
                sql: format!("select count(*) from {t} where {} is null", q(column)),
            });
        }
        for columns in &self.unique {
            for c in columns {
                check(c)?;
            }
            let keys = columns.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
            tests.push(Test {
                name: format!("unique({})", columns.join(", ")),
                sql: format!(
                    "select coalesce(sum(n), 0) from (select count(*) as n from {t} group by {keys} having count(*) > 1)"
                ),
            });
        }
        for (column, values) in &self.accepted_values {
            check(column)?;
            let list = values.iter().map(|v| literal(v)).collect::<Vec<_>>().join(", ");
            tests.push(Test {
                name: format!("accepted_values({column})"),
                sql: format!(
                    "select count(*) from {t} where {0} is not null and cast({0} as varchar) not in ({list})",
                    q(column)
                ),
            });
        }
        for (column, target) in &self.relationships {
            check(column)?;
            let (other, field) = target
                .split_once('.')
                .ok_or_else(|| format!("relationships.{column} = {target:?}: write table.column"))?;
            tests.push(Test {
                name: format!("relationships({column} -> {target})"),
                sql: format!(
                    "select count(*) from {t} as child where child.{c} is not null and not exists \
                     (select 1 from {o} as parent where parent.{f} = child.{c})",
                    c = q(column),
                    o = q(other),
                    f = q(field)
                ),
            });
        }
        if let Some(bounds) = &self.row_count {
            let min = bounds.min.unwrap_or(0);
            let max = bounds
                .max
                .map_or(String::new(), |m| format!(" or count(*) > {m}"));
            tests.push(Test {
                name: format!(
                    "row_count(min {min}{})",
                    bounds.max.map_or(String::new(), |m| format!(", max {m}"))
                ),
                sql: format!("select case when count(*) < {min}{max} then 1 else 0 end from {t}"),
            });
        }
        if let Some(fresh) = &self.freshness {
            check(&fresh.column)?;
            let oldest = run_date - chrono::Days::new(u64::from(fresh.max_age_days));
            tests.push(Test {
                name: format!("freshness({} within {} days of {run_date})", fresh.column, fresh.max_age_days),
                sql: format!(
                    "select case when max(cast({c} as date)) is null or max(cast({c} as date)) < date '{oldest}' \
                     then 1 else 0 end from {t}",
                    c = q(&fresh.column)
                ),
            });
        }
        for condition in &self.expect {
            tests.push(Test {
                name: format!("expect({condition})"),
                sql: format!("select count(*) from {t} where not coalesce(({condition}), true)"),
            });
        }
        Ok(tests)
    }
}

impl Test {
    /// Runs the test in a session where the model's table is registered.
    pub async fn run(&self, ctx: &SessionContext, model: &str, file: &str) -> Result<TestOutcome> {
        let failed = |reason: String| Error::BadModel {
            model: model.into(),
            file: file.replace(".sql", SUFFIX),
            reason: format!("test {}: {reason}", self.name),
        };
        let batches = ctx
            .sql(&self.sql)
            .await
            .map_err(|e| failed(e.to_string()))?
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let count = batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(|b| {
                let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Int64)
                    .expect("a count casts to Int64");
                let c = c.as_primitive::<Int64Type>();
                if c.is_null(0) { 0 } else { c.value(0).max(0) as u64 }
            })
            .unwrap_or(0);
        Ok(TestOutcome {
            test: self.name.clone(),
            failing_rows: count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};

    fn schema() -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("day", DataType::Date32, true),
            Field::new("tier", DataType::Utf8, true),
        ]))
        .unwrap()
    }

    #[test]
    fn every_kind_of_test_compiles_and_unknown_columns_are_refused() {
        let tests: DataTests = toml::from_str(
            "not_null = [\"day\"]\nunique = [[\"day\", \"tier\"]]\nexpect = [\"day > date '2020-01-01'\"]\n\
             row_count = { min = 1, max = 10 }\nfreshness = { column = \"day\", max_age_days = 2 }\n\
             [accepted_values]\ntier = [\"high\", \"it's\"]\n[relationships]\ntier = \"tiers.name\"\n",
        )
        .unwrap();
        let compiled = tests
            .compile("t", &schema(), NaiveDate::from_ymd_opt(2026, 6, 30).unwrap())
            .unwrap();
        let names: Vec<&str> = compiled.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_null(day)",
                "unique(day, tier)",
                "accepted_values(tier)",
                "relationships(tier -> tiers.name)",
                "row_count(min 1, max 10)",
                "freshness(day within 2 days of 2026-06-30)",
                "expect(day > date '2020-01-01')",
            ]
        );
        assert!(compiled[2].sql.contains("'it''s'"));
        assert!(compiled[5].sql.contains("date '2026-06-28'"));
        let wrong: DataTests = toml::from_str("not_null = [\"dya\"]").unwrap();
        assert!(
            wrong
                .compile("t", &schema(), NaiveDate::MIN)
                .unwrap_err()
                .contains("dya")
        );
        assert!(toml::from_str::<DataTests>("not_nul = [\"day\"]").is_err());
    }
}
