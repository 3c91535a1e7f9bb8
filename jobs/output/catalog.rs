//! The catalog written beside the tables, so a BI tool reads one night and never adds nights up:
//! `_catalog/duckdb.sql`, `spark.sql`, `hive.sql` and `trino.sql`. Each defines, per published
//! table, `<table>`, the latest complete night (the date the output's `_latest.json` names),
//! and `<table>_history`, every night's snapshot with its `run_date`, with the table's and each
//! column's description as comments.
//!
//! Each `run_date=` partition is a whole as-of snapshot, so summing over several run dates
//! counts every row once per night: the plain names are what a dashboard should read.
//!
//! The scripts are rewritten whenever the output's pointer moves (a whole night succeeded, or
//! the date it named is being replaced), from the tables that night published and the
//! descriptions their files carry.

use chrono::NaiveDate;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use object_store::ObjectStoreExt;

use crate::error::{Error, Result};
use crate::output::described;
use crate::output::manifest::Manifest;
use crate::output::published::partition;
use crate::storage::Root;

/// The catalog's folder below the output root.
pub const CATALOG: &str = "_catalog";

/// The description of the partition column every table gets.
const RUN_DATE: &str = "The night that published this snapshot: every run_date holds the whole \
                        table as of the end of that date, so read one run_date at a time.";

/// One published table as the scripts describe it.
struct Table {
    name: String,
    description: String,
    schema: SchemaRef,
}

/// The SQL dialects the catalog is written in, each to its own file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    Spark,
    Hive,
    Trino,
}

impl Dialect {
    pub const ALL: [Dialect; 4] = [Dialect::DuckDb, Dialect::Spark, Dialect::Hive, Dialect::Trino];

    /// The dialect's name, for the scripts' headers.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::DuckDb => "DuckDB",
            Dialect::Spark => "Spark SQL",
            Dialect::Hive => "Hive",
            Dialect::Trino => "Trino",
        }
    }

    pub fn file(self) -> &'static str {
        match self {
            Dialect::DuckDb => "duckdb.sql",
            Dialect::Spark => "spark.sql",
            Dialect::Hive => "hive.sql",
            Dialect::Trino => "trino.sql",
        }
    }
}

/// Rewrites the catalog for the night `latest` (the output's whole-night pointer), or removes
/// it when no night is whole.
pub(crate) async fn write(output: &Root, latest: Option<NaiveDate>) -> Result<()> {
    let tables = match latest {
        Some(date) => match Manifest::read(output, date).await? {
            Some(manifest) => tables(output, &manifest).await?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    for dialect in Dialect::ALL {
        let file = output.path(&[CATALOG, dialect.file()]);
        match latest.filter(|_| !tables.is_empty()) {
            Some(date) => {
                output
                    .put_durable(&file, script(dialect, output, date, &tables).into_bytes())
                    .await?
            }
            None => match output.store.delete(&file).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::store(format!("removing {}", output.describe(&file)))(e)),
            },
        }
    }
    Ok(())
}

/// The tables a night published, with the schema and descriptions their files carry.
async fn tables(output: &Root, manifest: &Manifest) -> Result<Vec<Table>> {
    let mut found: Vec<Table> = Vec::new();
    for name in manifest.published_tables() {
        let folder = output.path(&[&name, &partition(manifest.run_date)]);
        let listed = output
            .store
            .list_with_delimiter(Some(&folder))
            .await
            .map_err(Error::store(format!("listing {}", output.describe(&folder))))?;
        let Some(file) = listed
            .objects
            .iter()
            .filter(|o| o.location.as_ref().ends_with(".parquet"))
            .min_by(|a, b| a.location.cmp(&b.location))
        else {
            continue;
        };
        let footer = crate::storage::parquet_footer(output, file)
            .await
            .map_err(Error::engine(format!(
                "reading the footer of {}",
                output.describe(&file.location)
            )))?;
        found.push(Table {
            description: described::comment(footer.schema.metadata())
                .unwrap_or_default()
                .to_string(),
            schema: std::sync::Arc::new(footer.schema),
            name,
        });
    }
    Ok(found)
}

/// A table's folder as the dialect's reader addresses it.
fn location(dialect: Dialect, output: &Root, table: &str) -> String {
    let root = match (&output.local, dialect) {
        (Some(folder), Dialect::Spark) => format!("file:{}", folder.display()),
        (Some(folder), _) => folder.display().to_string(),
        (None, Dialect::Spark) => output.url.as_str().replacen("s3://", "s3a://", 1),
        (None, _) => output.url.to_string(),
    };
    format!("{}/{table}", root.trim_end_matches('/'))
}

