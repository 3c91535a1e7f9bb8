//! Customer features for the models: reading `customer_features` (published, or computed as of
//! an earlier cut-off), drawing seeded samples, and turning rows into the numeric matrix the
//! linfa models take.
//!
//! The SQL model `sql/features/customer_features.sql` defines the features; this module only
//! encodes them. Encoding follows scikit-learn's habits: nulls filled with the training
//! median, `ln(1 + x)` for money and counts, one-hot categories with the levels seen in
//! training (an unseen level encodes as all zeros). The encoder is saved with each model so
//! scoring encodes exactly as training did.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Float64Type, SchemaRef};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::prelude::{col, lit};
use futures::TryStreamExt;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::input::catalog;
use crate::input::contract::Source;
use crate::input::quality;
use crate::storage::Root;
use crate::transform::sql_models::{self, Model};

/// The model (and table) holding the features.
pub(crate) const TABLE: &str = "customer_features";

/// The numeric columns of `customer_features` and whether the models see them as `ln(1 + x)`
/// (heavy-tailed money, counts and durations) or as they are (shares, delivery days).
pub(crate) const NUMERIC: &[(&str, bool)] = &[
    ("recency_days", true),
    ("frequency", true),
    ("monetary_usd", true),
    ("tenure_days", true),
    ("mean_days_between_purchases", true),
    ("sd_days_between_purchases", true),
    ("avg_order_value_usd", true),
    ("discount_share", false),
    ("cancel_refund_share", false),
    ("purchases_30d", true),
    ("purchases_90d", true),
    ("purchases_180d", true),
    ("sessions_30d", true),
    ("sessions_90d", true),
    ("invites_sent", true),
    ("invites_accepted", true),
    ("avg_delivery_days", false),
    ("late_delivery_share", false),
];

/// The categorical columns, one-hot encoded.
pub(crate) const CATEGORICAL: &[&str] = &["market", "acquisition_channel"];

/// How many customers the published features of a run date hold, from the footer; the
/// stages call it first, to fail before any work when the features are not there.
pub(crate) async fn require_published(output: &Root, run_date: NaiveDate) -> Result<u64> {
    crate::output::published::require(output, TABLE, run_date).await
}

/// Streams the published features of a run date; a clear error when they are not there.
pub(crate) async fn read_published(output: &Root, run_date: NaiveDate) -> Result<SendableRecordBatchStream> {
    crate::output::published::read(output, TABLE, run_date).await
}

/// Computes `customer_features` as of any date from the input, in a session that sees
/// nothing after that date: the churn job's features at its cut-offs.
pub struct AsOf {
    source: Source,
    models: Vec<Model>,
    config: Config,
    /// The row checks of each date a session was built for; an earlier date's session reuses
    /// a later date's clean results.
    checked: Mutex<BTreeMap<NaiveDate, quality::Report>>,
}

impl AsOf {
    /// Finds `customer_features` and the models it reads under `models_dir`.
    pub fn new(source: Source, models_dir: &std::path::Path, config: Config) -> Result<Self> {
        Ok(AsOf {
            source,
            models: sql_models::load(models_dir, &[TABLE.to_string()])?,
            config,
            checked: Mutex::new(BTreeMap::new()),
        })
    }

    /// Takes the row checks of `date` done elsewhere (the night's SQL stage, on the same input
    /// and config), so sessions for that date and earlier ones skip what they passed.
    pub(crate) fn with_checked(self, date: NaiveDate, report: quality::Report) -> Self {
        self.lock_checked().insert(date, report);
        self
    }

    /// A session for `date` in which every model up to `customer_features` is a view. Build the
    /// latest date's session first: the earlier ones then skip the checks it passed.
    pub async fn session(&self, date: NaiveDate) -> Result<SessionContext> {
        let ctx = self.checked_session(date).await?;
        crate::transform::plan_models(&ctx, &self.models, |_, _| Ok(())).await?;
        Ok(ctx)
    }

