//! The input contract: which tables and columns the jobs read, which source types are
//! accepted for each, and the validation that runs before anything is written.
//!
//! Every file of every table is checked from its Parquet footer alone (no data is scanned),
//! so a bad file is named precisely and a run stops before its first write.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use futures::TryStreamExt;
use object_store::ObjectMeta;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::storage::Root;

/// The logical type of a contract column, with the source types it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An identifier: Utf8, or any integer (cast to its decimal text).
    Id,
    /// A label such as a market or channel: any string type, dictionary-encoded included.
    Text,
    /// An instant: a timestamp of any unit and zone; without a zone it is taken as UTC.
    Timestamp,
    /// A calendar day: Date32 or Date64.
    Date,
    /// US dollars: any float, integer or decimal, read as Float64.
    Money,
    /// A count that fits Int32: any integer; a value out of range fails the run.
    Int32,
    /// A count: any integer.
    Int64,
    /// A flag: Boolean.
    Bool,
}

impl Kind {
    /// The type DataFusion reads every file's column as (the listing table's schema).
    pub(crate) fn storage_type(self) -> DataType {
        match self {
            Kind::Id | Kind::Text => DataType::Utf8,
            Kind::Timestamp => timestamp_utc(),
            Kind::Date => DataType::Date32,
            Kind::Money => DataType::Float64,
            Kind::Int32 | Kind::Int64 => DataType::Int64,
            Kind::Bool => DataType::Boolean,
        }
    }

    /// The type models see.
    pub(crate) fn model_type(self) -> DataType {
        match self {
            Kind::Int32 => DataType::Int32,
            other => other.storage_type(),
        }
    }

    /// Whether a file's column of type `found` can be read as this kind without losing data.
    pub fn accepts(self, found: &DataType) -> bool {
        use DataType::*;
        let is_string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
        let is_integer = |t: &DataType| t.is_integer();
        match self {
            Kind::Id => is_string(found) || is_integer(found),
            Kind::Text => is_string(found) || matches!(found, Dictionary(_, value) if is_string(value)),
            Kind::Timestamp => matches!(found, Timestamp(_, _)),
            Kind::Date => matches!(found, Date32 | Date64),
            // A decimal of at most 15 digits becomes the Float64 that prints back as the same
            // decimal; a wider one could change in its last digits, and is refused.
            Kind::Money => {
                found.is_floating()
                    || is_integer(found)
                    || matches!(found, Decimal32(p, _) | Decimal64(p, _) | Decimal128(p, _) | Decimal256(p, _) if *p <= 15)
            }
            Kind::Int32 | Kind::Int64 => is_integer(found) && *found != UInt64,
            Kind::Bool => *found == Boolean,
        }
    }

    /// The contract's name for the kind, as the reference's table writes it (docs/reference/input-contract.md).
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Id => "Utf8 (or an integer id)",
            Kind::Text => "Utf8",
            Kind::Timestamp => "Timestamp (UTC; any unit, no zone means UTC)",
            Kind::Date => "Date32",
            Kind::Money => "Float64 (USD)",
            Kind::Int32 => "Int32",
            Kind::Int64 => "Int64",
            Kind::Bool => "Boolean",
        }
    }
}

/// Timestamps are microseconds in UTC everywhere: what Spark, Trino and BigQuery read.
pub(crate) fn timestamp_utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// What a model sees when an optional column is absent from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Absent {
    /// The column is required: absence is an error.
    Required,
    /// Null.
    Null,
    /// A fixed text, such as `completed` or `unknown`.
    Text(&'static str),
}

/// One column of the contract.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub default: Absent,
    /// What the column means, for the reference (docs/reference/input-contract.md) and `--help`.
    pub doc: &'static str,
}

