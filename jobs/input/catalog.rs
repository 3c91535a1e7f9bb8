//! Registering the input tables with a DataFusion session, typed and cut at the run date.
//!
//! Each input table is registered twice: `raw.<table>` reads the validated files with the
//! contract's storage types, and `<table>` is a view over it that models read. The view fills
//! absent optional columns with their defaults and drops everything after the end of the run
//! date, so no model can see the future. Absent optional tables are registered as empty views
//! with the full schema (or, for `customers`, derived from `orders`), so models always build.
//! `run_context` is a one-row view with the run date.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::Schema;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::logical_expr::{Expr, cast, lit, when};
use datafusion::prelude::{DataFrame, SessionContext, col};

use crate::error::{Error, Result};
use crate::input::contract::{self, Absent, Input, InputTable, Kind, Table};
use crate::input::time_zones::Zones;
use crate::storage::Root;

/// The schema holding the unfiltered input tables.
pub(crate) const RAW_SCHEMA: &str = "raw";
/// The one-row view with the run date.
pub(crate) const RUN_CONTEXT: &str = "run_context";

/// The date a run is for; its UTC start is `run_context.run_start_ts`, and each market's end
/// of it comes from [`Zones`](crate::input::time_zones::Zones).
#[derive(Clone, Copy, Debug)]
pub struct RunDate {
    pub date: NaiveDate,
}

impl RunDate {
    pub(crate) fn start_micros(self) -> i64 {
        self.date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_micros()
    }

    fn days_since_epoch(self) -> i32 {
        (self.date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days() as i32
    }
}

fn timestamp(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

/// Registers `raw.<table>` for every present input table.
pub(crate) async fn register_raw(ctx: &SessionContext, root: &Root, input: &Input) -> Result<()> {
    root.register(ctx);
    let catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| Error::Internal("the default catalog is missing".into()))?;
    if catalog.schema(RAW_SCHEMA).is_none() {
        catalog
            .register_schema(RAW_SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .map_err(Error::engine("registering the raw schema"))?;
    }
    for table in input.tables.values() {
        let provider = raw_table(ctx, root, table).await?;
        ctx.register_table(TableReference::partial(RAW_SCHEMA, table.spec.name), provider)
            .map_err(Error::engine(format!(
                "registering input table {}",
                table.spec.name
            )))?;
    }
    Ok(())
}

/// The raw table of an input: one listing of its files; or, when some files lack a column with
/// a text default that others have, the union of one listing per set of such columns, with the
/// columns a file lacks read as their defaults. DataFusion would read them as nulls (and, from
/// the files' statistics, before any adapter could step in), where the contract says a file
/// without `status` holds completed orders and a null status is the row rule `null_status`.
async fn raw_table(
    ctx: &SessionContext,
    root: &Root,
    table: &InputTable,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let schema = table.storage_schema();
    let mut groups: std::collections::BTreeMap<&[&str], Vec<object_store::ObjectMeta>> = Default::default();
    for (file, lacking) in table.files.iter().zip(&table.lacking) {
        groups.entry(lacking.as_slice()).or_default().push(file.clone());
    }
    if groups.keys().all(|lacking| lacking.is_empty()) {
        return Ok(listing_table(root, table, &table.files, schema)?);
    }
    let context = format!("reading input table {}", table.spec.name);
    let mut union: Option<DataFrame> = None;
    for (lacking, files) in groups {
        let fields: Vec<_> = schema
            .fields()
            .iter()
            .filter(|f| !lacking.contains(&f.name().as_str()))
            .cloned()
            .collect();
        let provider = listing_table(root, table, &files, Arc::new(Schema::new(fields)))?;
        let mut exprs = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name().as_str();
            exprs.push(match table.spec.column(name).map(|c| c.default) {
                Some(Absent::Text(text)) if lacking.contains(&name) => {
                    cast(lit(text), field.data_type().clone()).alias(name)
                }
                _ => col(name),
            });
        }
        let frame = ctx
            .read_table(provider)
            .and_then(|frame| frame.select(exprs))
            .map_err(Error::engine(context.clone()))?;
        union = Some(match union {
            None => frame,
            Some(before) => before.union(frame).map_err(Error::engine(context.clone()))?,
        });
    }
    Ok(union.expect("at least one group of files").into_view())
}

fn listing_table(
    root: &Root,
    table: &InputTable,
    files: &[object_store::ObjectMeta],
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<Arc<ListingTable>> {
    let context = format!("input table {}", table.spec.name);
    let urls = files
        .iter()
        .map(|f| ListingTableUrl::parse(root.url_of(&f.location)))
        .collect::<datafusion::error::Result<Vec<_>>>()
        .map_err(Error::engine(context.clone()))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(Error::engine(context))?,
    ))
}