    /// A [`session`](Self::session) for `date` whose input holds only the customers that a
    /// seeded sample of `sampling.size` of the active ones can draw, and how many were active.
    ///
    /// The sample keeps an active customer when its [`sample_key`] is below size / active: the
    /// sample of the active rows of every customer's features, drawn here before computing any.
    /// Every feature of a customer comes from that customer's own rows, so the kept customers'
    /// features are what the whole input gives them, and the active rows of this session's
    /// features are exactly that sample, computed for a fraction of the customers.
    pub async fn sampled_session(
        &self,
        date: NaiveDate,
        sampling: &Sampling,
    ) -> Result<(SessionContext, u64)> {
        let ctx = self.checked_session(date).await?;
        let active = count_active(&ctx, self.model(PURCHASES)?, sampling.active_days).await?;
        let fraction = sampling.size as f64 / active.max(1) as f64;
        if fraction < 1.0 {
            keep_customers_below(&ctx, sampling.seed, fraction).await?;
        }
        crate::transform::plan_models(&ctx, &self.models, |_, _| Ok(())).await?;
        Ok((ctx, active))
    }

    /// A session for `date` with the input registered and checked, and no models yet.
    async fn checked_session(&self, date: NaiveDate) -> Result<SessionContext> {
        let later = self.lock_checked().range(date..).next().map(|(_, r)| r.clone());
        let (ctx, report) = crate::input::session::session_for(
            &self.source.root,
            &self.source.input,
            catalog::RunDate { date },
            &self.config,
            later.as_ref(),
            // Local: the sample key is a function of ours, which a cluster does not know.
            &crate::config::Engine::Local,
        )
        .await?;
        self.lock_checked().entry(date).or_insert(report);
        Ok(ctx)
    }

    fn model(&self, name: &str) -> Result<&Model> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| Error::BadModel {
                model: TABLE.into(),
                file: TABLE.into(),
                reason: format!("the churn windows need the model {name}, which {TABLE} does not read"),
            })
    }

    fn lock_checked(&self) -> std::sync::MutexGuard<'_, BTreeMap<NaiveDate, quality::Report>> {
        self.checked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Streams the features of a [`session`](Self::session) built for `date`.
    pub async fn features(session: &SessionContext, date: NaiveDate) -> Result<SendableRecordBatchStream> {
        let context = format!("computing {TABLE} as of {date}");
        session
            .table(TABLE)
            .await
            .map_err(Error::engine(context.clone()))?
            .execute_stream()
            .await
            .map_err(Error::engine(context))
    }
}

/// The model of completed purchases: the churn windows count the active customers and label
/// churn from it.
pub(crate) const PURCHASES: &str = "stg_purchases";

/// Which customers a cut-off's features are computed for: a seeded sample of `size` of those
/// who bought in the `active_days` before the cut-off's end.
pub struct Sampling {
    pub seed: u64,
    pub size: usize,
    pub active_days: u32,
}

/// The input tables keyed by customer, with the column naming the customer. Every other input
/// (shipments by order, spend by channel) is left whole: a feature computed from it still only
/// sees the kept customers' rows through its join to their orders.
const CUSTOMER_KEYS: &[(&str, &str)] = &[
    ("customers", "customer_id"),
    ("orders", "customer_id"),
    ("sessions", "customer_id"),
    ("invites", "inviter_customer_id"),
];