/// How a table is cut at the run date: nothing after the end of that day is visible.
#[derive(Clone, Copy, Debug)]
pub struct AsOf {
    /// The row is visible when this column is on or before the run date.
    pub event: &'static str,
    /// Columns that describe a later event (a delivery, an acceptance): null when after it.
    pub later: &'static [&'static str],
}

/// One table of the contract.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    pub name: &'static str,
    pub required: bool,
    pub columns: &'static [Column],
    pub as_of: AsOf,
    pub doc: &'static str,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn col(name: &'static str, kind: Kind, default: Absent, doc: &'static str) -> Column {
    Column {
        name,
        kind,
        default,
        doc,
    }
}

use Absent::{Null, Required, Text};

/// The tables of the contract, in the order the reference lists them.
pub const TABLES: &[Table] = &[
    Table {
        name: "orders",
        required: true,
        doc: "one row per order placed",
        as_of: AsOf {
            event: "order_ts",
            later: &[],
        },
        columns: &[
            col("order_id", Kind::Id, Required, "unique order id"),
            col("customer_id", Kind::Id, Required, "who ordered"),
            col("order_ts", Kind::Timestamp, Required, "when the order was placed"),
            col(
                "amount_usd",
                Kind::Money,
                Required,
                "order value paid, USD, after discounts",
            ),
            col(
                "status",
                Kind::Text,
                Text("completed"),
                "completed, cancelled or refunded; absent means completed",
            ),
            col(
                "market",
                Kind::Text,
                Text("unknown"),
                "ISO 3166 alpha-2 code of the buyer's market",
            ),
            col(
                "channel",
                Kind::Text,
                Text("unknown"),
                "channel the order came through",
            ),
            col("items", Kind::Int32, Null, "number of items"),
            col("discount_usd", Kind::Money, Null, "discount granted, USD"),
            col("coupon_code", Kind::Text, Null, "coupon used, if any"),
        ],
    },
    Table {
        name: "customers",
        required: false,
        doc: "one row per customer; derived from orders when absent (first order = signup, attributes `unknown`)",
        as_of: AsOf {
            event: "signup_ts",
            later: &[],
        },
        columns: &[
            col("customer_id", Kind::Id, Required, "unique customer id"),
            col(
                "signup_ts",
                Kind::Timestamp,
                Required,
                "when the customer signed up",
            ),
            col(
                "market",
                Kind::Text,
                Text("unknown"),
                "ISO 3166 alpha-2 code of the customer's market",
            ),
            col(
                "acquisition_channel",
                Kind::Text,
                Text("unknown"),
                "search, social_ads, influencer, referral, marketplace, ...",
            ),
            col(
                "referrer_customer_id",
                Kind::Id,
                Null,
                "who invited them, when acquired by referral",
            ),
            col("is_member", Kind::Bool, Null, "paid membership"),
        ],
    },
    Table {
        name: "sessions",
        required: false,
        doc: "one row per visit (app or web)",
        as_of: AsOf {
            event: "session_start_ts",
            later: &[],
        },
        columns: &[
            col("session_id", Kind::Id, Required, "unique session id"),
            col(
                "customer_id",
                Kind::Id,
                Null,
                "who, when logged in; null for anonymous visits",
            ),
            col(
                "session_start_ts",
                Kind::Timestamp,
                Required,
                "when the visit started",
            ),
            col("market", Kind::Text, Text("unknown"), "market of the visit"),
            col("device", Kind::Text, Text("unknown"), "ios, android, web, ..."),
            col(
                "channel",
                Kind::Text,
                Text("unknown"),
                "traffic source of the visit",
            ),
        ],
    },
    Table {
        name: "marketing_spend",
        required: false,
        doc: "one row per day, market, channel and campaign",
        as_of: AsOf {
            event: "spend_date",
            later: &[],
        },
        columns: &[
            col("spend_date", Kind::Date, Required, "day of the spend (UTC)"),
            col("market", Kind::Text, Required, "market the spend targets"),
            col("channel", Kind::Text, Required, "acquisition channel paid for"),
            col("campaign_id", Kind::Id, Text("unknown"), "campaign"),
            col("spend_usd", Kind::Money, Required, "amount spent, USD"),
            col("impressions", Kind::Int64, Null, "ad impressions"),
            col("clicks", Kind::Int64, Null, "ad clicks"),
        ],
    },
    Table {
        name: "invites",
        required: false,
        doc: "one row per invite sent by a customer",
        as_of: AsOf {
            event: "sent_ts",
            later: &["accepted_ts", "invitee_customer_id"],
        },
        columns: &[
            col("invite_id", Kind::Id, Required, "unique invite id"),
            col("inviter_customer_id", Kind::Id, Required, "who sent it"),
            col("sent_ts", Kind::Timestamp, Required, "when it was sent"),
            col(
                "share_channel",
                Kind::Text,
                Text("unknown"),
                "whatsapp, line, instagram, link, ...",
            ),
            col(
                "invitee_customer_id",
                Kind::Id,
                Null,
                "who accepted it; null until accepted",
            ),
            col(
                "accepted_ts",
                Kind::Timestamp,
                Null,
                "when it was accepted; null until accepted",
            ),
            col("coupon_code", Kind::Text, Null, "coupon attached to the invite"),
        ],
    },
    Table {
        name: "shipments",
        required: false,
        doc: "one row per shipped order",
        as_of: AsOf {
            event: "shipped_ts",
            later: &["delivered_ts"],
        },
        columns: &[
            col("order_id", Kind::Id, Required, "the order shipped"),
            col(
                "shipped_ts",
                Kind::Timestamp,
                Required,
                "when it left the warehouse",
            ),
            col(
                "delivered_ts",
                Kind::Timestamp,
                Null,
                "when it was delivered; null while in transit",
            ),
            col("carrier", Kind::Text, Text("unknown"), "carrier"),
            col(
                "origin_market",
                Kind::Text,
                Text("unknown"),
                "market it ships from",
            ),
            col("dest_market", Kind::Text, Text("unknown"), "market it ships to"),
        ],
    },
];

