//! Where tables live: a local folder or an object-store URL, behind one `ObjectStore`.
//!
//! A root such as `data/sample` or `s3://bucket/prefix` becomes a [`Root`]: the store, the
//! URL DataFusion registers it under, and the prefix inside the store. S3 settings come from
//! the usual `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...).

use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use url::Url;

use crate::error::{Error, Result};

/// A root folder of tables, local or remote.
#[derive(Clone, Debug)]
pub struct Root {
    /// What the user wrote, for messages.
    pub display: String,
    /// `file:///abs/path/` or `s3://bucket/prefix/`, always ending in `/`.
    pub url: Url,
    /// The store holding the root.
    pub store: Arc<dyn ObjectStore>,
    /// The root's path inside the store.
    pub prefix: Path,
    /// The local folder, when the root is on this machine's filesystem.
    pub local: Option<std::path::PathBuf>,
    /// The part size of the multipart uploads that publish files to an object store.
    pub(crate) part_size: usize,
}

/// The environment variable setting [`Root::part_size`], such as `64MiB`.
pub const PART_SIZE_VARIABLE: &str = "GROWTH_S3_PART_SIZE";
/// The part size when [`PART_SIZE_VARIABLE`] is not set: S3 takes up to 10,000 parts of an
/// object, so 16 MiB parts carry files of up to 156 GiB.
const DEFAULT_PART_SIZE: usize = 16 << 20;

/// The part size from the environment, or the default.
fn part_size(root: &str) -> Result<usize> {
    match std::env::var(PART_SIZE_VARIABLE) {
        Ok(text) => crate::config::parse_size(&text)
            .and_then(|size| match size {
                0 => Err("a part size of 0".into()),
                size => Ok(size),
            })
            .map_err(|reason| Error::BadRoot {
                root: root.to_string(),
                reason: format!("{PART_SIZE_VARIABLE}: {reason}"),
            }),
        Err(_) => Ok(DEFAULT_PART_SIZE),
    }
}

impl Root {
    /// Opens an output root without creating it: `None` when it is a local folder that does
    /// not exist yet (a dry run writes nothing, not even the folder).
    pub(crate) fn open_existing(root: &str) -> Result<Option<Self>> {
        let local = !root.contains("://") || root.starts_with("file://");
        let folder = std::path::Path::new(root.strip_prefix("file://").unwrap_or(root));
        if local && !folder.exists() {
            return Ok(None);
        }
        Self::open(root, false).map(Some)
    }

    /// Opens a root. A local folder is created when `create` is set (outputs), and must exist
    /// otherwise (inputs).
    pub fn open(root: &str, create: bool) -> Result<Self> {
        let bad = |reason: String| Error::BadRoot {
            root: root.to_string(),
            reason,
        };
        match Url::parse(root) {
            Ok(url) if url.scheme() == "s3" => {
                let store = AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                let mut url = url;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                let prefix = Path::from_url_path(url.path()).map_err(|e| bad(e.to_string()))?;
                Ok(Root {
                    display: root.to_string(),
                    url,
                    store: Arc::new(store),
                    prefix,
                    local: None,
                    part_size: part_size(root)?,
                })
            }
            Ok(url) if url.scheme() != "file" && url.scheme().len() > 1 => Err(bad(format!(
                "unsupported scheme {}: use a local folder or s3://",
                url.scheme()
            ))),
            _ => {
                let folder = root.strip_prefix("file://").unwrap_or(root);
                let folder = std::path::PathBuf::from(folder);
                if create {
                    std::fs::create_dir_all(&folder).map_err(|e| bad(e.to_string()))?;
                }
                let folder = folder
                    .canonicalize()
                    .map_err(|e| bad(format!("not a readable folder ({e})")))?;
                if !folder.is_dir() {
                    return Err(bad("not a folder".into()));
                }
                let url = Url::from_directory_path(&folder)
                    .map_err(|_| bad("cannot turn the folder into a URL".into()))?;
                let prefix = Path::from_filesystem_path(&folder).map_err(|e| bad(e.to_string()))?;
                Ok(Root {
                    display: root.to_string(),
                    url,
                    store: Arc::new(LocalFileSystem::new()),
                    prefix,
                    local: Some(folder),
                    part_size: DEFAULT_PART_SIZE,
                })
            }
        }
    }

