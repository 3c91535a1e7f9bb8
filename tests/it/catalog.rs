//! The catalog BI tools read (`_catalog/`), the descriptions in the files, and the readers the
//! docs name (docs/guide/readers/), each run for real from PyPI: DuckDB, pyarrow, Polars,
//! SQLAlchemy through duckdb-engine, and PySpark.
//!
//! One output for every test: the sample's nights of 2026-06-28 and 06-29, then 06-30 with a
//! data test that fails, so the latest complete night is 06-29 while some tables hold a newer
//! partition, the case where reading "the newest partition" goes wrong.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use growth_jobs::sample::{self, SampleOptions};

use crate::support::{Workspace, copy_dir, repo_models, stderr};

const COMPLETE: &str = "2026-06-29";
const FAILED: &str = "2026-06-30";

struct Nights {
    ws: Workspace,
}

/// The shared output, built by the first test that needs it.
fn nights() -> &'static Nights {
    static NIGHTS: OnceLock<Nights> = OnceLock::new();
    NIGHTS.get_or_init(|| {
        let ws = Workspace::new();
        sample::generate(&SampleOptions::embedded(ws.input())).unwrap();
        copy_dir(&repo_models(), &ws.models());
        let good = ws
            .command_with_models(env!("CARGO_BIN_EXE_nightly"), &ws.models())
            .args(["--from", "2026-06-28", "--to", COMPLETE])
            .output()
            .unwrap();
        assert!(good.status.success(), "{}", stderr(&good));
        // daily_sales fails a data test and is not published; the tables that pass are.
        ws.fail_daily_sales_outside_my();
        let failed = ws
            .command_with_models(env!("CARGO_BIN_EXE_nightly"), &ws.models())
            .args(["--date", FAILED])
            .output()
            .unwrap();
        assert_eq!(failed.status.code(), Some(5), "{}", stderr(&failed));
        Nights { ws }
    })
}

impl Nights {
    fn output(&self) -> PathBuf {
        self.ws.output()
    }

    /// Rows per published table of a night, from its manifest.
    fn rows(&self, run_date: &str) -> Vec<(String, u64)> {
        let manifest = self.ws.manifest(run_date);
        let mut rows: std::collections::BTreeMap<String, u64> = Default::default();
        for model in manifest["models"].as_array().unwrap() {
            if model["skipped"].is_null() && !model["output"].is_null() {
                *rows.entry(model["model"].as_str().unwrap().into()).or_default() +=
                    model["output"]["rows"].as_u64().unwrap();
            }
        }
        for job in manifest["jobs"].as_array().unwrap() {
            for table in job["tables"].as_array().unwrap() {
                *rows.entry(table["table"].as_str().unwrap().into()).or_default() +=
                    table["rows"].as_u64().unwrap();
            }
        }
        rows.into_iter().collect()
    }