/// Customers whose latest completed purchase is within `days` of the end of the session's date:
/// the rows `active_within` keeps, counted from the purchases alone.
async fn count_active(ctx: &SessionContext, purchases: &Model, days: u32) -> Result<u64> {
    let context = "counting the active customers";
    let planned = ctx.sql(&purchases.sql).await.map_err(Error::engine(context))?;
    ctx.register_table(PURCHASES, planned.into_view())
        .map_err(Error::engine(context))?;
    // The same expression as customer_features.recency_days, so the two agree to the bit.
    let batches = ctx
        .sql(&format!(
            "select count(distinct customer_id) from {PURCHASES} cross join run_context \
             where (cast(run_end_ts as bigint) - cast(order_ts as bigint)) / 86400000000.0 <= {}",
            f64::from(days)
        ))
        .await
        .map_err(Error::engine(context))?
        .collect()
        .await
        .map_err(Error::engine(context))?;
    ctx.deregister_table(PURCHASES).map_err(Error::engine(context))?;
    let count = batches
        .first()
        .map(|b| {
            b.column(0)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(0)
        })
        .unwrap_or(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The input the models up to `customer_features` read four times (purchases for the customer
/// facts and for the gaps, deliveries, every order's status): its sampled rows are computed once
/// and held in memory. At 1M customers that is a fifth of 17.7M orders, where each of the four
/// scans would decode all of them and hash every row's customer id again; the sample holds about
/// `sampling.size` active customers whatever the scale, so the rows held do not grow with it.
const READ_OFTEN: &str = "orders";

/// Re-registers each customer-keyed input as a view of the customers whose [`sample_key`] is
/// below `fraction` ([`READ_OFTEN`] as a table of those rows).
async fn keep_customers_below(ctx: &SessionContext, seed: u64, fraction: f64) -> Result<()> {
    let key = sample_key_udf(seed);
    for (table, column) in CUSTOMER_KEYS {
        let context = format!("keeping the sampled customers of {table}");
        let mut kept = ctx
            .table(*table)
            .await
            .and_then(|df| df.filter(key.call(vec![col(*column)]).lt(lit(fraction))))
            .map_err(Error::engine(context.clone()))?;
        if *table == READ_OFTEN {
            kept = kept.cache().await.map_err(Error::engine(context.clone()))?;
        }
        ctx.deregister_table(*table)
            .map_err(Error::engine(context.clone()))?;
        ctx.register_table(*table, kept.into_view())
            .map_err(Error::engine(context))?;
    }
    Ok(())
}

/// [`sample_key`] as a SQL function of a customer id (null reads as the empty id, as in
/// [`in_sample`]).
fn sample_key_udf(seed: u64) -> ScalarUDF {
    let key = move |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let ids = ColumnarValue::values_to_arrays(args)?;
        let ids = cast(&ids[0], &DataType::Utf8)?;
        let keys: Float64Array = ids
            .as_string::<i32>()
            .iter()
            .map(|id| Some(sample_key(seed, id.unwrap_or_default())))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(keys)))
    };
    create_udf(
        "sample_key",
        vec![DataType::Utf8],
        DataType::Float64,
        Volatility::Immutable,
        Arc::new(key),
    )
}

/// A number in [0, 1) fixed by the seed and the customer id: a customer is in a sample of
/// fraction `f` when this is below `f`, whatever order or batch the rows come in.
pub(crate) fn sample_key(seed: u64, customer_id: &str) -> f64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(customer_id.as_bytes())
        .finalize();
    let bits = u64::from_le_bytes(digest[..8].try_into().expect("a SHA-256 digest has 32 bytes"));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A column of the features table that is not what the stages need.
fn bad_column(column: &str, problem: &str) -> Error {
    Error::BadColumn {
        table: TABLE.into(),
        column: column.into(),
        problem: problem.into(),
    }
}

/// The customer ids of a features batch.
pub(crate) fn customer_ids(batch: &RecordBatch) -> Result<&StringArray> {
    batch
        .column_by_name("customer_id")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| bad_column("customer_id", "is missing or not a string"))
}

/// A column of a features batch as Float64 (nulls kept).
pub(crate) fn numeric_column(batch: &RecordBatch, name: &str) -> Result<Vec<Option<f64>>> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| bad_column(name, "is missing"))?;
    let values = cast(column, &DataType::Float64).map_err(Error::arrow(format!("reading {TABLE}.{name}")))?;
    Ok(values.as_primitive::<Float64Type>().iter().collect())
}