/// Registers the as-of views `<table>` and `run_context`.
pub(crate) async fn register_views(
    ctx: &SessionContext,
    input: &Input,
    run_date: RunDate,
    zones: &Zones,
) -> Result<()> {
    register_run_context(ctx, input, run_date, zones)?;
    for spec in contract::TABLES {
        let view = match input.tables.get(spec.name) {
            Some(table) => as_of_view(ctx, table, run_date, zones).await?,
            None if spec.name == "customers" => customers_from_orders(ctx).await?,
            None => empty_view(ctx, spec).await?,
        };
        ctx.register_table(spec.name, view.into_view())
            .map_err(Error::engine(format!("registering view {}", spec.name)))?;
    }
    Ok(())
}

/// `run_context`: the run date, its bounds, and `has_<table>` for every optional input table,
/// so a model can return null, not zero, for a measure whose input is absent. `run_end_ts` is
/// the end of the run date in the last market's time (time_zones.rs): every event a view shows
/// happened before it, so ages measured from it (recency, 7-day delivery) are never negative.
fn register_run_context(ctx: &SessionContext, input: &Input, run_date: RunDate, zones: &Zones) -> Result<()> {
    let mut columns = vec![
        lit(ScalarValue::Date32(Some(run_date.days_since_epoch()))).alias("run_date"),
        timestamp(run_date.start_micros()).alias("run_start_ts"),
        timestamp(zones.latest_end(run_date.date)).alias("run_end_ts"),
    ];
    for spec in contract::TABLES.iter().filter(|t| !t.required) {
        columns.push(lit(input.tables.contains_key(spec.name)).alias(format!("has_{}", spec.name)));
    }
    let view = ctx
        .read_empty()
        .and_then(|df| df.select(columns))
        .map_err(Error::engine("building run_context"))?;
    ctx.register_table(RUN_CONTEXT, view.into_view())
        .map_err(Error::engine("registering run_context"))?;
    Ok(())
}

/// The typed null of a column's model type.
fn null_of(kind: Kind) -> Result<Expr> {
    ScalarValue::try_from(&kind.model_type())
        .map(lit)
        .map_err(Error::engine("typing a null"))
}

fn default_expr(column: &contract::Column) -> Result<Expr> {
    match column.default {
        Absent::Text(text) => Ok(lit(text)),
        _ => null_of(column.kind),
    }
}

