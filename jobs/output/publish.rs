//! Atomic publishing: a table's partition for a run date is one Parquet file, written first
//! into the run's draft folder and then moved into place: one rename on a local disk, one
//! upload to the published key on an object store.
//!
//! The layout is [`crate::output::published`]'s. On a local disk the rename
//! replaces the old file atomically, so a reader listing the folder at any moment sees the
//! complete old file or the complete new one. On an object store a PUT, or a multipart upload
//! once completed, replaces an object whole in the same way. Until every model of the run has been written to
//! its draft, nothing is published; a failed or killed run leaves `_growth_drafts/<run_id>/`
//! behind, which the next run removes (only folders named as our run ids: another tool's files
//! there stay).

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::Column;
use datafusion::common::metadata::FieldMetadata;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::logical_expr::cast;
use datafusion::parquet::arrow::async_writer::AsyncArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{DataFrame, ParquetReadOptions, SessionContext, col};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::output::described;
use crate::output::footer::{self, NewFooter};
use crate::output::published::{FAILURES, partition, table_file, table_path};
use crate::storage::Root;

/// The folder of the runs' drafts, below the output root: a name of our own, not Spark's and
/// Hadoop's `_temporary`, whose contents another writer of the same root may own. Readers skip
/// `_` folders.
pub(crate) const DRAFTS: &str = "_growth_drafts";

/// Where earlier versions of growth-jobs kept their drafts: their run folders are removed too.
const EARLIER_DRAFTS: [&str; 2] = ["_temporary", "_staging"];

/// A column of a written table, for the manifest.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct ColumnSchema {
    pub name: String,
    #[serde(rename = "type")]
    pub data_type: String,
    pub nullable: bool,
    /// Its definition, as the file carries it (see [`described`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A table written as a draft, ready to publish.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct DraftTable {
    pub table: String,
    /// What the table is, as the file carries it (see [`described`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub rows: u64,
    pub bytes: u64,
    pub schema: Vec<ColumnSchema>,
    /// Where it is published, relative to the output root.
    pub path: String,
    #[serde(skip)]
    draft: Path,
    #[serde(skip)]
    published: Path,
    /// The footer the published file gets instead of the draft's, on an object store (a local
    /// draft's footer is rewritten in place).
    #[serde(skip)]
    footer: Option<NewFooter>,
}

/// A small file written as a draft, ready to publish.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct DraftFile {
    /// Where it is published, relative to the output root.
    pub path: String,
    #[serde(skip)]
    draft: Path,
    #[serde(skip)]
    published: Path,
}

/// A table being written batch by batch into the draft (see [`Draft::writer`]).
pub(crate) struct TableWriter {
    table: String,
    writer: AsyncArrowWriter<BufWriter>,
    draft: Path,
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
    pub(crate) async fn finish(self, draft: &Draft) -> Result<DraftTable> {
        self.writer
            .close()
            .await
            .map_err(Error::parquet(format!("closing {}", self.table)))?;
        draft.output.sync(&self.draft)?;
        let (rows, bytes, schema, description) = describe_parquet(&draft.output, &self.draft).await?;
        Ok(DraftTable {
            table: self.table,
            description,
            rows,
            bytes,
            schema,
            path: draft.output.relative(&self.published),
            draft: self.draft,
            published: self.published,
            footer: None,
        })
    }
}

/// A run's draft: files written below `_growth_drafts/<run_id>/`, published together with one
/// rename each, or removed.
pub(crate) struct Draft {
    output: Root,
    run_id: String,
    run_date: NaiveDate,
}

impl Draft {
    pub fn new(output: &Root, run_id: &str, run_date: NaiveDate) -> Self {
        Draft {
            output: output.clone(),
            run_id: run_id.to_string(),
            run_date,
        }
    }

    /// The output root the draft publishes into.
    pub(crate) fn root(&self) -> &Root {
        &self.output
    }

    /// The run date whose files the draft replaces.
    pub(crate) fn run_date(&self) -> NaiveDate {
        self.run_date
    }