/// Keeps the rows of a batch whose `keep` entry is true.
pub fn filter_rows(batch: &RecordBatch, keep: Vec<bool>) -> Result<RecordBatch> {
    filter_record_batch(batch, &BooleanArray::from(keep)).map_err(Error::arrow(format!("filtering {TABLE}")))
}

/// Which rows of a batch are in a seeded sample of `fraction` of the customers.
pub fn in_sample(batch: &RecordBatch, seed: u64, fraction: f64) -> Result<Vec<bool>> {
    Ok(customer_ids(batch)?
        .iter()
        .map(|id| sample_key(seed, id.unwrap_or_default()) < fraction)
        .collect())
}

/// Which rows of a batch bought within `days` of the end of its date.
pub fn active_within(batch: &RecordBatch, days: f64) -> Result<Vec<bool>> {
    Ok(numeric_column(batch, "recency_days")?
        .into_iter()
        .map(|r| r.is_some_and(|r| r <= days))
        .collect())
}

/// Reads a whole stream, keeping only the rows `keep` marks, into one batch.
pub async fn collect_rows(
    mut stream: SendableRecordBatchStream,
    keep: impl Fn(&RecordBatch) -> Result<Vec<bool>>,
) -> Result<RecordBatch> {
    let schema: SchemaRef = stream.schema();
    let mut kept = Vec::new();
    while let Some(batch) = stream
        .try_next()
        .await
        .map_err(Error::engine(format!("reading {TABLE}")))?
    {
        let batch = filter_rows(&batch, keep(&batch)?)?;
        if batch.num_rows() > 0 {
            kept.push(batch);
        }
    }
    concat_batches(&schema, &kept).map_err(Error::arrow(format!("collecting {TABLE}")))
}

/// One numeric input of the models.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NumericInput {
    pub column: String,
    /// Whether the model sees `ln(1 + max(x, 0))`.
    pub log: bool,
    /// What a null becomes: the training median of the column.
    pub fill: f64,
}

/// One categorical input, one-hot encoded over the levels seen in training.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CategoricalInput {
    pub column: String,
    pub levels: Vec<String>,
}

/// Turns `customer_features` rows into a matrix, the same way at training and at scoring.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Encoder {
    pub numeric: Vec<NumericInput>,
    pub categorical: Vec<CategoricalInput>,
    /// Whether `is_member` (null read as false) is an input.
    pub member: bool,
}

