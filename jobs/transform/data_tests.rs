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
//!
//! As in dbt, a test's `severity` is `error` (the default: past `error_if` the model is not
//! published) or `warn` (past `warn_if` the run warns and publishes); both thresholds default
//! to `!= 0`. A failing test's rows (up to `store_failures`, 100 by default; 0 stores none) are
//! stored as Parquet under `_test_failures/<model>/run_date=D/`, for every test that reads
//! rows (not `row_count` and `freshness`). The model's file sets them for all its tests, and
//! `[config."<test>"]`, by the name the manifest shows, for one:
//!
//! ```toml
//! severity = "warn"
//! store_failures = 20
//! [config."expect(revenue_usd >= 0)"]
//! severity = "error"
//! error_if = "> 10"
//! warn_if = "> 0"
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::DFSchema;
use datafusion::prelude::SessionContext;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::output::manifest::{Severity, TestOutcome, TestStatus};

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
    /// The severity of the model's tests that `config` does not set.
    pub severity: Severity,
    /// Failing rows stored per failing test, unless `config` says otherwise.
    pub store_failures: Option<u64>,
    /// Per test, by the name the manifest shows (`not_null(order_date)`, ...).
    pub config: BTreeMap<String, TestConfig>,
}

/// How one test is judged and what of it is kept.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestConfig {
    pub severity: Option<Severity>,
    pub warn_if: Option<Threshold>,
    pub error_if: Option<Threshold>,
    pub store_failures: Option<u64>,
}

/// Failing rows stored per failing test when nothing says otherwise.
pub const STORE_FAILURES: u64 = 100;

/// A condition on a test's failing count, written as dbt writes it: `!= 0`, `> 10`, `>= 5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Threshold {
    op: Comparison,
    value: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    Above,
    AtLeast,
    Below,
    AtMost,
    Equal,
    NotEqual,
}

impl Threshold {
    /// `!= 0`: any failing row.
    pub const ANY: Threshold = Threshold {
        op: Comparison::NotEqual,
        value: 0,
    };

    /// Whether `count` failing rows meet the condition.
    pub fn met_by(&self, count: u64) -> bool {
        match self.op {
            Comparison::Above => count > self.value,
            Comparison::AtLeast => count >= self.value,
            Comparison::Below => count < self.value,
            Comparison::AtMost => count <= self.value,
            Comparison::Equal => count == self.value,
            Comparison::NotEqual => count != self.value,
        }
    }
}

impl TryFrom<String> for Threshold {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        let trimmed = text.trim();
        // Two-character operators first, so `>=` is not read as `>` and `=5`.
        let operators = [
            (">=", Comparison::AtLeast),
            ("<=", Comparison::AtMost),
            ("!=", Comparison::NotEqual),
            ("<>", Comparison::NotEqual),
            ("==", Comparison::Equal),
            (">", Comparison::Above),
            ("<", Comparison::Below),
            ("=", Comparison::Equal),
        ];
        let (op, rest) = operators
            .iter()
            .find_map(|(symbol, op)| trimmed.strip_prefix(symbol).map(|rest| (*op, rest)))
            .ok_or_else(|| {
                format!("{text:?}: write a comparison and a count, such as \"!= 0\" or \"> 10\"")
            })?;
        let value = rest
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{text:?}: the count after the comparison must be a whole number"))?;
        Ok(Threshold { op, value })
    }
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
    /// A query returning the rows that break it, in a fixed order; none for the tests that
    /// judge the whole table (row_count, freshness).
    pub failures_sql: Option<String>,
    pub severity: Severity,
    pub warn_if: Threshold,
    pub error_if: Threshold,
    /// Failing rows to store when it fails.
    pub store_failures: u64,
}