    /// Removes the drafts earlier runs left (they failed or were killed): the folders named as
    /// our run ids, in our drafts folder and where earlier versions kept theirs. The caller
    /// holds the output's lock, so none of them belongs to a live run.
    pub(crate) async fn remove_leftovers(output: &Root) -> Result<()> {
        for folder in std::iter::once(DRAFTS).chain(EARLIER_DRAFTS) {
            let listed = match output
                .store
                .list_with_delimiter(Some(&output.path(&[folder])))
                .await
            {
                Ok(listed) => listed.common_prefixes,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(Error::store(format!("listing {folder}"))(e)),
            };
            for run in listed
                .iter()
                .filter_map(|p| p.filename())
                .filter(|name| is_run_id(name))
            {
                remove_folder(output, &[folder, run]).await?;
            }
        }
        Ok(())
    }

    /// Writes a model's result to the draft and registers the draft file under the model's name,
    /// so downstream models read exactly what will be published. `columns` are the model's
    /// column definitions, written into the file as each column's comment.
    pub async fn write(
        &self,
        ctx: &SessionContext,
        table: &str,
        file: &str,
        df: DataFrame,
        description: &str,
        columns: &[(String, String)],
    ) -> Result<DraftTable> {
        let draft = self
            .output
            .path(&[DRAFTS, &self.run_id, &format!("{table}.parquet")]);
        let published = table_path(&self.output, table, self.run_date);
        let url = self.output.url_of(&draft);
        let df = in_published_form(df, columns).map_err(|e| model_failure(table, file, e))?;
        let written_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        df.write_parquet(
            &url,
            DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .map_err(|e| model_failure(table, file, e))?;
        let (rows, _, schema, _) = describe_parquet(&self.output, &draft).await?;
        let written = if schema.is_empty() && !written_schema.fields().is_empty() {
            // A Ballista 55 cluster writes a result with no rows as a Parquet file with no
            // columns, which no reader opens (DuckDB: "Need at least one non-root column").
            // Such a draft is written again here: the model's columns, no rows.
            let written_schema = written_schema
                .as_ref()
                .clone()
                .with_metadata(described::metadata(description));
            self.writer_at(table, draft, published, Arc::new(written_schema))?
                .finish(self)
                .await?
        } else {
            // Only the footer changes: the rows and the schema described above stay true.
            let entries = [(described::COMMENT, description)];
            let rewritten = match self.output.local_file(&draft) {
                Some(local) => footer::rewrite_local(&local, &entries)
                    .map_err(Error::io(format!("describing {}", local.display())))?,
                None => footer::of_object(&self.output, &draft, &entries).await?,
            };
            let bytes = rewritten.keep + rewritten.footer.len() as u64;
            DraftTable {
                table: table.into(),
                description: Some(description.to_string()).filter(|d| !d.is_empty()),
                rows,
                bytes,
                schema,
                path: self.output.relative(&published),
                draft,
                published,
                // A local draft has its new footer already; an object's gets it when published.
                footer: self.output.local.is_none().then_some(rewritten),
            }
        };
        ctx.register_parquet(table, &url, ParquetReadOptions::default())
            .await
            .map_err(Error::engine(format!("registering the draft of {table}")))?;
        Ok(written)
    }

    /// Moves every drafted table into place, one rename each.
    pub async fn publish(&self, tables: &[DraftTable]) -> Result<()> {
        for table in tables {
            self.move_into_place(&table.draft, &table.published, &table.path, table.footer.as_ref())
                .await?;
        }
        Ok(())
    }

    /// Starts a table the jobs compute in Rust, written batch by batch into the draft and
    /// published as `<table>/run_date=D/<file>`. Several jobs can own one table through
    /// different file names (`model_metrics`: `part-segment.parquet`, `part-churn.parquet`).
    pub fn writer(&self, table: &str, file: &str, schema: SchemaRef) -> Result<TableWriter> {
        let draft = self
            .output
            .path(&[DRAFTS, &self.run_id, &format!("{table}-{file}")]);
        let published = table_file(&self.output, table, self.run_date, file);
        self.writer_at(table, draft, published, schema)
    }

    /// Starts the file of a data test's failing rows, published as
    /// `_test_failures/<model>/run_date=D/<file>`.
    pub(crate) fn failures_writer(&self, model: &str, file: &str, schema: SchemaRef) -> Result<TableWriter> {
        let draft = self
            .output
            .path(&[DRAFTS, &self.run_id, &format!("{FAILURES}-{model}-{file}")]);
        let published = self
            .output
            .path(&[FAILURES, model, &partition(self.run_date), file]);
        self.writer_at(model, draft, published, schema)
    }

    /// Removes the failing rows earlier runs of the date stored for `model`: a rerun's tests
    /// store their own, and a test that passes now leaves none.
    pub(crate) async fn clear_failures(&self, model: &str) -> Result<()> {
        remove_folder(&self.output, &[FAILURES, model, &partition(self.run_date)]).await
    }

    fn writer_at(&self, table: &str, draft: Path, published: Path, schema: SchemaRef) -> Result<TableWriter> {
        // The description as a key-value entry too, where readers that do not decode the Arrow
        // schema look (DuckDB's parquet_kv_metadata, Spark).
        let entries = described::comment(schema.metadata()).map(|description| {
            vec![KeyValue::new(
                described::COMMENT.to_string(),
                description.to_string(),
            )]
        });
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).expect("3 is a zstd level"),
            ))
            .set_key_value_metadata(entries)
            .build();
        let sink = BufWriter::new(self.output.store.clone(), draft.clone());
        let writer = AsyncArrowWriter::try_new(sink, schema, Some(properties))
            .map_err(Error::parquet(format!("starting {table}")))?;
        Ok(TableWriter {
            table: table.into(),
            writer,
            draft,
            published,
        })
    }

    /// Writes one batch as a table's file (small tables: profiles, metrics).
    pub(crate) async fn write_batch(
        &self,
        table: &str,
        file: &str,
        batch: &RecordBatch,
    ) -> Result<DraftTable> {
        let mut writer = self.writer(table, file, batch.schema())?;
        writer.write(batch).await?;
        writer.finish(self).await
    }

    /// Writes a small file (a model, a model card) into the draft, to publish at `parts`.
    pub async fn put(&self, parts: &[&str], bytes: Vec<u8>) -> Result<DraftFile> {
        let name = parts.join("-").replace('=', "_");
        let draft = self.output.path(&[DRAFTS, &self.run_id, &name]);
        self.output
            .store
            .put(&draft, bytes.into())
            .await
            .map_err(Error::store(format!("writing the draft of {}", parts.join("/"))))?;
        self.output.sync(&draft)?;
        let published = self.output.path(parts);
        Ok(DraftFile {
            path: self.output.relative(&published),
            draft,
            published,
        })
    }

    /// Moves drafted files into place, one rename each.
    pub(crate) async fn publish_files(&self, files: &[DraftFile]) -> Result<()> {
        for file in files {
            self.move_into_place(&file.draft, &file.published, &file.path, None)
                .await?;
        }
        Ok(())
    }

    /// Publishes one drafted file. On a local disk, one rename: atomic, and the folder entry is
    /// flushed. On an object store, a rename is a copy and a delete (and S3 copies no object
    /// over 5 GiB in one request), so the draft is uploaded again to the published key: one PUT,
    /// or a multipart upload of [`Root::part_size`] parts, which S3 makes visible whole when it
    /// completes; a table whose footer changed after it was drafted (`footer`) is uploaded with
    /// the new footer after the draft's pages. A failed upload is aborted; the draft goes with
    /// the run's draft folder.
    async fn move_into_place(
        &self,
        draft: &Path,
        published: &Path,
        shown: &str,
        footer: Option<&NewFooter>,
    ) -> Result<()> {
        fault::before_publish();
        let store = &self.output.store;
        if self.output.local.is_some() {
            store
                .rename(draft, published)
                .await
                .map_err(Error::store(format!("publishing {shown}")))?;
            return self.output.sync_folder_of(published);
        }
        let failed = |e| Error::store(format!("publishing {shown}"))(e);
        let options = object_store::GetOptions {
            range: footer.map(|f| (0..f.keep).into()),
            ..Default::default()
        };
        let mut source = store
            .get_opts(draft, options)
            .await
            .map_err(failed)?
            .into_stream();
        let mut sink = BufWriter::with_capacity(store.clone(), published.clone(), self.output.part_size);
        let copied = async {
            while let Some(chunk) = source.try_next().await? {
                sink.put(chunk).await?;
            }
            if let Some(footer) = footer {
                sink.put(footer.footer.clone().into()).await?;
            }
            Ok::<(), object_store::Error>(())
        }
        .await;
        if let Err(error) = copied {
            if let Err(abort) = sink.abort().await {
                tracing::warn!(%abort, file = shown, "could not abort the upload");
            }
            return Err(failed(error));
        }
        sink.shutdown()
            .await
            .map_err(Error::io(format!("publishing {shown}")))
    }

    /// Removes this run's draft folder.
    pub async fn remove(&self) -> Result<()> {
        remove_folder(&self.output, &[DRAFTS, &self.run_id]).await
    }
}