    /// The store's URL (scheme and authority), as DataFusion registers stores.
    pub(crate) fn store_url(&self) -> ObjectStoreUrl {
        let base = &self.url[..url::Position::BeforePath];
        ObjectStoreUrl::parse(base).expect("a root URL always has a scheme and authority")
    }

    /// Registers this root's store with a session, so SQL can read and write under it.
    pub fn register(&self, ctx: &SessionContext) {
        if self.local.is_none() {
            ctx.register_object_store(self.store_url().as_ref(), self.store.clone());
        }
    }

    /// The store path of `parts` joined below the root.
    pub fn path(&self, parts: &[&str]) -> Path {
        parts
            .iter()
            .fold(self.prefix.clone(), |path, part| path.join(*part))
    }

    /// The full URL of a store path, as DataFusion wants it.
    pub(crate) fn url_of(&self, path: &Path) -> String {
        format!("{}/{}", self.store_url().as_str().trim_end_matches('/'), path)
    }

    /// A store path relative to the root, for messages and manifests.
    pub fn relative(&self, path: &Path) -> String {
        match path.prefix_match(&self.prefix) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_string(),
        }
    }

    /// Writes a small file in one put (atomic: a reader sees the old bytes or the new) and, on
    /// a local disk, flushes the file and its folder entry, so a power loss cannot leave it
    /// empty. On an object store a completed PUT is already durable.
    pub(crate) async fn put_durable(&self, path: &Path, bytes: Vec<u8>) -> Result<()> {
        use object_store::ObjectStoreExt;
        self.store
            .put(path, bytes.into())
            .await
            .map_err(Error::store(format!("writing {}", self.describe(path))))?;
        self.sync(path)?;
        self.sync_folder_of(path)
    }

    /// A small file's bytes, or None when there is no such file.
    pub(crate) async fn read_if_exists(&self, path: &Path) -> Result<Option<impl AsRef<[u8]> + use<>>> {
        use object_store::ObjectStoreExt;
        let failed = || Error::store(format!("reading {}", self.describe(path)));
        match self.store.get(path).await {
            Ok(found) => found.bytes().await.map(Some).map_err(failed()),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed()(e)),
        }
    }

    /// On a local disk, flushes a file, so what a rename or a reader sees is on disk.
    pub(crate) fn sync(&self, path: &Path) -> Result<()> {
        if let Some(file) = self.local_file(path) {
            sync_local(&file)?;
        }
        Ok(())
    }

    /// A store path as a file on this machine, when the root is a local folder.
    pub(crate) fn local_file(&self, path: &Path) -> Option<std::path::PathBuf> {
        self.local
            .as_ref()
            .map(|_| std::path::PathBuf::from(format!("/{path}")))
    }

    /// On a local disk, flushes the folder entry of a file a put or a rename changed.
    pub(crate) fn sync_folder_of(&self, path: &Path) -> Result<()> {
        if self.local.is_some() {
            let file = std::path::PathBuf::from(format!("/{path}"));
            if let Some(folder) = file.parent() {
                sync_local(folder)?;
            }
        }
        Ok(())
    }

    /// A store path as the user would write it (a filesystem path or a URL).
    pub fn describe(&self, path: &Path) -> String {
        match &self.local {
            Some(_) => format!("/{path}"),
            None => self.url_of(path),
        }
    }
}

/// Flushes a local file or folder to disk.
fn sync_local(path: &std::path::Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(format!("syncing {}", path.display())))
}

/// Refuses an output root inside the input root or the reverse (or the same root): a run would
/// read what it publishes, and its drafts and partitions would look like input tables.
pub(crate) fn refuse_overlap(input: &str, output: &str) -> Result<()> {
    let (a, b) = (where_is(input), where_is(output));
    if a.starts_with(&b) || b.starts_with(&a) {
        return Err(Error::Usage(format!(
            "the input root {input} and the output root {output} overlap (one holds the other): give the output a folder or prefix of its own"
        )));
    }
    Ok(())
}

