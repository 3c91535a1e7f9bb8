//! An outside reader (DuckDB, from PyPI) reads every table `nightly` publishes on the sample,
//! with the documented glob and Hive partitioning, and the newest whole date through the
//! documented `_latest.json`.

use std::path::Path;
use std::process::Command;

use growth_jobs::sample::{self, SampleOptions};

#[test]
fn duckdb_reads_every_table_nightly_publishes_on_the_sample() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sample");
    sample::generate(&SampleOptions::embedded(input.clone())).unwrap();
    let output = dir.path().join("out");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO_BIN_EXE_nightly"))
        .args([
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ])
        .args(["--models", repo.join("sql").to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success(), "nightly failed: {status}");

    // DuckDB checks each table against the manifest: same tables, same row counts, the
    // run_date partition column present.
    let script = r#"
import duckdb, glob, json, os, sys
out = sys.argv[1]
con = duckdb.connect()
manifests = glob.glob(os.path.join(out, "_manifests", "run_date=*", "manifest.json"))
assert len(manifests) == 1, manifests
manifest = json.load(open(manifests[0]))
# The SQL models' tables and the model stages' tables; a table several stages write
# (model_metrics) has one file per stage, read together.
tables = {}
for m in manifest["models"]:
    if m["output"]:
        tables.setdefault(m["model"], []).append(m["output"])
for job in manifest["jobs"]:
    for t in job["tables"]:
        tables.setdefault(t["table"], []).append(t)
assert tables, "nightly published no table"
for name in ["customer_features", "customer_segments", "segment_profiles", "churn_scores", "model_metrics"]:
    assert name in tables, (name, sorted(tables))
for name, parts in tables.items():
    pattern = os.path.join(out, name, "*", "*.parquet")
    rows, dates = con.execute(
        f"select count(*), count(distinct run_date) from read_parquet('{pattern}', hive_partitioning = true)"
    ).fetchone()
    assert rows == sum(p["rows"] for p in parts), (name, rows, parts)
    assert dates == (1 if rows else 0), (name, dates)
    columns = [c[0] for c in con.execute(f"describe select * from read_parquet('{pattern}', hive_partitioning = true)").fetchall()]
    expected = [c["name"] for c in parts[0]["schema"]] + ["run_date"]
    assert columns == expected, (name, columns, expected)
    print(f"{name}: {rows} rows")
# The documented way to read the newest whole date: the run_date _latest.json names.
latest, = con.execute(f"select run_date from read_json('{os.path.join(out, '_latest.json')}')").fetchone()
assert str(latest) == manifest["run_date"], (latest, manifest["run_date"])
pattern = os.path.join(out, "daily_sales", "*", "*.parquet")
latest_rows, = con.execute(
    f"select count(*) from read_parquet('{pattern}', hive_partitioning = true) "
    f"where run_date = (select run_date from read_json('{os.path.join(out, '_latest.json')}'))"
).fetchone()
assert latest_rows == sum(p["rows"] for p in tables["daily_sales"]), latest_rows
for name in tables:
    pointer = json.load(open(os.path.join(out, name, "_latest.json")))
    assert pointer == {"run_date": manifest["run_date"], "path": f"{name}/run_date={manifest['run_date']}"}, (name, pointer)
"#;
    let result = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "DuckDB could not read the outputs (is the duckdb package installed? .ci/run installs it):\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let printed = String::from_utf8_lossy(&result.stdout);
    assert!(printed.contains("daily_sales:"), "{printed}");
}