/// Whether a folder name is one of our run ids: `<run date>-...-<pid>`
/// ([`crate::telemetry::run_id`], and the SQL stage's `<run date>-<time>-<pid>`).
fn is_run_id(name: &str) -> bool {
    let dated = name.get(..11).is_some_and(|head| {
        head.ends_with('-') && NaiveDate::parse_from_str(&head[..10], "%Y-%m-%d").is_ok()
    });
    let pid = name.rsplit('-').next().unwrap_or("");
    dated && name.len() > 11 && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
}

/// Deletes every object below a run's folder of the output root. On a local disk the folder
/// goes as a whole, with any partial upload (`name#n`) that a killed writer left, and its
/// parent (the drafts folder) once empty.
async fn remove_folder(output: &Root, parts: &[&str]) -> Result<()> {
    if let Some(local) = &output.local {
        let dir = parts.iter().fold(local.clone(), |dir, part| dir.join(part));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(Error::io(format!("removing {}", dir.display())))?;
        }
        if let Some(parent) = dir.parent().filter(|p| *p != local.as_path()) {
            let _ = std::fs::remove_dir(parent);
        }
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
            .map_err(Error::store(format!("removing the draft file {file}")))?;
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

/// The type a column is published as, when it differs from the engine's: timestamps in
/// microseconds (Spark refuses nanoseconds), and text as plain Utf8 rather than the string views
/// DataFusion produces for some expressions on one engine and not another (`concat` gives a view
/// locally and plain text on Ballista), so a table's published schema does not depend on where
/// it ran.
fn published_type(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Timestamp(unit, tz) if *unit != TimeUnit::Microsecond => {
            Some(DataType::Timestamp(TimeUnit::Microsecond, tz.clone()))
        }
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    }
}