/// A root as a path to compare: `s3:/bucket/prefix` for a URL, else the folder with every
/// part that exists resolved (symbolic links, `..`), so two spellings of one folder are equal.
fn where_is(root: &str) -> std::path::PathBuf {
    if let Ok(url) = Url::parse(root)
        && url.scheme() == "s3"
    {
        let host = url.host_str().unwrap_or_default();
        return std::path::PathBuf::from(format!("s3:/{host}{}", url.path()));
    }
    let folder = root.strip_prefix("file://").unwrap_or(root);
    let absolute = std::path::absolute(folder).unwrap_or_else(|_| folder.into());
    let mut existing = absolute.as_path();
    let mut missing = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return missing.iter().rev().fold(resolved, |path, part| path.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

/// The object stores of a process that runs other processes' queries (a Ballista scheduler or
/// executor): local files, and each `s3://` bucket a query names, opened from this process's
/// `AWS_*` environment the way [`Root::open`] opens a root, once per bucket. The client's
/// roots are registered in its own session only; the servers find the same stores this way.
#[cfg(feature = "ballista")]
#[derive(Debug, Default)]
pub(crate) struct EnvObjectStores {
    opened: datafusion::execution::object_store::DefaultObjectStoreRegistry,
}

#[cfg(feature = "ballista")]
impl datafusion::execution::object_store::ObjectStoreRegistry for EnvObjectStores {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.opened.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        self.opened.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> datafusion::error::Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.opened.get_store(url) {
            return Ok(store);
        }
        if url.scheme() != "s3" {
            return Err(datafusion::error::DataFusionError::Execution(format!(
                "no object store for {url}: a cluster reads local paths and s3:// buckets"
            )));
        }
        let root = Root::open(url.as_str(), false)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        self.opened.register_store(url, root.store.clone());
        Ok(root.store)
    }
}

/// What a Parquet file's footer says: its rows, its Arrow schema, and per-column statistics.
pub(crate) struct Footer {
    pub rows: u64,
    pub schema: datafusion::arrow::datatypes::Schema,
    metadata: std::sync::Arc<datafusion::parquet::file::metadata::ParquetMetaData>,
}

impl Footer {
    /// Nulls in a top-level column, from the row groups' statistics; None when a row group does
    /// not record its null count (the file would have to be read to know).
    pub(crate) fn null_count(&self, column: &str) -> Option<u64> {
        let schema = self.metadata.file_metadata().schema_descr();
        let index = (0..schema.num_columns()).find(|&i| schema.column(i).path().string() == column)?;
        self.metadata
            .row_groups()
            .iter()
            .map(|group| group.column(index).statistics().and_then(|s| s.null_count_opt()))
            .sum()
    }

    /// The earliest value of a timestamp or date column, as UTC microseconds, from the row
    /// groups' statistics; None when a row group records no minimum (or holds only nulls), or
    /// the column is of another type.
    pub(crate) fn min_micros(&self, column: &str) -> Option<i64> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
        use datafusion::parquet::arrow::arrow_reader::statistics::StatisticsConverter;
        let schema = self.metadata.file_metadata().schema_descr();
        let converter = StatisticsConverter::try_new(column, &self.schema, schema).ok()?;
        let mins = converter.row_group_mins(self.metadata.row_groups()).ok()?;
        if mins.is_empty() || mins.null_count() > 0 {
            return None;
        }
        let micros =
            datafusion::arrow::compute::cast(&mins, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .ok()?;
        datafusion::arrow::compute::min(micros.as_primitive::<TimestampMicrosecondType>())
    }
}

/// Reads a Parquet file's footer alone.
pub(crate) async fn parquet_footer(
    root: &Root,
    meta: &object_store::ObjectMeta,
) -> datafusion::error::Result<Footer> {
    use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
    let metadata = DFParquetMetadata::new(root.store.as_ref(), meta)
        .fetch_metadata()
        .await?;
    let file = metadata.file_metadata();
    let schema =
        datafusion::parquet::arrow::parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    Ok(Footer {
        rows: file.num_rows().max(0) as u64,
        schema,
        metadata,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_roots_are_refused_and_siblings_are_not() {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["a", "b"] {
            std::fs::create_dir(dir.path().join(folder)).unwrap();
        }
        let base = dir.path().to_string_lossy();
        assert!(refuse_overlap(&format!("{base}/in"), &format!("{base}/in/out")).is_err());
        assert!(refuse_overlap(&format!("{base}/a/out"), &format!("{base}/a")).is_err());
        assert!(refuse_overlap(&format!("{base}/a"), &format!("{base}/b/../a")).is_err());
        assert!(refuse_overlap(&format!("{base}/in"), &format!("{base}/input-out")).is_ok());
        assert!(refuse_overlap("s3://b/in", "s3://b/in/out").is_err());
        assert!(refuse_overlap("s3://b/in", "s3://b/out").is_ok());
        assert!(refuse_overlap("s3://b/in", "s3://c/in").is_ok());
    }
}