impl Encoder {
    /// Learns fills and levels from the training rows.
    pub fn fit(training: &RecordBatch, numeric: &[&str], categorical: &[&str], member: bool) -> Result<Self> {
        let numeric = numeric
            .iter()
            .map(|&name| {
                let log = NUMERIC
                    .iter()
                    .find(|(column, _)| *column == name)
                    .map(|(_, log)| *log)
                    .ok_or_else(|| bad_column(name, "is not a numeric feature"))?;
                let mut values: Vec<f64> = numeric_column(training, name)?.into_iter().flatten().collect();
                Ok(NumericInput {
                    column: name.to_string(),
                    log,
                    fill: median(&mut values),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let categorical = categorical
            .iter()
            .map(|&name| {
                let levels: BTreeSet<String> = string_column(training, name)?
                    .iter()
                    .map(|v| v.unwrap_or("unknown").to_string())
                    .collect();
                Ok(CategoricalInput {
                    column: name.to_string(),
                    levels: levels.into_iter().collect(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Encoder {
            numeric,
            categorical,
            member,
        })
    }

    /// The names of the matrix columns, in order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .numeric
            .iter()
            .map(|n| {
                if n.log {
                    format!("ln1p_{}", n.column)
                } else {
                    n.column.clone()
                }
            })
            .collect();
        for c in &self.categorical {
            names.extend(c.levels.iter().map(|level| format!("{}={level}", c.column)));
        }
        if self.member {
            names.push("is_member".into());
        }
        names
    }

    /// The matrix of a batch of features.
    pub(crate) fn encode(&self, batch: &RecordBatch) -> Result<Array2<f64>> {
        let rows = batch.num_rows();
        let width = self.names().len();
        let mut matrix = Array2::<f64>::zeros((rows, width));
        let mut offset = 0;
        for input in &self.numeric {
            for (row, value) in numeric_column(batch, &input.column)?.into_iter().enumerate() {
                let value = value.filter(|v| v.is_finite()).unwrap_or(input.fill);
                matrix[[row, offset]] = if input.log { value.max(0.0).ln_1p() } else { value };
            }
            offset += 1;
        }
        for input in &self.categorical {
            let column = string_column(batch, &input.column)?;
            for (row, value) in column.iter().enumerate() {
                let value = value.unwrap_or("unknown");
                if let Ok(level) = input.levels.binary_search_by(|l| l.as_str().cmp(value)) {
                    matrix[[row, offset + level]] = 1.0;
                }
            }
            offset += input.levels.len();
        }
        if self.member {
            let column = batch
                .column_by_name("is_member")
                .and_then(|c| c.as_boolean_opt().cloned())
                .ok_or_else(|| bad_column("is_member", "is missing or not a boolean"))?;
            for row in 0..rows {
                matrix[[row, offset]] = f64::from(column.is_valid(row) && column.value(row));
            }
        }
        Ok(matrix)
    }
}

fn string_column(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| bad_column(name, "is missing"))?;
    let values: Arc<dyn Array> =
        cast(column, &DataType::Utf8).map_err(Error::arrow(format!("reading {TABLE}.{name}")))?;
    Ok(values.as_string::<i32>().clone())
}

/// The median of the values (the mean of the middle two for an even count); 0 when empty.
fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("frequency", DataType::Int64, false),
            Field::new("discount_share", DataType::Float64, true),
            Field::new("market", DataType::Utf8, true),
            Field::new("is_member", DataType::Boolean, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![1, 3, 7])),
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(0.1)])),
                Arc::new(StringArray::from(vec![Some("US"), Some("BR"), None])),
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn encoding_logs_counts_fills_medians_and_one_hots_levels() {
        let encoder = Encoder::fit(&batch(), &["frequency", "discount_share"], &["market"], true).unwrap();
        assert_eq!(
            encoder.names(),
            [
                "ln1p_frequency",
                "discount_share",
                "market=BR",
                "market=US",
                "market=unknown",
                "is_member"
            ]
        );
        // The median of 0.5 and 0.1 fills the null.
        assert!((encoder.numeric[1].fill - 0.3).abs() < 1e-12);
        let matrix = encoder.encode(&batch()).unwrap();
        assert!((matrix[[1, 0]] - 4f64.ln()).abs() < 1e-12);
        assert!((matrix[[1, 1]] - 0.3).abs() < 1e-12);
        assert_eq!(matrix.row(0).to_vec()[2..], [0.0, 1.0, 0.0, 1.0]);
        assert_eq!(matrix.row(2).to_vec()[2..], [0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn an_unseen_level_encodes_as_all_zeros() {
        let training = filter_rows(&batch(), vec![true, false, false]).unwrap();
        let encoder = Encoder::fit(&training, &[], &["market"], false).unwrap();
        let matrix = encoder.encode(&batch()).unwrap();
        assert_eq!(matrix.row(1).to_vec(), [0.0]);
        assert_eq!(matrix.row(0).to_vec(), [1.0]);
    }

    #[test]
    fn sample_keys_are_fixed_by_seed_and_id_and_spread_evenly() {
        assert_eq!(sample_key(42, "C1"), sample_key(42, "C1"));
        assert_ne!(sample_key(42, "C1"), sample_key(43, "C1"));
        let inside = (0..10_000)
            .filter(|i| sample_key(7, &format!("C{i}")) < 0.25)
            .count();
        assert!((2_300..2_700).contains(&inside), "{inside} of 10000 under 0.25");
    }

    #[test]
    fn medians_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
