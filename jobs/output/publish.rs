//! Atomic publishing: a table's partition for a run date is one Parquet file, written first
//! into a staging folder of the run and then moved into place with one rename.
//!
//! Layout: `<output>/<table>/run_date=YYYY-MM-DD/part-0.parquet`. On a local disk the rename
//! replaces the old file atomically, so a reader listing the folder at any moment sees the
//! complete old file or the complete new one. On an object store a single PUT or COPY is
//! atomic per object in the same way. Until every model of the run has been written to
//! staging, nothing is published; a failed or killed run leaves `_staging/<run_id>/`
//! behind, which the next run removes.

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::Column;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::cast;
use datafusion::parquet::arrow::async_writer::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext, col};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::storage::Root;

/// The folder of a run's staged files, below the output root.
pub const STAGING: &str = "_staging";
/// The file name of every published partition.
pub const PART_FILE: &str = "part-0.parquet";

/// The partition folder name for a run date.
pub fn partition(run_date: NaiveDate) -> String {
    format!("run_date={}", run_date.format("%Y-%m-%d"))
}

/// A column of a written table, for the manifest.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
}

/// A table written to staging, ready to publish.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StagedTable {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub schema: Vec<ColumnSchema>,
    /// Where it is published, relative to the output root.
    pub path: String,
    #[serde(skip)]
    staged: Path,
    #[serde(skip)]
    published: Path,
}

/// A small file staged for publishing.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct StagedFile {
    /// Where it is published, relative to the output root.
    pub path: String,
    #[serde(skip)]
    staged: Path,
    #[serde(skip)]
    published: Path,
}

/// A table being written batch by batch into staging (see [`Staging::writer`]).
pub struct TableWriter {
    table: String,
    writer: AsyncArrowWriter<BufWriter>,
    staged: Path,
    published: Path,
}

impl TableWriter {
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer
            .write(batch)
            .await
            .map_err(Error::parquet(format!("writing {}", self.table)))
    }

    /// Closes the file, flushes it to disk, and describes it for the manifest.
    pub async fn finish(self, staging: &Staging) -> Result<StagedTable> {
        self.writer
            .close()
            .await
            .map_err(Error::parquet(format!("closing {}", self.table)))?;
        staging.sync(&self.staged)?;
        let (rows, bytes, schema) = describe_parquet(&staging.output, &self.staged).await?;
        Ok(StagedTable {
            table: self.table,
            rows,
            bytes,
            schema,
            path: staging.output.relative(&self.published),
            staged: self.staged,
            published: self.published,
        })
    }
}

/// The staging area of one run.
pub struct Staging {
    output: Root,
    run_id: String,
    run_date: NaiveDate,
}

impl Staging {
    pub fn new(output: &Root, run_id: &str, run_date: NaiveDate) -> Self {
        Staging {
            output: output.clone(),
            run_id: run_id.to_string(),
            run_date,
        }
    }

    /// Removes what earlier runs left in staging (they failed or were killed).
    pub async fn remove_leftovers(output: &Root) -> Result<()> {
        remove_folder(output, &[STAGING]).await
    }