/// The contract table of that name.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// A validated input table: its files and the contract columns they hold.
#[derive(Clone, Debug)]
pub struct InputTable {
    pub spec: &'static Table,
    pub files: Vec<ObjectMeta>,
    /// Contract columns found in at least one file.
    pub present: Vec<&'static Column>,
    /// Rows over all files, from the footers.
    pub rows: u64,
    /// Per column with a text default: the null values the files' statistics count, which the
    /// views read as that default (a null `status` is a completed order).
    pub defaulted: BTreeMap<String, u64>,
    /// Rows whose event time is null, from the files' statistics; None when a file has none.
    pub null_events: Option<u64>,
    /// Per file (in the order of `files`), the present columns with a text default that it
    /// lacks: its rows read the default there.
    pub lacking: Vec<Vec<&'static str>>,
    /// Per file (in the order of `files`), its earliest event time in UTC microseconds, from
    /// its statistics; None when they do not say. A file whose earliest event is after a run
    /// date's end holds nothing that run can see.
    pub first_events: Vec<Option<i64>>,
}

impl InputTable {
    /// The schema every file is read with: the present contract columns, in storage types.
    pub(crate) fn storage_schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .present
            .iter()
            .map(|c| Field::new(c.name, c.kind.storage_type(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// Fingerprint and size of one input table, for the manifest.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct InputSummary {
    pub present: bool,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 over each file's path, size and modification time (or ETag).
    pub fingerprint: Option<String>,
    /// Null values read as the contract's default, per column (see [`InputTable::defaulted`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaulted: BTreeMap<String, u64>,
}

/// The validated input: the tables present, and the optional ones absent.
#[derive(Clone, Debug)]
pub struct Input {
    pub tables: BTreeMap<&'static str, InputTable>,
}

impl Input {
    /// Names of the optional tables not given.
    pub fn absent(&self) -> Vec<&'static str> {
        TABLES
            .iter()
            .filter(|t| !self.tables.contains_key(t.name))
            .map(|t| t.name)
            .collect()
    }

    /// One line per column whose null values the views read as the contract's default, with
    /// how many: the rows stay (a row rule would also catch files without the column, whose
    /// absent values the contract defines), and the manifest and the report say so.
    pub(crate) fn defaulted_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (name, table) in &self.tables {
            for (column, nulls) in &table.defaulted {
                let default = match table.spec.column(column).map(|c| c.default) {
                    Some(Absent::Text(text)) => text,
                    _ => continue,
                };
                warnings.push(format!(
                    "{name}.{column}: {nulls} row(s) have a null value, read as {default:?} (the contract's \
                     value when the input does not say)"
                ));
            }
        }
        warnings
    }

    /// Per present table, the hash of the files a run whose events end before `end` (UTC
    /// microseconds) can see: every file but those whose statistics put their earliest event
    /// at or after `end`. A file added with tomorrow's rows leaves today's hash as it was.
    pub(crate) fn visible_hashes(&self, root: &Root, end: i64) -> BTreeMap<&'static str, String> {
        self.tables
            .iter()
            .map(|(name, t)| {
                let visible: Vec<ObjectMeta> = t
                    .files
                    .iter()
                    .zip(&t.first_events)
                    .filter(|(_, first)| first.is_none_or(|first| first < end))
                    .map(|(file, _)| file.clone())
                    .collect();
                (*name, files_hash(root, &visible))
            })
            .collect()
    }