async fn as_of_view(
    ctx: &SessionContext,
    table: &InputTable,
    run_date: RunDate,
    zones: &Zones,
) -> Result<DataFrame> {
    let spec = table.spec;
    // The run date ends at midnight in each row's market (time_zones.rs); a table without a
    // market column ends with the last market's day.
    let market = MARKET_COLUMNS
        .iter()
        .find(|name| spec.column(name).is_some())
        .map(|name| table.present.iter().any(|c| c.name == *name).then_some(*name));
    let end = match market {
        Some(market) => zones.end_by_market(market, run_date.date),
        None => Ok(timestamp(zones.latest_end(run_date.date))),
    }
    .map_err(Error::engine(format!("building view {}", spec.name)))?;
    // A later event (delivery, acceptance) after the run date has not happened yet.
    let later_visible = spec.as_of.later.first().map(|event| col(*event).lt(end.clone()));
    let mut exprs = Vec::with_capacity(spec.columns.len());
    for column in spec.columns {
        let present = table.present.iter().any(|c| c.name == column.name);
        let mut expr = if present {
            let value = col(column.name);
            let value = if column.kind.model_type() != column.kind.storage_type() {
                cast(value, column.kind.model_type())
            } else {
                value
            };
            match column.default {
                Absent::Text(_) if crate::input::rules::null_is_a_rule(spec.name, column.name) => value,
                Absent::Text(text) => datafusion::functions::expr_fn::coalesce(vec![value, lit(text)]),
                _ => value,
            }
        } else {
            default_expr(column)?
        };
        if let Some(visible) = &later_visible
            && spec.as_of.later.contains(&column.name)
        {
            expr = when(visible.clone(), expr)
                .otherwise(null_of(column.kind)?)
                .map_err(Error::engine("building an as-of column"))?;
        }
        exprs.push(expr.alias(column.name));
    }
    let event = spec
        .column(spec.as_of.event)
        .expect("every contract table has its as-of column");
    let visible = match event.kind {
        Kind::Date => col(event.name).lt_eq(lit(ScalarValue::Date32(Some(run_date.days_since_epoch())))),
        _ => col(event.name).lt(end),
    };
    ctx.table(TableReference::partial(RAW_SCHEMA, spec.name))
        .await
        .and_then(|df| df.filter(visible))
        .and_then(|df| df.select(exprs))
        .map_err(Error::engine(format!("building view {}", spec.name)))
}

/// The columns that place a row in a market, by table (shipments by where they go).
const MARKET_COLUMNS: [&str; 2] = ["market", "dest_market"];

/// An absent table's view: its columns, typed, and no rows.
async fn empty_view(ctx: &SessionContext, spec: &Table) -> Result<DataFrame> {
    let exprs = spec
        .columns
        .iter()
        .map(|c| null_of(c.kind).map(|e| e.alias(c.name)))
        .collect::<Result<Vec<_>>>()?;
    no_rows(ctx, exprs, &format!("empty view {}", spec.name)).await
}

/// A frame of the given columns and no rows. The rows are filtered out of a one-row `values`
/// on a column, not with `where false`: the optimizer turns a constant false filter into an
/// empty relation, and on the way to a Ballista scheduler an empty relation loses its columns'
/// table name (models reading `sessions.session_start_ts` then fail to plan) and, written
/// out, its columns too (a Parquet file with no columns that no reader opens).
pub(crate) async fn no_rows(ctx: &SessionContext, columns: Vec<Expr>, what: &str) -> Result<DataFrame> {
    let one_row = ctx
        .sql("select column1 as no_rows from (values (1))")
        .await
        .map_err(Error::engine(format!("building the {what}")))?;
    one_row
        .filter(col("no_rows").gt(lit(1)))
        .and_then(|df| df.select(columns))
        .map_err(Error::engine(format!("building the {what}")))
}

/// Without a customers table, a customer is known from their first order.
const CUSTOMERS_FROM_ORDERS: &str = "
select
    customer_id,
    min(order_ts) as signup_ts,
    first_value(market order by order_ts, order_id) as market,
    first_value(channel order by order_ts, order_id) as acquisition_channel,
    cast(null as varchar) as referrer_customer_id,
    cast(null as boolean) as is_member
from orders
group by customer_id";

async fn customers_from_orders(ctx: &SessionContext) -> Result<DataFrame> {
    ctx.sql(CUSTOMERS_FROM_ORDERS)
        .await
        .map_err(Error::engine("deriving customers from orders"))
}