/// Casts the columns whose type is not the published one (see `published_type`) and gives each
/// documented column its definition as its `comment` (see [`described`]).
fn in_published_form(df: DataFrame, columns: &[(String, String)]) -> datafusion::error::Result<DataFrame> {
    let exprs = df
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let column = col(Column::new_unqualified(f.name()));
            let column = match published_type(f.data_type()) {
                Some(to) => cast(column, to),
                None => column,
            };
            let comment = columns
                .iter()
                .find(|(name, _)| name == f.name())
                .map(|(_, definition)| FieldMetadata::from(described::metadata(definition)));
            column.alias_with_metadata(f.name(), comment)
        })
        .collect::<Vec<_>>();
    df.select(exprs)
}

/// Rows, size and schema of a Parquet file, from its footer.
pub(crate) async fn describe_parquet(
    root: &Root,
    path: &Path,
) -> Result<(u64, u64, Vec<ColumnSchema>, Option<String>)> {
    let meta = root
        .store
        .head(path)
        .await
        .map_err(Error::store(format!("reading {path}")))?;
    let footer = crate::storage::parquet_footer(root, &meta)
        .await
        .map_err(Error::engine(format!("reading the footer of {path}")))?;
    let rows = footer.rows;
    let schema = footer
        .schema
        .fields()
        .iter()
        .map(|f| ColumnSchema {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: f.is_nullable(),
            comment: described::comment(f.metadata()).map(str::to_string),
        })
        .collect();
    let description = described::comment(footer.schema.metadata()).map(str::to_string);
    Ok((rows, meta.size, schema, description))
}

/// A fault the kill tests inject: with `GROWTH_FAULT_ABORT_BEFORE_PUBLISH=N`, the process aborts
/// (no cleanup, as under SIGKILL) just before it moves its Nth file into place. Unset, nothing.
mod fault {
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub(super) const VARIABLE: &str = "GROWTH_FAULT_ABORT_BEFORE_PUBLISH";
    static MOVED: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn before_publish() {
        let Some(limit) = std::env::var(VARIABLE).ok().and_then(|n| n.parse::<usize>().ok()) else {
            return;
        };
        if MOVED.fetch_add(1, Ordering::SeqCst) + 1 >= limit {
            eprintln!("{VARIABLE}={limit}: aborting before publishing file {limit}");
            std::process::abort();
        }
    }
}