/// What running a test gave: the outcome for the manifest, and its failing rows to store.
pub struct Ran {
    pub outcome: TestOutcome,
    pub failures: Vec<RecordBatch>,
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

/// A test's queries before its configuration is applied.
struct Query {
    name: String,
    sql: String,
    failures_sql: Option<String>,
}

impl DataTests {
    /// The tests as queries over `table`, checked against the model's columns; a test naming
    /// a column the model does not return, or a `[config]` naming no test, is a model error.
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
        let mut queries = Vec::new();
        let t = q(table);
        // The failing rows of a row-level test, every column, in the order of all of them.
        let every = (1..=schema.fields().len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let rows = |condition: String| {
            Some(format!(
                "select * from {t} as child where {condition} order by {every}"
            ))
        };
        for column in &self.not_null {
            check(column)?;
            let condition = format!("{} is null", q(column));
            queries.push(Query {
                name: format!("not_null({column})"),
                sql: format!("select count(*) from {t} as child where {condition}"),
                failures_sql: rows(condition),
            });
        }
        for columns in &self.unique {
            for c in columns {
                check(c)?;
            }
            let keys = columns.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
            let repeated =
                format!("select {keys}, count(*) as copies from {t} group by {keys} having count(*) > 1");
            queries.push(Query {
                name: format!("unique({})", columns.join(", ")),
                sql: format!("select coalesce(sum(copies), 0) from ({repeated})"),
                failures_sql: Some(format!("{repeated} order by {keys}")),
            });
        }
        for (column, values) in &self.accepted_values {
            check(column)?;
            let list = values.iter().map(|v| literal(v)).collect::<Vec<_>>().join(", ");
            let condition = format!(
                "{0} is not null and cast({0} as varchar) not in ({list})",
                q(column)
            );
            queries.push(Query {
                name: format!("accepted_values({column})"),
                sql: format!("select count(*) from {t} as child where {condition}"),
                failures_sql: rows(condition),
            });
        }
        for (column, target) in &self.relationships {
            check(column)?;
            let (other, field) = target
                .split_once('.')
                .ok_or_else(|| format!("relationships.{column} = {target:?}: write table.column"))?;
            let condition = format!(
                "child.{c} is not null and not exists (select 1 from {o} as parent where parent.{f} = child.{c})",
                c = q(column),
                o = q(other),
                f = q(field)
            );
            queries.push(Query {
                name: format!("relationships({column} -> {target})"),
                sql: format!("select count(*) from {t} as child where {condition}"),
                failures_sql: rows(condition),
            });
        }
        if let Some(bounds) = &self.row_count {
            let min = bounds.min.unwrap_or(0);
            let max = bounds
                .max
                .map_or(String::new(), |m| format!(" or count(*) > {m}"));
            queries.push(Query {
                name: format!(
                    "row_count(min {min}{})",
                    bounds.max.map_or(String::new(), |m| format!(", max {m}"))
                ),
                sql: format!("select case when count(*) < {min}{max} then 1 else 0 end from {t}"),
                failures_sql: None,
            });
        }
        if let Some(fresh) = &self.freshness {
            check(&fresh.column)?;
            let oldest = run_date - chrono::Days::new(u64::from(fresh.max_age_days));
            queries.push(Query {
                name: format!("freshness({} within {} days of {run_date})", fresh.column, fresh.max_age_days),
                sql: format!(
                    "select case when max(cast({c} as date)) is null or max(cast({c} as date)) < date '{oldest}' \
                     then 1 else 0 end from {t}",
                    c = q(&fresh.column)
                ),
                failures_sql: None,
            });
        }
        for expected in &self.expect {
            let condition = format!("not coalesce(({expected}), true)");
            queries.push(Query {
                name: format!("expect({expected})"),
                sql: format!("select count(*) from {t} as child where {condition}"),
                failures_sql: rows(condition),
            });
        }
        if let Some(unknown) = self
            .config
            .keys()
            .find(|name| !queries.iter().any(|query| &query.name == *name))
        {
            return Err(format!(
                "[config.{unknown:?}] names no test of the model; its tests are: {}",
                queries
                    .iter()
                    .map(|query| query.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(queries
            .into_iter()
            .map(|query| {
                let config = self.config.get(&query.name).cloned().unwrap_or_default();
                Test {
                    severity: config.severity.unwrap_or(self.severity),
                    warn_if: config.warn_if.unwrap_or(Threshold::ANY),
                    error_if: config.error_if.unwrap_or(Threshold::ANY),
                    store_failures: config
                        .store_failures
                        .or(self.store_failures)
                        .unwrap_or(STORE_FAILURES),
                    name: query.name,
                    sql: query.sql,
                    failures_sql: query.failures_sql,
                }
            })
            .collect())
    }
}

impl Test {
    /// Runs the test in a session where the model's table is registered: counts the failing
    /// rows, judges them by the thresholds, and reads up to `store_failures` of them when the
    /// test did not pass.
    pub async fn run(&self, ctx: &SessionContext, model: &str, file: &str) -> Result<Ran> {
        let failed = |reason: String| Error::BadModel {
            model: model.into(),
            file: file.replace(".sql", SUFFIX),
            reason: format!("test {}: {reason}", self.name),
        };
        let collect = async |sql: &str| {
            ctx.sql(sql)
                .await
                .map_err(|e| failed(e.to_string()))?
                .collect()
                .await
                .map_err(|e| failed(e.to_string()))
        };
        let batches = collect(&self.sql).await?;
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
        let status = self.judge(count);
        let failures = match &self.failures_sql {
            Some(sql) if status != TestStatus::Pass && self.store_failures > 0 => {
                collect(&format!("{sql} limit {}", self.store_failures))
                    .await?
                    .into_iter()
                    .filter(|b| b.num_rows() > 0)
                    .collect()
            }
            _ => Vec::new(),
        };
        Ok(Ran {
            outcome: TestOutcome {
                test: self.name.clone(),
                failing_rows: count,
                severity: self.severity,
                status: Some(status),
                stored: None,
            },
            failures,
        })
    }

    /// What `count` failing rows make of the test: dbt's rule, where an error-severity test is
    /// an error past `error_if` and else a warning past `warn_if`, and a warn-severity test
    /// never errs.
    pub fn judge(&self, count: u64) -> TestStatus {
        if self.severity == Severity::Error && self.error_if.met_by(count) {
            TestStatus::Error
        } else if self.warn_if.met_by(count) {
            TestStatus::Warn
        } else {
            TestStatus::Pass
        }
    }

    /// The file name its failing rows are stored under: its position among the model's tests
    /// and its name, kept to letters, digits and `_`.
    pub fn failures_file(&self, position: usize) -> String {
        let mut slug = String::new();
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug: String = slug.trim_matches('-').chars().take(60).collect();
        format!("{:02}-{slug}.parquet", position + 1)
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

    #[test]
    fn thresholds_read_as_dbt_writes_them_and_judge_as_dbt_does() {
        let t = |text: &str| Threshold::try_from(text.to_string());
        assert!(t("!= 0").unwrap().met_by(1) && !t("!= 0").unwrap().met_by(0));
        assert!(t(">= 10").unwrap().met_by(10) && !t(">= 10").unwrap().met_by(9));
        assert!(t(">10").unwrap().met_by(11) && !t(">10").unwrap().met_by(10));
        assert!(t("= 3").unwrap().met_by(3) && t("== 3").unwrap().met_by(3));
        assert!(t("<= 2").unwrap().met_by(2) && t("< 2").unwrap().met_by(1));
        assert!(t("> ten").unwrap_err().contains("whole number"));
        assert!(t("10").unwrap_err().contains("comparison"));

        let tests: DataTests = toml::from_str(
            "severity = \"warn\"\nstore_failures = 7\nnot_null = [\"day\"]\nrow_count = { min = 1 }\n\
             [config.\"row_count(min 1)\"]\nseverity = \"error\"\nerror_if = \"> 5\"\nwarn_if = \">= 1\"\nstore_failures = 0\n",
        )
        .unwrap();
        let compiled = tests.compile("t", &schema(), NaiveDate::MIN).unwrap();
        let (not_null, row_count) = (&compiled[0], &compiled[1]);
        assert_eq!((not_null.severity, not_null.store_failures), (Severity::Warn, 7));
        assert!(
            not_null
                .failures_sql
                .as_deref()
                .unwrap()
                .ends_with("order by 1, 2")
        );
        // A warn-severity test never errs; past warn_if (default != 0) it warns.
        assert_eq!(not_null.judge(1_000), TestStatus::Warn);
        assert_eq!(not_null.judge(0), TestStatus::Pass);
        // An error-severity test errs past error_if, else warns past warn_if.
        assert_eq!(
            (row_count.severity, row_count.store_failures),
            (Severity::Error, 0)
        );
        assert!(row_count.failures_sql.is_none());
        assert_eq!(row_count.judge(6), TestStatus::Error);
        assert_eq!(row_count.judge(5), TestStatus::Warn);
        assert_eq!(row_count.judge(0), TestStatus::Pass);
        // With nothing set: error on any failing row, 100 rows stored.
        let plain: DataTests = toml::from_str("not_null = [\"day\"]").unwrap();
        let plain = &plain.compile("t", &schema(), NaiveDate::MIN).unwrap()[0];
        assert_eq!(
            (plain.severity, plain.store_failures),
            (Severity::Error, STORE_FAILURES)
        );
        assert_eq!(plain.judge(1), TestStatus::Error);
        assert_eq!(plain.failures_file(0), "01-not_null-day.parquet");

        let unknown: DataTests =
            toml::from_str("not_null = [\"day\"]\n[config.\"not_null(tier)\"]\nseverity = \"warn\"\n")
                .unwrap();
        let error = unknown.compile("t", &schema(), NaiveDate::MIN).unwrap_err();
        assert!(
            error.contains("not_null(tier)") && error.contains("not_null(day)"),
            "{error}"
        );
        assert!(toml::from_str::<DataTests>("severity = \"fatal\"").is_err());
    }
}
