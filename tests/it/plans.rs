//! The models' physical plans: what DataFusion holds in memory to run them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_plan::{ExecutionPlan, collect, displayable};
use growth_jobs::output::manifest::Materialized;

use crate::support::*;

/// The repository's models planned over `ws`'s input for the run date 2026-06-30.
async fn plan_models(ws: &Workspace) -> growth_jobs::transform::Plan {
    let mut options = ws.options(Some("2026-06-30"));
    options.models_dir = repo_models();
    growth_jobs::transform::plan(&options).await.unwrap()
}

/// The physical plan DataFusion runs for `model`.
async fn physical_plan(plan: &growth_jobs::transform::Plan, model: &str) -> Arc<dyn ExecutionPlan> {
    plan.ctx
        .table(model)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}

/// The count `name` of one operator of a plan that ran, over its partitions; 0 when it has none.
fn metric(plan: &Arc<dyn ExecutionPlan>, name: &str) -> usize {
    plan.metrics()
        .and_then(|m| m.sum_by_name(name))
        .map_or(0, |count| count.as_usize())
}

/// The rows each cross or nested-loop join in `plan` held in memory (its build side), by the
/// join's place in the plan.
fn held_by_loop_joins(plan: &Arc<dyn ExecutionPlan>, path: &str, held: &mut Vec<(String, usize)>) {
    let here = format!("{path}/{}", plan.name());
    if matches!(plan.name(), "CrossJoinExec" | "NestedLoopJoinExec") {
        held.push((here.clone(), metric(plan, "build_input_rows")));
    }
    for child in plan.children() {
        held_by_loop_joins(child, &here, held);
    }
}

/// Every loop join of every published model, by (place in the plan, occurrence), with the rows
/// it held, on a sample of `customers`.
async fn loop_joins_on(customers: u64) -> BTreeMap<(String, usize), usize> {
    let ws = Workspace::new();
    generate_into(&ws.input(), customers, 5);
    let plan = plan_models(&ws).await;
    let mut joins = BTreeMap::new();
    for model in plan
        .models
        .iter()
        .filter(|m| m.materialized == Materialized::Table)
    {
        let physical = physical_plan(&plan, &model.name).await;
        collect(physical.clone(), plan.ctx.task_ctx()).await.unwrap();
        let mut held = Vec::new();
        held_by_loop_joins(&physical, &model.name, &mut held);
        for (place, rows) in held {
            let occurrence = joins.keys().filter(|(p, _)| *p == place).count();
            joins.insert((place, occurrence), rows);
        }
    }
    joins
}

/// A cross join, and a join with no equality to hash on (a nested-loop join), hold their whole
/// left side in memory, which cannot spill under a memory cap: that side must be one that does
/// not grow with the customers (the run's bounds, the settings, a calendar, a grid of days and
/// segments). At 10M customers `stg_kpi_monthly_counts` held its 47M customer-months there and
/// peaked at 5.6 GiB under a 2 GiB cap; `rfm_segments` held every buying customer. Run on 400
/// and on 3,200 customers, a held side that grew more than 5x grows with them (the customers'
/// own rows grow about 8x; the cohort grid, bounded by months and segments, less than 5x).
#[tokio::test]
async fn loop_joins_hold_a_side_that_does_not_grow_with_the_customers() {
    let (small, large) = (loop_joins_on(400).await, loop_joins_on(3_200).await);
    // Statistics may order a join's sides differently at the two sizes; compare the joins
    // found at both.
    let both = small.keys().filter(|join| large.contains_key(*join)).count();
    assert!(
        both >= 10,
        "only {both} loop joins found at both sizes: the walk misses them"
    );
    let growing: Vec<_> = large
        .iter()
        .filter(|(join, rows)| {
            small
                .get(*join)
                .is_some_and(|held| **rows > 1_000 && **rows > 5 * held)
        })
        .map(|(join, rows)| format!("{}: {} -> {rows} rows", join.0, small[join]))
        .collect();
    assert!(
        growing.is_empty(),
        "loop joins holding a side that grows with the customers: {growing:#?}"
    );
}