/// A string literal: DuckDB and Trino double a quote, Spark and Hive escape it with a backslash.
fn quoted(dialect: Dialect, text: &str) -> String {
    match dialect {
        Dialect::DuckDb | Dialect::Trino => format!("'{}'", text.replace('\'', "''")),
        Dialect::Spark | Dialect::Hive => format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'")),
    }
}

fn identifier(dialect: Dialect, name: &str) -> String {
    match dialect {
        Dialect::DuckDb | Dialect::Trino => format!("\"{}\"", name.replace('"', "\"\"")),
        Dialect::Spark | Dialect::Hive => format!("`{}`", name.replace('`', "``")),
    }
}

/// A column's type in the dialect, from its Arrow type; None for a type the dialect cannot
/// declare (the table is then left out of that dialect's script, with a comment saying why).
fn sql_type(dialect: Dialect, data_type: &DataType) -> Option<String> {
    // (Spark and Hive, Trino)
    let (hive, trino) = match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ("STRING", "varchar"),
        DataType::Int8 => ("TINYINT", "tinyint"),
        DataType::Int16 => ("SMALLINT", "smallint"),
        DataType::Int32 => ("INT", "integer"),
        DataType::Int64 => ("BIGINT", "bigint"),
        DataType::Float32 => ("FLOAT", "real"),
        DataType::Float64 => ("DOUBLE", "double"),
        DataType::Boolean => ("BOOLEAN", "boolean"),
        DataType::Date32 => ("DATE", "date"),
        // Spark reads a timestamp without a zone as TIMESTAMP_NTZ (3.4 and later).
        DataType::Timestamp(TimeUnit::Microsecond, None) if dialect == Dialect::Spark => {
            ("TIMESTAMP_NTZ", "timestamp(6)")
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => ("TIMESTAMP", "timestamp(6)"),
        DataType::Decimal128(precision, scale) => return Some(format!("DECIMAL({precision},{scale})")),
        _ => return None,
    };
    Some(if dialect == Dialect::Trino { trino } else { hive }.to_string())
}

fn column_comment(field: &Field) -> &str {
    described::comment(field.metadata()).unwrap_or_default()
}

/// The whole script of one dialect.
fn script(dialect: Dialect, output: &Root, latest: NaiveDate, tables: &[Table]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "-- growth-jobs catalog ({}) of {}: written by growth-jobs {} with each night.\n\
         -- <table> is the latest complete night, {latest}; <table>_history holds every night,\n\
         -- each run_date a whole snapshot: read one run_date at a time, never sum across them.\n",
        dialect.name(),
        output.display,
        env!("CARGO_PKG_VERSION"),
    ));
    out.push_str(match dialect {
        Dialect::DuckDb => {
            "-- Run it in a DuckDB database file (duckdb growth.duckdb < duckdb.sql, or .read);\n\
             -- the views read the files where they are, so run it again after each night.\n\
             -- An s3:// output needs INSTALL httpfs; LOAD httpfs; and CREATE SECRET first.\n\n"
        }
        Dialect::Spark => {
            "-- Run it with spark-sql -f spark.sql (or spark.sql() statement by statement) in the\n\
             -- database the tables belong in; the tables are external, dropping one keeps the files.\n\n"
        }
        Dialect::Hive => {
            "-- Run it with beeline -f hive.sql in the database the tables belong in; the tables are\n\
             -- external, dropping one keeps the files.\n\n"
        }
        Dialect::Trino => {
            "-- Run it with a Hive connector catalog and schema selected (USE hive.growth); the\n\
             -- tables are external (external_location), dropping one keeps the files.\n\n"
        }
    });
    for table in tables {
        match dialect {
            Dialect::DuckDb => duckdb(&mut out, output, latest, table),
            _ => external(&mut out, dialect, output, latest, table),
        }
    }
    out
}

fn duckdb(out: &mut String, output: &Root, latest: NaiveDate, table: &Table) {
    let name = identifier(Dialect::DuckDb, &table.name);
    let history = identifier(Dialect::DuckDb, &format!("{}_history", table.name));
    let folder = location(Dialect::DuckDb, output, &table.name);
    let night = format!("{folder}/{}/*.parquet", partition(latest));
    let every = format!("{folder}/run_date=*/*.parquet");
    out.push_str(&format!(
        "CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({}, hive_partitioning = true);\n",
        quoted(Dialect::DuckDb, &night)
    ));
    out.push_str(&format!(
        "CREATE OR REPLACE VIEW {history} AS SELECT * FROM read_parquet({}, hive_partitioning = true, union_by_name = true);\n",
        quoted(Dialect::DuckDb, &every)
    ));
    for (view, description) in [
        (&name, table.description.clone()),
        (
            &history,
            format!("Every night's snapshot of {}: {}", table.name, table.description),
        ),
    ] {
        out.push_str(&format!(
            "COMMENT ON VIEW {view} IS {};\n",
            quoted(Dialect::DuckDb, &description)
        ));
        for field in table.schema.fields() {
            out.push_str(&format!(
                "COMMENT ON COLUMN {view}.{} IS {};\n",
                identifier(Dialect::DuckDb, field.name()),
                quoted(Dialect::DuckDb, column_comment(field))
            ));
        }
        out.push_str(&format!(
            "COMMENT ON COLUMN {view}.\"run_date\" IS {};\n",
            quoted(Dialect::DuckDb, RUN_DATE)
        ));
    }
    out.push('\n');
}

