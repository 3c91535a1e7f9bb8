//! Key-value entries added to the footer of a Parquet file already written.
//!
//! DataFusion's writer takes a file's key-value entries as a hash map and writes them in the
//! map's order, which changes from process to process: two runs over the same rows would publish
//! different bytes. So the SQL models are written with the Arrow schema alone, and their table
//! description is added here afterwards, in a fixed order. Only the footer changes: the pages,
//! and the page indexes the footer points at, stay where they are. The footer written back
//! holds every field the parquet crate reads; the one it drops is the deprecated copy of each
//! chunk's minimum and maximum (Statistics fields 1 and 2) that writers keep beside
//! `min_value`/`max_value` for readers from before 2018.

use datafusion::parquet::arrow::{ARROW_SCHEMA_META_KEY, encode_arrow_schema, parquet_to_arrow_schema};
use datafusion::parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaDataBuilder, ParquetMetaDataOptions, ParquetMetaDataReader,
    ParquetMetaDataWriter,
};

/// The last 8 bytes of a Parquet file: the footer's length and the magic `PAR1`.
pub(crate) const TAIL: usize = 8;

/// A file's new ending: its first `keep` bytes stay, `footer` replaces the rest.
#[derive(Clone, Debug)]
pub(crate) struct NewFooter {
    pub keep: u64,
    pub footer: Vec<u8>,
}

/// How many bytes the footer of a file of `len` bytes takes, from its last [`TAIL`] bytes.
pub(crate) fn footer_len(tail: &[u8]) -> Option<u64> {
    if tail.len() != TAIL || &tail[4..] != b"PAR1" {
        return None;
    }
    Some(u32::from_le_bytes(tail[..4].try_into().ok()?) as u64 + TAIL as u64)
}

/// The footer of a file of `len` bytes whose footer is `old` (the metadata and the tail), with
/// `entries` set (replacing entries of the same keys) and every entry sorted by key; the Arrow
/// schema's own metadata gets them too. Its metadata is written in a hash map's order, so to
/// stay the same from run to run it holds one entry: give one.
pub(crate) fn with_entries(
    len: u64,
    old: &[u8],
    entries: &[(&str, &str)],
) -> datafusion::parquet::errors::Result<NewFooter> {
    // Every field as written: the default decoding folds the pages' encoding statistics into a
    // mask, which would drop them from the footer written back.
    let options = ParquetMetaDataOptions::new().with_encoding_stats_as_mask(false);
    let metadata =
        ParquetMetaDataReader::decode_metadata_with_options(&old[..old.len() - TAIL], Some(&options))?;
    let file = metadata.file_metadata();
    let mut pairs: Vec<KeyValue> = file
        .key_value_metadata()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|kv| !entries.iter().any(|(key, _)| *key == kv.key))
        .chain(
            entries
                .iter()
                .map(|(key, value)| KeyValue::new(key.to_string(), value.to_string())),
        )
        .collect();
    pairs.sort_by(|a, b| a.key.cmp(&b.key));
    // The Arrow schema carries the entries too: pyarrow and Polars read a file's description
    // from it and not from the footer's entries when it is there.
    if !entries.is_empty()
        && let Some(arrow) = pairs.iter_mut().find(|kv| kv.key == ARROW_SCHEMA_META_KEY)
    {
        let schema = parquet_to_arrow_schema(file.schema_descr(), Some(&vec![arrow.clone()]))?;
        let mut metadata = schema.metadata().clone();
        metadata.extend(
            entries
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        arrow.value = Some(encode_arrow_schema(&schema.with_metadata(metadata)));
    }
    let file = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_string),
        Some(pairs),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let mut builder = metadata.into_builder();
    let row_groups = builder.take_row_groups();
    let metadata = ParquetMetaDataBuilder::new(file)
        .set_row_groups(row_groups)
        .build();
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &metadata).finish()?;
    Ok(NewFooter {
        keep: len - old.len() as u64,
        footer,
    })
}

/// Rewrites the footer of a local file in place: truncates it after its pages and appends the
/// new footer, then flushes it to disk. Returns the ending written.
pub(crate) fn rewrite_local(path: &std::path::Path, entries: &[(&str, &str)]) -> std::io::Result<NewFooter> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut tail = [0u8; TAIL];
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL as u64)))?;
    file.read_exact(&mut tail)?;
    let old_len = footer_len(&tail)
        .filter(|n| *n <= len)
        .ok_or_else(|| invalid(format!("{} does not end as a Parquet file", path.display())))?;
    let mut old = vec![0u8; old_len as usize];
    file.seek(SeekFrom::Start(len - old_len))?;
    file.read_exact(&mut old)?;
    let new = with_entries(len, &old, entries).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    file.set_len(new.keep)?;
    file.seek(SeekFrom::Start(new.keep))?;
    file.write_all(&new.footer)?;
    file.sync_all()?;
    Ok(new)
}