    /// One summary per contract table, for the manifest.
    pub(crate) fn summaries(&self, root: &Root) -> BTreeMap<String, InputSummary> {
        TABLES
            .iter()
            .map(|spec| {
                let summary = match self.tables.get(spec.name) {
                    None => InputSummary {
                        present: false,
                        files: 0,
                        rows: 0,
                        bytes: 0,
                        fingerprint: None,
                        defaulted: BTreeMap::new(),
                    },
                    Some(t) => InputSummary {
                        present: true,
                        files: t.files.len(),
                        rows: t.rows,
                        bytes: t.files.iter().map(|f| f.size).sum(),
                        fingerprint: Some(files_hash(root, &t.files)),
                        defaulted: t.defaulted.clone(),
                    },
                };
                (spec.name.to_string(), summary)
            })
            .collect()
    }
}

/// Whether a listed object is a data file: `.parquet`, not hidden, not under a hidden or
/// `_`-prefixed folder (Spark's `_SUCCESS`, `_temporary`, ...).
fn is_data_file(relative: &str) -> bool {
    relative.ends_with(".parquet")
        && relative
            .split('/')
            .all(|part| !part.starts_with('.') && !part.starts_with('_'))
}

/// An input root whose tables met the contract. A night validates it once and every date of a
/// backfill, and every stage of a date, reads through it.
#[derive(Clone, Debug)]
pub struct Source {
    pub root: Root,
    pub input: Input,
}

impl Source {
    /// Opens the input root at `location` (a folder or an `s3://` URL) and validates it.
    pub async fn open(location: &str) -> Result<Source> {
        let root = Root::open(location, false)?;
        let input = validate(&root).await?;
        tracing::info!(tables = input.tables.len(), absent = ?input.absent(), "input valid");
        Ok(Source { root, input })
    }

    /// One summary per contract table, for the manifest.
    pub(crate) fn summaries(&self) -> BTreeMap<String, InputSummary> {
        self.input.summaries(&self.root)
    }