    /// The complete night's tables and rows as a Python literal.
    fn expected(&self) -> String {
        let rows = self.rows(COMPLETE);
        assert!(rows.len() >= 25, "{rows:?}");
        format!(
            "{{{}}}",
            rows.iter()
                .map(|(table, n)| format!("{table:?}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Runs a Python script with the output folder and the expected rows as arguments; returns
/// what it printed.
fn python(script: &str, what: &str) -> String {
    let nights = nights();
    let result = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(nights.output())
        .arg(nights.expected())
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{what} failed (tests/install.sh installs it):\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    String::from_utf8_lossy(&result.stdout).into_owned()
}

#[test]
fn a_failed_data_test_leaves_latest_and_the_catalog_on_the_previous_complete_night() {
    let nights = nights();
    let out = nights.output();
    let pointer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("_latest.json")).unwrap()).unwrap();
    assert_eq!(pointer["run_date"], COMPLETE);
    assert_eq!(nights.ws.manifest(FAILED)["status"], "failed");
    // The failed night did publish tables whose tests passed: a newest partition that is not
    // the latest complete night.
    assert!(
        out.join(format!("rfm_segments/run_date={FAILED}/part-0.parquet"))
            .exists()
    );
    assert!(!out.join(format!("daily_sales/run_date={FAILED}")).exists());
    for script in ["duckdb.sql", "spark.sql", "hive.sql", "trino.sql"] {
        let text = std::fs::read_to_string(out.join("_catalog").join(script)).unwrap();
        assert!(text.contains(COMPLETE), "{script}");
        assert!(!text.contains(FAILED), "{script} names the failed night");
        assert!(
            text.contains("rfm_segments_history") && text.contains("churn_scores"),
            "{script}"
        );
    }
}

#[test]
fn duckdb_runs_the_catalog_and_shows_every_description_and_the_latest_rows() {
    let printed = python(
        r##"
import duckdb, os, sys
out, expected = sys.argv[1], eval(sys.argv[2])
con = duckdb.connect()
con.execute(open(os.path.join(out, "_catalog", "duckdb.sql")).read())
views = {name: comment for name, comment in con.execute("select view_name, comment from duckdb_views() where not internal").fetchall()}
for table, rows in expected.items():
    assert views.get(table), (table, "no view or no description")
    assert views.get(table + "_history"), (table, "no history view")
    latest, dates = con.execute(f'select count(*), count(distinct run_date) from "{table}"').fetchone()
    assert latest == rows, (table, latest, rows)
    assert dates == (1 if rows else 0), (table, dates)
    for view in (table, table + "_history"):
        columns = con.execute("select column_name, comment from duckdb_columns() where table_name = ?", [view]).fetchall()
        assert len(columns) > 1, (view, columns)
        missing = [c for c, comment in columns if not comment]
        assert not missing, (view, "columns without a description", missing)
# The history holds every night the table was published in, each row with its night.
nights = con.execute('select count(distinct run_date) from "rfm_segments_history"').fetchone()[0]
assert nights == 3, nights
sales = con.execute('select count(distinct run_date) from "daily_sales_history"').fetchone()[0]
assert sales == 2, sales
comment = con.execute("select comment from duckdb_columns() where table_name = 'churn_scores' and column_name = 'churn_probability'").fetchone()[0]
print("churn_probability:", comment)
"##,
        "DuckDB",
    );
    assert!(printed.contains("churn_probability: P(no purchase"), "{printed}");
}

#[test]
fn pyarrow_and_polars_read_the_latest_partition_with_its_descriptions() {
    python(
        r##"
import json, os, sys
import pyarrow.parquet as pq, polars as pl
out, expected = sys.argv[1], eval(sys.argv[2])
latest = json.load(open(os.path.join(out, "_latest.json")))["run_date"]
for table, rows in expected.items():
    folder = os.path.join(out, table, f"run_date={latest}")
    arrow = pq.read_table(folder)
    assert arrow.num_rows == rows, (table, arrow.num_rows, rows)
    polars = pl.scan_parquet(os.path.join(folder, "*.parquet")).select(pl.len()).collect().item()
    assert polars == rows, (table, polars, rows)
    for name in sorted(os.listdir(folder)):
        schema = pq.read_schema(os.path.join(folder, name))
        assert schema.metadata and schema.metadata.get(b"comment"), (table, name, "no table description")
        kv = pq.read_metadata(os.path.join(folder, name)).metadata
        assert kv.get(b"comment") == schema.metadata[b"comment"], (table, name)
        missing = [f.name for f in schema if not (f.metadata or {}).get(b"comment")]
        assert not missing, (table, name, "columns without a description", missing)
"##,
        "pyarrow and Polars",
    );
}

#[test]
fn a_sqlalchemy_inspector_through_duckdb_engine_lists_the_views_and_their_columns() {
    let nights = nights();
    let database = nights.ws.dir.path().join("bi.duckdb");
    let script = r##"
import duckdb, os, sys
import sqlalchemy
out, expected, database = sys.argv[1], eval(sys.argv[2]), sys.argv[3]
con = duckdb.connect(database)
con.execute(open(os.path.join(out, "_catalog", "duckdb.sql")).read())
con.close()
engine = sqlalchemy.create_engine(f"duckdb:///{database}")
inspector = sqlalchemy.inspect(engine)
views = set(inspector.get_view_names())
for table in expected:
    assert table in views and table + "_history" in views, (table, sorted(views))
columns = [c["name"] for c in inspector.get_columns("churn_scores")]
assert columns == ["customer_id", "churn_probability", "risk_tier", "top_churn_drivers", "model", "run_date"], columns
with engine.connect() as connection:
    rows = connection.execute(sqlalchemy.text("select count(*) from kpi_daily")).scalar()
assert rows == expected["kpi_daily"], (rows, expected["kpi_daily"])
"##;
    let result = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(nights.output())
        .arg(nights.expected())
        .arg(&database)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "SQLAlchemy through duckdb-engine failed (tests/install.sh installs them):\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn spark_runs_the_ddl_and_describes_every_column() {
    let printed = python(
        r##"
import os, sys
from pyspark.sql import SparkSession
out, expected = sys.argv[1], eval(sys.argv[2])
spark = (SparkSession.builder.master("local[2]").appName("growth-catalog")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.warehouse.dir", os.path.join(out, "..", "spark-warehouse"))
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
script = open(os.path.join(out, "_catalog", "spark.sql")).read()
for statement in script.split(";\n"):
    sql = "\n".join(l for l in statement.splitlines() if not l.startswith("--")).strip()
    if sql:
        spark.sql(sql)
for table, rows in expected.items():
    latest = spark.table(table).count()
    assert latest == rows, (table, latest, rows)
    described = spark.sql(f"describe table {table}_history").collect()
    columns = [r for r in described if r.col_name and not r.col_name.startswith("#")]
    missing = [r.col_name for r in columns if not r.comment]
    assert not missing, (table, "columns without a comment", missing)
history = spark.sql("select count(distinct run_date) from rfm_segments_history").first()[0]
assert history == 3, history
print("checked", len(expected), "tables")
"##,
        "PySpark",
    );
    assert!(printed.contains("checked"), "{printed}");
}