/// The new footer of an object on an object store (its pages are not read).
pub(crate) async fn of_object(
    root: &crate::storage::Root,
    path: &object_store::path::Path,
    entries: &[(&str, &str)],
) -> crate::error::Result<NewFooter> {
    use object_store::ObjectStoreExt;
    let shown = root.describe(path);
    let failed = |e| crate::error::Error::store(format!("reading the footer of {shown}"))(e);
    let len = root.store.head(path).await.map_err(failed)?.size;
    let tail = root
        .store
        .get_range(path, len.saturating_sub(TAIL as u64)..len)
        .await
        .map_err(failed)?;
    let not_parquet = || crate::error::Error::Internal(format!("{shown} does not end as a Parquet file"));
    let old_len = footer_len(&tail).filter(|n| *n <= len).ok_or_else(not_parquet)?;
    let old = root
        .store
        .get_range(path, len - old_len..len)
        .await
        .map_err(failed)?;
    with_entries(len, &old, entries).map_err(crate::error::Error::parquet(format!("describing {shown}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use datafusion::parquet::file::properties::WriterProperties;

    use super::*;

    fn written(dir: &std::path::Path) -> std::path::PathBuf {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values((0..5000).map(|i| format!("c{i}")))),
                Arc::new(Int64Array::from_iter(
                    (0..5000).map(|i| (i % 7 != 0).then_some(i)),
                )),
            ],
        )
        .unwrap();
        let path = dir.join("t.parquet");
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .build();
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    fn footer_of(path: &std::path::Path) -> datafusion::parquet::file::metadata::ParquetMetaData {
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .metadata()
            .as_ref()
            .clone()
    }

    #[test]
    fn a_rewrite_keeps_every_statistic_and_a_second_rewrite_changes_no_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let before = footer_of(&path);
        rewrite_local(&path, &[]).unwrap();
        let after = footer_of(&path);
        for (rg_before, rg_after) in before.row_groups().iter().zip(after.row_groups()) {
            for (a, b) in rg_before.columns().iter().zip(rg_after.columns()) {
                assert_eq!(a.statistics(), b.statistics(), "{}", a.column_path());
                assert_eq!(a.data_page_offset(), b.data_page_offset());
                assert_eq!(a.offset_index_offset(), b.offset_index_offset());
                assert_eq!(a.column_index_offset(), b.column_index_offset());
                assert_eq!(a.page_encoding_stats(), b.page_encoding_stats());
                assert_eq!(
                    a.unencoded_byte_array_data_bytes(),
                    b.unencoded_byte_array_data_bytes()
                );
            }
        }
        let once = std::fs::read(&path).unwrap();
        rewrite_local(&path, &[]).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == once,
            "a second rewrite changed bytes"
        );
    }

    #[test]
    fn an_added_entry_is_read_back_with_the_rows_and_page_indexes_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path());
        let rows = |path: &std::path::Path| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap();
            reader.map(|b| b.unwrap()).collect::<Vec<_>>()
        };
        let before = rows(&path);
        rewrite_local(&path, &[("comment", "a table"), ("a", "first")]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let options = datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions::new()
            .with_page_index_policy(datafusion::parquet::file::metadata::PageIndexPolicy::Required);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options).unwrap();
        let metadata = builder.metadata().clone();
        let keys: Vec<(String, Option<String>)> = metadata
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        assert_eq!(keys[0], ("ARROW:schema".to_string(), keys[0].1.clone()));
        assert_eq!(
            &keys[1..],
            &[
                ("a".into(), Some("first".into())),
                ("comment".into(), Some("a table".into()))
            ]
        );
        assert!(
            metadata.offset_index().is_some_and(|o| o.len() == 5),
            "page indexes still found"
        );
        assert_eq!(
            builder.schema().metadata().get("comment").map(String::as_str),
            Some("a table")
        );
        assert_eq!(rows(&path), before);
        // Again: the entry is replaced, not repeated.
        rewrite_local(&path, &[("comment", "another")]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let metadata = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .metadata()
            .clone();
        let comments: Vec<_> = metadata
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .iter()
            .filter(|kv| kv.key == "comment")
            .map(|kv| kv.value.clone().unwrap())
            .collect();
        assert_eq!(comments, ["another"]);
    }
}