    /// Turns an internal failure of a run that read this input into the bad file behind it, when
    /// one is: a page that cannot be decoded (a corrupt file, text that is not UTF-8) fails
    /// the engine without naming the file, so each file's contract columns are read in turn,
    /// and the first that fails is named (exit 3). Other errors pass through; a clean run pays
    /// nothing.
    pub(crate) async fn explain(&self, error: Error) -> Error {
        if !matches!(
            error,
            Error::Engine { .. } | Error::Parquet { .. } | Error::Arrow { .. }
        ) {
            return error;
        }
        for (name, table) in &self.input.tables {
            for file in &table.files {
                if let Err(reason) = read_whole(&self.root, table, file).await {
                    return Error::BadFile {
                        table: name.to_string(),
                        file: self.root.describe(&file.location),
                        reason: format!(
                            "a page cannot be decoded (a corrupt file, or text that is not UTF-8): {reason}"
                        ),
                    };
                }
            }
        }
        error
    }
}

/// Reads every row of a file's contract columns, decoding (and checking) each page.
async fn read_whole(root: &Root, table: &InputTable, file: &ObjectMeta) -> std::result::Result<(), String> {
    let ctx = crate::engine::new_session();
    root.register(&ctx);
    let frame = ctx
        .read_parquet(root.url_of(&file.location), Default::default())
        .await
        .map_err(|e| e.to_string())?;
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|name| table.present.iter().any(|c| c.name == name))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut rows = frame
        .select_columns(&columns)
        .map_err(|e| e.to_string())?
        .execute_stream()
        .await
        .map_err(|e| e.to_string())?;
    while rows.try_next().await.map_err(|e| e.to_string())?.is_some() {}
    Ok(())
}

/// Lists and checks every table under `root`; stops at the first violation.
pub async fn validate(root: &Root) -> Result<Input> {
    let mut tables = BTreeMap::new();
    for spec in TABLES {
        let folder = root.path(&[spec.name]);
        let listed: Vec<ObjectMeta> =
            root.store
                .list(Some(&folder))
                .try_collect()
                .await
                .map_err(|e| Error::BadFile {
                    table: spec.name.into(),
                    file: root.describe(&folder),
                    reason: format!("cannot list the folder: {e}"),
                })?;
        if listed.is_empty() && !folder_exists(root, &folder) {
            if spec.required {
                return Err(Error::MissingTable {
                    table: spec.name.into(),
                    location: root.describe(&folder),
                });
            }
            continue;
        }
        let mut files: Vec<ObjectMeta> = listed
            .into_iter()
            .filter(|meta| {
                meta.location
                    .prefix_match(&folder)
                    .map(|parts| {
                        is_data_file(
                            &parts
                                .map(|p| p.as_ref().to_string())
                                .collect::<Vec<_>>()
                                .join("/"),
                        )
                    })
                    .unwrap_or(false)
            })
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        if files.is_empty() {
            return Err(Error::EmptyTable {
                table: spec.name.into(),
                location: root.describe(&folder),
            });
        }
        tables.insert(spec.name, check_files(root, spec, files).await?);
    }
    Ok(Input { tables })
}

/// A folder with no objects exists on a local disk; on an object store it does not.
fn folder_exists(root: &Root, folder: &object_store::path::Path) -> bool {
    root.local.is_some() && std::path::Path::new(&format!("/{folder}")).is_dir()
}