/// Spark, Hive and Trino: an external table over every night and a view of the latest.
fn external(out: &mut String, dialect: Dialect, output: &Root, latest: NaiveDate, table: &Table) {
    let name = identifier(dialect, &table.name);
    let history = identifier(dialect, &format!("{}_history", table.name));
    let folder = quoted(dialect, &location(dialect, output, &table.name));
    let comment = |text: &str| format!("COMMENT {}", quoted(dialect, text));
    let date_type = if dialect == Dialect::Trino { "date" } else { "DATE" };
    let mut columns: Vec<String> = Vec::new();
    for field in table.schema.fields() {
        let Some(data_type) = sql_type(dialect, field.data_type()) else {
            out.push_str(&format!(
                "-- {}: column {} has type {}, which {} cannot declare: the table is left out.\n\n",
                table.name,
                field.name(),
                field.data_type(),
                dialect.name()
            ));
            return;
        };
        columns.push(format!(
            "  {} {data_type} {}",
            identifier(dialect, field.name()),
            comment(column_comment(field))
        ));
    }
    let run_date = format!(
        "{} {date_type} {}",
        identifier(dialect, "run_date"),
        comment(RUN_DATE)
    );
    out.push_str(&format!("DROP TABLE IF EXISTS {history};\n"));
    match dialect {
        Dialect::Spark => {
            columns.push(format!("  {run_date}"));
            out.push_str(&format!(
                "CREATE TABLE {history} (\n{}\n) USING PARQUET PARTITIONED BY ({}) LOCATION {folder}\n{};\n",
                columns.join(",\n"),
                identifier(dialect, "run_date"),
                comment(&format!(
                    "Every night's snapshot of {}: {}",
                    table.name, table.description
                ))
            ));
            out.push_str(&format!("MSCK REPAIR TABLE {history};\n"));
        }
        Dialect::Hive => {
            out.push_str(&format!(
                "CREATE EXTERNAL TABLE {history} (\n{}\n)\n{}\nPARTITIONED BY ({run_date})\nSTORED AS PARQUET LOCATION {folder};\n",
                columns.join(",\n"),
                comment(&format!("Every night's snapshot of {}: {}", table.name, table.description))
            ));
            out.push_str(&format!("MSCK REPAIR TABLE {history};\n"));
        }
        Dialect::Trino => {
            columns.push(format!("  {run_date}"));
            out.push_str(&format!(
                "CREATE TABLE {history} (\n{}\n)\n{}\nWITH (format = 'PARQUET', external_location = {folder}, partitioned_by = ARRAY['run_date']);\n",
                columns.join(",\n"),
                comment(&format!("Every night's snapshot of {}: {}", table.name, table.description))
            ));
            out.push_str(&format!(
                "CALL system.sync_partition_metadata(current_schema, {}, 'FULL');\n",
                quoted(dialect, &format!("{}_history", table.name))
            ));
        }
        Dialect::DuckDb => unreachable!("DuckDB has its own script"),
    }
    let date = format!("DATE '{latest}'");
    match dialect {
        Dialect::Trino => out.push_str(&format!(
            "CREATE OR REPLACE VIEW {name} {} AS SELECT * FROM {history} WHERE run_date = {date};\n\n",
            comment(&table.description)
        )),
        _ => {
            let view_columns: Vec<String> = table
                .schema
                .fields()
                .iter()
                .map(|f| {
                    format!(
                        "  {} {}",
                        identifier(dialect, f.name()),
                        comment(column_comment(f))
                    )
                })
                .chain(std::iter::once(format!(
                    "  {} {}",
                    identifier(dialect, "run_date"),
                    comment(RUN_DATE)
                )))
                .collect();
            out.push_str(&format!(
                "CREATE OR REPLACE VIEW {name} (\n{}\n) {} AS SELECT * FROM {history} WHERE run_date = {date};\n\n",
                view_columns.join(",\n"),
                comment(&table.description)
            ));
        }
    }
}
