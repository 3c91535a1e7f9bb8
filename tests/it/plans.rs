//! The models' physical plans: what DataFusion holds in memory to run them.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::physical_plan::{ExecutionPlan, collect};
use growth_jobs::transform::sql_models::Materialized;

use crate::support::*;

/// The rows each cross or nested-loop join in `plan` held in memory (its build side), by the
/// join's place in the plan.
fn held_by_loop_joins(plan: &Arc<dyn ExecutionPlan>, path: &str, held: &mut Vec<(String, usize)>) {
    let here = format!("{path}/{}", plan.name());
    if matches!(plan.name(), "CrossJoinExec" | "NestedLoopJoinExec") {
        let rows = plan
            .metrics()
            .and_then(|m| m.sum_by_name("build_input_rows"))
            .map_or(0, |rows| rows.as_usize());
        held.push((here.clone(), rows));
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
    let mut options = ws.options(Some("2026-06-30"));
    options.models_dir = repo_models();
    let plan = growth_jobs::transform::plan(&options).await.unwrap();
    let mut joins = BTreeMap::new();
    for model in plan
        .models
        .iter()
        .filter(|m| m.materialized == Materialized::Table)
    {
        let physical = plan
            .ctx
            .table(model.name.as_str())
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
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