/// Derives `customers` again from the `orders` now registered (after row rules set some aside).
pub(crate) async fn register_customers_from_orders(ctx: &SessionContext) -> Result<()> {
    let view = customers_from_orders(ctx).await?;
    ctx.deregister_table("customers")
        .map_err(Error::engine("replacing view customers"))?;
    ctx.register_table("customers", view.into_view())
        .map_err(Error::engine("registering view customers"))?;
    Ok(())
}

/// The default run date: the day of the latest order in the input before `before` (orders
/// after it are out of range, see `quality.latest`).
pub(crate) async fn latest_order_day(root: &Root, input: &Input, before: NaiveDate) -> Result<NaiveDate> {
    newest_order_time(root, input, before)
        .await?
        .map(|at| at.date_naive())
        .ok_or_else(|| Error::NoRunDate {
            reason: "orders has no rows with an order_ts".into(),
        })
}

/// The newest `order_ts` before the day `before` (UTC), or None when there is none.
pub(crate) async fn newest_order_time(
    root: &Root,
    input: &Input,
    before: NaiveDate,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    let ctx = crate::engine::new_session();
    register_raw(&ctx, root, input).await?;
    let failed = || Error::engine("finding the newest order");
    let batches = ctx
        .sql(&format!(
            "select date_part('epoch', max(order_ts)) as at from raw.orders where order_ts < timestamp '{before}T00:00:00Z'"
        ))
        .await
        .map_err(failed())?
        .collect()
        .await
        .map_err(failed())?;
    let seconds = batches.first().filter(|b| b.num_rows() == 1).and_then(|b| {
        b.column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Float64Array>()
            .and_then(|a| (!a.is_null(0)).then(|| a.value(0)))
    });
    Ok(seconds.and_then(|s| chrono::DateTime::from_timestamp_micros((s * 1e6).round() as i64)))
}

/// The names a model may read besides other models.
pub(crate) fn known_tables() -> std::collections::BTreeSet<String> {
    contract::TABLES
        .iter()
        .map(|t| t.name.to_string())
        .chain(
            [
                RUN_CONTEXT,
                "kpi_thresholds",
                "settings",
                "organic_channels",
                "margin_rates",
                "market_regions",
                crate::input::rules::REJECTS_VIEW,
            ]
            .map(String::from),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::parquet::arrow::ArrowWriter;

    use crate::storage::Root;

    fn write(path: &std::path::Path, columns: Vec<(&str, ArrayRef)>) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = std::fs::File::create(path).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// An order of a file without `status` reads completed; a null in a file with it stays null.
    #[tokio::test]
    async fn a_file_without_a_text_column_reads_its_default_and_a_null_stays() {
        let dir = tempfile::tempdir().unwrap();
        let base = |id: &str| -> Vec<(&'static str, ArrayRef)> {
            let at = TimestampMicrosecondArray::from(vec![1_700_000_000_000_000]).with_timezone("UTC");
            vec![
                (
                    "order_id",
                    Arc::new(StringArray::from(vec![id.to_string()])) as ArrayRef,
                ),
                ("customer_id", Arc::new(StringArray::from(vec!["c"])) as ArrayRef),
                ("order_ts", Arc::new(at) as ArrayRef),
                ("amount_usd", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ]
        };
        let mut with = base("o1");
        with.push((
            "status",
            Arc::new(StringArray::from(vec![None::<&str>])) as ArrayRef,
        ));
        write(&dir.path().join("orders/a.parquet"), with);
        write(&dir.path().join("orders/b.parquet"), base("o2"));
        let root = Root::open(dir.path().to_str().unwrap(), false).unwrap();
        let input = crate::input::contract::validate(&root).await.unwrap();
        let ctx = crate::engine::new_session();
        super::register_raw(&ctx, &root, &input).await.unwrap();
        let batches = ctx
            .sql("select order_id, coalesce(status, 'NULL') as status from raw.orders order by order_id")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| o1       | NULL      |"), "{text}");
        assert!(text.contains("| o2       | completed |"), "{text}");
    }
}