async fn check_files(root: &Root, spec: &'static Table, files: Vec<ObjectMeta>) -> Result<InputTable> {
    let mut present: Vec<&'static Column> = Vec::new();
    let mut rows = 0u64;
    let mut defaulted = BTreeMap::new();
    let mut null_events = Some(0u64);
    let mut first_events = Vec::with_capacity(files.len());
    let mut lacking = Vec::with_capacity(files.len());
    for meta in &files {
        let file = root.describe(&meta.location);
        let bad_file = |reason: String| Error::BadFile {
            table: spec.name.into(),
            file: file.clone(),
            reason,
        };
        if meta.size == 0 {
            return Err(bad_file("the file is empty (0 bytes)".into()));
        }
        let footer = crate::storage::parquet_footer(root, meta)
            .await
            .map_err(|e| bad_file(format!("not a readable Parquet file ({e})")))?;
        rows += footer.rows;
        null_events = null_events
            .zip(footer.null_count(spec.as_of.event))
            .map(|(sum, nulls)| sum + nulls);
        first_events.push(footer.min_micros(spec.as_of.event));
        let mut file_lacks = Vec::new();
        for column in spec.columns {
            match footer.schema.field_with_name(column.name) {
                Err(_) if column.default == Absent::Required => {
                    return Err(Error::MissingColumn {
                        table: spec.name.into(),
                        column: column.name.into(),
                        file,
                    });
                }
                Err(_) if matches!(column.default, Absent::Text(_)) => file_lacks.push(column.name),
                Err(_) => {}
                Ok(field) => {
                    if !column.kind.accepts(field.data_type()) {
                        return Err(Error::BadType {
                            table: spec.name.into(),
                            column: column.name.into(),
                            file,
                            found: field.data_type().to_string(),
                            expected: column.kind.describe().into(),
                        });
                    }
                    if !present.iter().any(|c| c.name == column.name) {
                        present.push(column);
                    }
                    if let Absent::Text(_) = column.default
                        && !crate::input::rules::null_is_a_rule(spec.name, column.name)
                        && let Some(nulls) = footer.null_count(column.name).filter(|&n| n > 0)
                    {
                        *defaulted.entry(column.name.to_string()).or_default() += nulls;
                    }
                }
            }
        }
        lacking.push(file_lacks);
    }
    // Keep the contract's column order, whatever order the files had.
    present.sort_by_key(|c| spec.columns.iter().position(|x| x.name == c.name));
    // A column no file has is absent, read as its default by the view, not lacking.
    for columns in &mut lacking {
        columns.retain(|name| present.iter().any(|c| c.name == *name));
    }
    Ok(InputTable {
        spec,
        files,
        present,
        rows,
        defaulted,
        null_events,
        first_events,
        lacking,
    })
}

/// SHA-256 over each file's path, size and modification time (and ETag, on an object store).
fn files_hash(root: &Root, files: &[ObjectMeta]) -> String {
    let mut hash = Sha256::new();
    for f in files {
        hash.update(root.relative(&f.location).as_bytes());
        hash.update(f.size.to_le_bytes());
        hash.update(f.last_modified.timestamp_micros().to_le_bytes());
        hash.update(f.e_tag.as_deref().unwrap_or("").as_bytes());
    }
    format!("{:x}", hash.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_integers_but_money_does_not_accept_text() {
        assert!(Kind::Id.accepts(&DataType::Int64));
        assert!(Kind::Id.accepts(&DataType::Utf8View));
        assert!(!Kind::Money.accepts(&DataType::Utf8));
        assert!(Kind::Money.accepts(&DataType::Decimal128(12, 2)));
        assert!(!Kind::Int64.accepts(&DataType::UInt64));
        assert!(!Kind::Date.accepts(&timestamp_utc()));
        assert!(Kind::Timestamp.accepts(&DataType::Timestamp(TimeUnit::Nanosecond, None)));
    }

    #[test]
    fn hidden_and_marker_files_are_not_data() {
        assert!(is_data_file("part-0.parquet"));
        assert!(is_data_file("order_date=2024-01-01/part-0.parquet"));
        assert!(!is_data_file("_SUCCESS"));
        assert!(!is_data_file("_temporary/part-0.parquet"));
        assert!(!is_data_file(".part-0.parquet.crc"));
        assert!(!is_data_file("notes.txt"));
    }

    #[test]
    fn every_table_has_its_as_of_column() {
        for t in TABLES {
            assert!(t.column(t.as_of.event).is_some(), "{}", t.name);
            for later in t.as_of.later {
                assert!(t.column(later).is_some(), "{}.{later}", t.name);
            }
        }
    }
}