/// `stg_order_deliveries` on `customers` generated customers, with `shipments` either absent or
/// present and empty: its rows and its physical plan.
async fn order_deliveries(shipments_present: bool) -> (Vec<RecordBatch>, String) {
    let ws = Workspace::new();
    generate_into(&ws.input(), 300, 5);
    let shipments = ws.input().join("shipments");
    let file = std::fs::read_dir(&shipments)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "parquet"))
        .expect("the generator writes shipments");
    let schema = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
        .unwrap()
        .schema()
        .clone();
    std::fs::remove_dir_all(&shipments).unwrap();
    if shipments_present {
        std::fs::create_dir(&shipments).unwrap();
        let out = std::fs::File::create(shipments.join("empty.parquet")).unwrap();
        ArrowWriter::try_new(out, schema, None).unwrap().close().unwrap();
    }
    let plan = plan_models(&ws).await;
    let physical = physical_plan(&plan, "stg_order_deliveries").await;
    let shape = displayable(physical.as_ref()).indent(true).to_string();
    (collect(physical, plan.ctx.task_ctx()).await.unwrap(), shape)
}

/// Without a shipments input, `stg_order_deliveries` takes each completed order as it stands,
/// where with one it groups every order and shipment by `order_id` (the grouping was about half
/// of the model at 10M customers, for nothing when there is no shipment to join). Both branches
/// must publish the same table when there is no shipment: same rows, order, types and
/// nullability.
#[tokio::test]
async fn order_deliveries_skip_the_grouping_by_order_without_shipments_and_keep_the_table() {
    let (grouped, grouped_plan) = order_deliveries(true).await;
    let (plain, plain_plan) = order_deliveries(false).await;
    let by_order = "gby=[order_id@";
    assert!(grouped_plan.contains(by_order), "{grouped_plan}");
    assert!(!plain_plan.contains(by_order), "{plain_plan}");
    let (grouped, plain) = (
        concat_batches(&grouped[0].schema(), &grouped).unwrap(),
        concat_batches(&plain[0].schema(), &plain).unwrap(),
    );
    assert!(plain.num_rows() > 1_000, "{} orders", plain.num_rows());
    assert_eq!(plain.schema(), grouped.schema());
    assert_eq!(plain, grouped);
}

/// The rows each aggregation in `plan` passed on without aggregating them (partial aggregation
/// skipped), summed over the plan.
fn rows_not_aggregated(plan: &Arc<dyn ExecutionPlan>) -> usize {
    metric(plan, "skipped_aggregation_rows")
        + plan
            .children()
            .into_iter()
            .map(rows_not_aggregated)
            .sum::<usize>()
}

/// Grouping orders by (customer, day), as `stg_customer_days` and `daily_sales` do, keeps about
/// 75% of the rows: a partial aggregation then repeats the final one's work, and every session
/// skips it above 70% (DataFusion's default is 80%; docs/design/performance.md: Side by side with the peer). 400,000
/// rows into 300,000 groups must be passed on unaggregated, and still counted right.
#[tokio::test]
async fn a_partial_aggregation_that_keeps_three_rows_in_four_is_skipped() {
    let ctx = growth_jobs::engine::new_session();
    let keys = Int64Array::from_iter_values((0..400_000).map(|i| i * 3 / 4));
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(keys)]).unwrap();
    let halves = vec![vec![batch.slice(0, 200_000)], vec![batch.slice(200_000, 200_000)]];
    let table = MemTable::try_new(schema, halves).unwrap();
    ctx.register_table("t", Arc::new(table)).unwrap();
    let physical = ctx
        .sql("select k, count(*) as n from t group by k")
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = collect(physical.clone(), ctx.task_ctx()).await.unwrap();
    let groups = concat_batches(&batches[0].schema(), &batches).unwrap();
    let counts = groups.column(1).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(groups.num_rows(), 300_000);
    assert_eq!(counts.iter().flatten().sum::<i64>(), 400_000);
    let shape = displayable(physical.as_ref()).indent(true).to_string();
    assert!(rows_not_aggregated(&physical) > 0, "{shape}");
}