    /// Writes a model's result to staging and registers the staged file under the model's name,
    /// so downstream models read exactly what will be published.
    pub async fn write(
        &self,
        ctx: &SessionContext,
        table: &str,
        file: &str,
        df: DataFrame,
    ) -> Result<StagedTable> {
        let staged = self
            .output
            .path(&[STAGING, &self.run_id, &format!("{table}.parquet")]);
        let published = self.output.path(&[table, &partition(self.run_date), PART_FILE]);
        let url = self.output.url_of(&staged);
        let df = timestamps_in_microseconds(df).map_err(|e| model_failure(table, file, e))?;
        df.write_parquet(
            &url,
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .map_err(|e| model_failure(table, file, e))?;
        self.sync(&staged)?;
        let (rows, bytes, schema) = describe_parquet(&self.output, &staged).await?;
        ctx.register_parquet(table, &url, ParquetReadOptions::default())
            .await
            .map_err(Error::engine(format!("registering staged table {table}")))?;
        Ok(StagedTable {
            table: table.into(),
            rows,
            bytes,
            schema,
            path: self.output.relative(&published),
            staged,
            published,
        })
    }

    /// Moves every staged table into place, one rename each.
    pub async fn publish(&self, tables: &[StagedTable]) -> Result<()> {
        for table in tables {
            self.move_into_place(&table.staged, &table.published, &table.path)
                .await?;
        }
        Ok(())
    }

    /// Starts a table the jobs compute in Rust, written batch by batch into staging and
    /// published as `<table>/run_date=D/<file>`. Several jobs can own one table through
    /// different file names (`model_metrics`: `part-segment.parquet`, `part-churn.parquet`).
    pub fn writer(&self, table: &str, file: &str, schema: SchemaRef) -> Result<TableWriter> {
        let staged = self
            .output
            .path(&[STAGING, &self.run_id, &format!("{table}-{file}")]);
        let published = self.output.path(&[table, &partition(self.run_date), file]);
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("3 is a zstd level"),
            ))
            .build();
        let sink = BufWriter::new(self.output.store.clone(), staged.clone());
        let writer = AsyncArrowWriter::try_new(sink, schema, Some(properties))
            .map_err(Error::parquet(format!("starting {table}")))?;
        Ok(TableWriter {
            table: table.into(),
            writer,
            staged,
            published,
        })
    }

    /// Writes one batch as a table's file (small tables: profiles, metrics).
    pub async fn write_batch(&self, table: &str, file: &str, batch: &RecordBatch) -> Result<StagedTable> {
        let mut writer = self.writer(table, file, batch.schema())?;
        writer.write(batch).await?;
        writer.finish(self).await
    }

    /// Writes a small file (a model, a model card) into staging, to publish at `parts`.
    pub async fn put(&self, parts: &[&str], bytes: Vec<u8>) -> Result<StagedFile> {
        let name = parts.join("-").replace('=', "_");
        let staged = self.output.path(&[STAGING, &self.run_id, &name]);
        self.output
            .store
            .put(&staged, bytes.into())
            .await
            .map_err(Error::store(format!("staging {}", parts.join("/"))))?;
        self.sync(&staged)?;
        let published = self.output.path(parts);
        Ok(StagedFile {
            path: self.output.relative(&published),
            staged,
            published,
        })
    }

    /// Moves staged files into place, one rename each.
    pub async fn publish_files(&self, files: &[StagedFile]) -> Result<()> {
        for file in files {
            self.move_into_place(&file.staged, &file.published, &file.path)
                .await?;
        }
        Ok(())
    }

    async fn move_into_place(&self, staged: &Path, published: &Path, shown: &str) -> Result<()> {
        self.output
            .store
            .rename(staged, published)
            .await
            .map_err(Error::store(format!("publishing {shown}")))?;
        self.sync_parent(published)
    }

    /// Removes this run's staging folder.
    pub async fn remove(&self) -> Result<()> {
        remove_folder(&self.output, &[STAGING, &self.run_id]).await
    }

    /// On a local disk, flushes a staged file so the rename publishes bytes that are on disk.
    fn sync(&self, path: &Path) -> Result<()> {
        if self.output.local.is_some() {
            let file = std::path::PathBuf::from(format!("/{path}"));
            std::fs::File::open(&file)
                .and_then(|f| f.sync_all())
                .map_err(Error::io(format!("syncing {}", file.display())))?;
        }
        Ok(())
    }

    /// On a local disk, flushes the folder entry a rename changed.
    fn sync_parent(&self, path: &Path) -> Result<()> {
        if self.output.local.is_some() {
            let file = std::path::PathBuf::from(format!("/{path}"));
            if let Some(parent) = file.parent() {
                std::fs::File::open(parent)
                    .and_then(|f| f.sync_all())
                    .map_err(Error::io(format!("syncing {}", parent.display())))?;
            }
        }
        Ok(())
    }
}

/// Deletes every object below a folder of the output root. On a local disk the folder goes
/// as a whole, with any partial upload (`name#n`) that a killed writer left, and `_staging`
/// itself once empty.
async fn remove_folder(output: &Root, parts: &[&str]) -> Result<()> {
    if let Some(local) = &output.local {
        let dir = parts.iter().fold(local.clone(), |dir, part| dir.join(part));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io(format!("removing {}", dir.display())))?;
        }
        let _ = std::fs::remove_dir(local.join(STAGING));
        return Ok(());
    }
    let folder = output.path(parts);
    let files: Vec<Path> = output
        .store
        .list(Some(&folder))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .map_err(Error::store(format!("listing {folder}")))?;
    for file in files {
        output
            .store
            .delete(&file)
            .await
            .map_err(Error::store(format!("removing staging file {file}")))?;
    }
    Ok(())
}

fn model_failure(table: &str, file: &str, e: datafusion::error::DataFusionError) -> Error {
    if let Some(reason) = crate::error::out_of_resources(&e) {
        return Error::OutOfResources {
            context: format!("building model {table} ({file})"),
            reason,
        };
    }
    Error::ModelFailed {
        model: table.into(),
        file: file.into(),
        reason: e.to_string(),
    }
}

/// Spark refuses nanosecond timestamps: every timestamp column is written in microseconds.
fn timestamps_in_microseconds(df: DataFrame) -> datafusion::error::Result<DataFrame> {
    let needs_cast = df
        .schema()
        .fields()
        .iter()
        .any(|f| matches!(f.data_type(), DataType::Timestamp(unit, _) if *unit != TimeUnit::Microsecond));
    if !needs_cast {
        return Ok(df);
    }
    let exprs = df
        .schema()
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => cast(
                col(Column::new_unqualified(f.name())),
                DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            )
            .alias(f.name()),
            _ => col(Column::new_unqualified(f.name())),
        })
        .collect::<Vec<_>>();
    df.select(exprs)
}

/// Rows, size and schema of a Parquet file, from its footer.
pub async fn describe_parquet(root: &Root, path: &Path) -> Result<(u64, u64, Vec<ColumnSchema>)> {
    let meta = root
        .store
        .head(path)
        .await
        .map_err(Error::store(format!("reading {path}")))?;
    let (rows, schema) = crate::storage::parquet_footer(root, &meta)
        .await
        .map_err(Error::engine(format!("reading the footer of {path}")))?;
    let schema = schema
        .fields()
        .iter()
        .map(|f| ColumnSchema {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
        })
        .collect();
    Ok((rows, meta.size, schema))
}
