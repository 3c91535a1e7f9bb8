//! Row rules: the checks every input row must pass before a model sees it, and what happens to
//! the rows that fail.
//!
//! The contract ([`crate::input::contract`]) checks files and columns from their footers; these rules
//! check values. Each rule has a policy (`sql/growth.toml`, `[quality.policy]`):
//! `reject` stops the run before anything is written, naming the table, column, rule and row
//! count; `quarantine` sets the rows aside: models never see them, the `rejects` table lists
//! them with their rule, and the manifest counts them. A table whose quarantined rows exceed
//! `quality.max_reject_share` of its rows fails the run all the same: that much bad data is a
//! broken export, not a few bad rows.
//!
//! Clean tables cost one counting scan each (plus one aggregation of key hashes for duplicate
//! keys and one of the parent's keys for orphans); only a table with findings is rebuilt as a
//! filtered view.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::{DataFrame, SessionContext};
use serde::{Deserialize, Serialize};

use crate::config::{Policy, QualityConfig};
use crate::error::{Error, Result};
use crate::input::catalog::RunDate;
use crate::input::contract::{self, Absent, Input, Kind};
use crate::input::rules::{self, RULES, rule};
use crate::storage::Root;

/// The rows of one table that broke one rule.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub table: String,
    pub rule: String,
    pub policy: Policy,
    pub rows: u64,
    /// Of the table's rows visible at the run date.
    pub share: f64,
}

/// The findings of a session's input, for the manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The first day out of range this session used (`quality.latest`, or its default).
    #[serde(default)]
    pub latest: Option<NaiveDate>,
    /// Rows visible at the run date, per table checked.
    pub rows: BTreeMap<String, u64>,
    /// Rules broken by at least one row.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether `table` was checked and no row of it broke `rule`.
    pub(crate) fn free_of(&self, table: &str, rule: &str) -> bool {
        self.rows.contains_key(table) && !self.findings.iter().any(|f| f.table == table && f.rule == rule)
    }

    /// Whether `table` was checked and no row of it broke any rule: at an earlier run date
    /// (which sees a subset of its rows, under the same `quality.latest`) none can.
    pub fn clean(&self, table: &str) -> bool {
        self.rows.contains_key(table) && !self.findings.iter().any(|f| f.table == table)
    }
}

/// The key of each table: duplicates of it break `duplicate_key`.
fn key(table: &str) -> &'static [&'static str] {
    match table {
        "orders" | "shipments" => &["order_id"],
        "customers" => &["customer_id"],
        "sessions" => &["session_id"],
        "invites" => &["invite_id"],
        "marketing_spend" => &["spend_date", "market", "channel", "campaign_id"],
        _ => &[],
    }
}

/// The columns a rule reads in a table, for messages.
fn rule_columns(table: &contract::Table, rule: &str) -> String {
    let of_kind = |kind: Kind, required_only: bool| -> Vec<&str> {
        table
            .columns
            .iter()
            .filter(|c| c.kind == kind && (!required_only || c.default == Absent::Required))
            .map(|c| c.name)
            .collect()
    };
    let columns: Vec<&str> = match rule {
        "null_id" => of_kind(Kind::Id, true),
        "out_of_range_time" | "null_event_time" => vec![table.as_of.event],
        "bad_amount" => of_kind(Kind::Money, false),
        "unknown_status" | "null_status" => vec!["status"],
        "duplicate_key" => key(table.name).to_vec(),
        "orphan_customer" => vec!["customer_id"],
        "before_signup" => vec!["order_ts", "customers.signup_ts"],
        "orphan_order" => vec!["order_id"],
        _ => Vec::new(),
    };
    columns.join(", ")
}

/// A SQL identifier, quoted.
fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The checks of one table, as SQL over its as-of view.
struct Checks {
    table: &'static contract::Table,
    /// (rule, predicate) judged row by row.
    row: Vec<(&'static str, String)>,
    duplicates: bool,
    /// A join rule, with the table it joins and its predicate over the joined columns.
    joins: Vec<(&'static str, String)>,
}

/// The event times a session accepts: from `earliest` (when set) up to, not including,
/// `latest`, read from the config once so every check of a session uses one bound.
#[derive(Clone, Copy)]
struct TimeRange {
    earliest: Option<NaiveDate>,
    latest: NaiveDate,
}

impl TimeRange {
    fn of(config: &QualityConfig) -> Self {
        TimeRange {
            earliest: config.earliest,
            latest: config.latest_bound(),
        }
    }

    /// The SQL predicate of an event column outside the range.
    fn outside(self, event: &contract::Column) -> String {
        let after = format!("{} >= {}", q(event.name), day_literal(event.kind, self.latest));
        match self.earliest {
            Some(earliest) => format!(
                "{} < {} or {after}",
                q(event.name),
                day_literal(event.kind, earliest)
            ),
            None => after,
        }
    }
}

/// A day's midnight as a SQL literal of an event column's kind.
fn day_literal(kind: Kind, day: NaiveDate) -> String {
    match kind {
        Kind::Date => format!("date '{day}'"),
        _ => format!("timestamp '{day}T00:00:00Z'"),
    }
}

fn checks(table: &'static contract::Table, input: &Input, range: TimeRange) -> Checks {
    let required = |c: &contract::Column| c.default == Absent::Required;
    let mut row = Vec::new();
    let ids: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.kind == Kind::Id && required(c))
        .map(|c| format!("{0} is null or trim({0}) = ''", q(c.name)))
        .collect();
    if !ids.is_empty() {
        row.push(("null_id", ids.join(" or ")));
    }
    let event = table.column(table.as_of.event).expect("as-of column");
    row.push(("out_of_range_time", range.outside(event)));
    let money: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.kind == Kind::Money)
        .map(|c| {
            let bad = format!("{0} < 0 or isnan({0}) or {0} = 'Infinity'::double", q(c.name));
            if required(c) {
                format!("{} is null or {bad}", q(c.name))
            } else {
                bad
            }
        })
        .collect();
    if !money.is_empty() {
        row.push(("bad_amount", money.join(" or ")));
    }
    if table.name == "orders" {
        row.push(("null_status", "status is null".into()));
        row.push((
            "unknown_status",
            "status not in ('completed', 'cancelled', 'refunded')".into(),
        ));
    }
    let mut joins = Vec::new();
    if table.name == "orders" && input.tables.contains_key("customers") {
        joins.push(("orphan_customer", "_customer_id is null".to_string()));
        joins.push(("before_signup", "t.order_ts < _signup_ts".to_string()));
    }
    if table.name == "shipments" {
        joins.push(("orphan_order", "_order_id is null".to_string()));
    }
    Checks {
        table,
        row,
        duplicates: !key(table.name).is_empty(),
        joins,
    }
}

/// The rows of a table with the first rule each breaks (`_rule`, null when none), built from
/// only the `rules` that matter.
fn classified_sql(checks: &Checks, rules: &[&str]) -> String {
    let name = checks.table.name;
    let columns: Vec<String> = checks.table.columns.iter().map(|c| q(c.name)).collect();
    let mut cases = Vec::new();
    for rule in RULES.iter().filter(|r| rules.contains(&r.name)) {
        if let Some((_, predicate)) = checks.row.iter().find(|(r, _)| *r == rule.name) {
            cases.push(format!("when {predicate} then '{}'", rule.name));
        } else if rule.name == "duplicate_key" {
            cases.push("when _copy > 1 then 'duplicate_key'".into());
        } else if let Some((_, predicate)) = checks.joins.iter().find(|(r, _)| *r == rule.name) {
            cases.push(format!("when {predicate} then '{}'", rule.name));
        }
    }
    let copy = if rules.contains(&"duplicate_key") {
        format!(
            ", row_number() over (partition by {} order by {}) as _copy",
            key(name).iter().map(|k| q(k)).collect::<Vec<_>>().join(", "),
            columns.join(", ")
        )
    } else {
        String::new()
    };
    let source = if rules
        .iter()
        .any(|r| ["orphan_customer", "before_signup"].contains(r))
    {
        with_parent(name, &columns, "customers", "customer_id", "_customer_id")
    } else if rules.contains(&"orphan_order") {
        with_parent(name, &columns, "orders", "order_id", "_order_id")
    } else {
        name.to_string()
    };
    let t_columns: Vec<String> = columns.iter().map(|c| format!("t.{c}")).collect();
    // Rules found only outside the view (null or far event times) leave no row to classify.
    let rule = match cases.is_empty() {
        true => "cast(null as varchar)".to_string(),
        false => format!("case {} end", cases.join(" ")),
    };
    format!(
        "select {}, {rule} as _rule from (select *{copy} from {source} as s) as t",
        t_columns.join(", ")
    )
}

/// The rows of `table` with `found`, their `key` when `parent` has a row with it (null for
/// an orphan), and for customers `_signup_ts`, the signup of the row's customer; a
/// parenthesized subquery, to use where a table name goes.
///
/// The parent was checked first (customers before orders, orders before shipments), so its
/// keys are unique: the duplicate_key rule either stopped the run or set the copies aside.
fn with_parent(table: &str, columns: &[String], parent: &str, key: &str, found: &str) -> String {
    if crate::engine::memory_capped() {
        with_parent_sorted(table, columns, parent, key, found)
    } else {
        with_parent_joined(table, columns, parent, key, found)
    }
}

/// [`with_parent`] as a left join, its build side the parent: without a memory cap, an order of
/// magnitude faster than [`with_parent_sorted`] (docs/design/performance.md).
fn with_parent_joined(table: &str, columns: &[String], parent: &str, key: &str, found: &str) -> String {
    let signup_ts = if parent == "customers" {
        ", p.signup_ts as _signup_ts"
    } else {
        ""
    };
    let t_columns: Vec<String> = columns.iter().map(|c| format!("t.{c}")).collect();
    format!(
        "(select {columns}, p.{key} as {found}{signup_ts} \
         from {table} as t left join {parent} as p on t.{key} = p.{key})",
        columns = t_columns.join(", "),
    )
}

/// [`with_parent`] under a memory cap: a running window over the union of both tables, sorted
/// by the key with the parent's rows first, not a join: a sort spills to disk under a memory
/// cap, where a hash join's build side cannot (1 GB of order ids for 40M orders at 10M
/// customers).
fn with_parent_sorted(table: &str, columns: &[String], parent: &str, key: &str, found: &str) -> String {
    let window = format!("over (partition by {key} order by _parent desc rows unbounded preceding)");
    // (the table's signup column, the parent's, the window over them)
    let (signup, parent_signup, signup_ts) = if parent == "customers" {
        (
            ", null as _signup",
            ", signup_ts",
            format!(", min(_signup) {window} as _signup_ts"),
        )
    } else {
        ("", "", String::new())
    };
    let parent_columns: Vec<String> = columns
        .iter()
        .map(|c| if *c == q(key) { c.clone() } else { "null".into() })
        .collect();
    format!(
        "(select * from (\
           select {columns}, _parent, case when max(_parent) {window} = 1 then {key} end as {found}{signup_ts} \
           from (select {columns}, 0 as _parent{signup} from {table} \
                 union all select {parent_columns}, 1{parent_signup} from {parent}) as u\
         ) as w where _parent = 0)",
        columns = columns.join(", "),
        parent_columns = parent_columns.join(", "),
    )
}

/// The first non-empty batch of a query's result, if any.
async fn first_row(ctx: &SessionContext, sql: &str, context: &str) -> Result<Option<RecordBatch>> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(Error::engine(context))?
        .collect()
        .await
        .map_err(Error::engine(context))?;
    Ok(batches.into_iter().find(|b| b.num_rows() > 0))
}

async fn scalars(ctx: &SessionContext, sql: &str, table: &str) -> Result<Vec<u64>> {
    let batch = first_row(ctx, sql, &format!("checking the rows of {table}"))
        .await?
        .ok_or_else(|| Error::Internal(format!("checking {table}: no result")))?;
    Ok(batch
        .columns()
        .iter()
        .map(|c| {
            let c = datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Int64)
                .expect("counts cast to Int64");
            let c = c.as_primitive::<Int64Type>();
            if c.is_null(0) { 0 } else { c.value(0).max(0) as u64 }
        })
        .collect())
}

/// Rows of `table` that repeat a key another row has (every copy after the first), exactly. For
/// a one-column key the rows are first grouped by a 64-bit hash of the key: when no two hashes
/// meet, no two keys are equal, and the keys themselves are grouped only when two hashes meet.
/// Grouping 64-bit hashes costs well under half of grouping the text keys; two of 177M distinct
/// keys share a hash about once in a thousand nights, which costs the exact grouping that night.
async fn duplicate_keys(ctx: &SessionContext, table: &str) -> Result<u64> {
    let keys = key(table).iter().map(|k| q(k)).collect::<Vec<_>>().join(", ");
    let exact = format!(
        "select sum(n - 1) from (select count(*) as n from {table} group by {keys} having count(*) > 1)"
    );
    if key(table).len() > 1 {
        return Ok(scalars(ctx, &exact, table).await?[0]);
    }
    let hashed = ctx
        .table(table)
        .await
        .and_then(|df| {
            df.select(vec![
                key_hash()
                    .call(vec![datafusion::prelude::ident(key(table)[0])])
                    .alias("h"),
            ])
        })
        .and_then(|df| {
            df.aggregate(
                vec![datafusion::prelude::col("h")],
                vec![datafusion::functions_aggregate::count::count_all().alias("n")],
            )
        })
        .and_then(|df| df.filter(datafusion::prelude::col("n").gt(datafusion::prelude::lit(1_i64))))
        .map_err(Error::engine(format!("checking the keys of {table}")))?
        .count()
        .await
        .map_err(Error::engine(format!("checking the keys of {table}")))?;
    if hashed == 0 {
        return Ok(0);
    }
    Ok(scalars(ctx, &exact, table).await?[0])
}

/// A 64-bit hash of a text key, with a fixed seed (DataFusion's own hashing, at the quality
/// it uses for sketches); a null hashes like every other null, so equal keys always meet.
///
/// Not a built-in: a Ballista scheduler and its executors decode a plan that calls it only when
/// they know it, which our `growth-scheduler` and `growth-executor` do (`cluster.rs`).
pub(crate) fn key_hash() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::array::UInt64Array;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::hash_utils::{QualityRandomState, create_hashes};
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use std::sync::Arc;
    let hash = |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let keys = ColumnarValue::values_to_arrays(args)?;
        let mut hashes = vec![0u64; keys[0].len()];
        create_hashes(&keys, &QualityRandomState::with_seed(0), &mut hashes)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(hashes))))
    };
    create_udf(
        "key_hash",
        vec![DataType::Utf8],
        DataType::UInt64,
        Volatility::Immutable,
        Arc::new(hash),
    )
}

/// The join rules' counts of `table` against its parent, for finding whether any row breaks
/// them: one aggregation keyed by the parent's key over the union of both tables, which spills
/// under a memory cap where a join's build side cannot. Orders are first grouped per customer
/// (orphan rows, and whether the first order precedes the signup: a customer count, not a row
/// count, but zero exactly when no order does); shipments are counted as they are.
/// Under a memory cap this is the fastest of the three forms (a hash join holds its build
/// side in memory; the sorted window of [`with_parent_sorted`] sorts everything), as measured
/// in docs/design/performance.md.
///
/// Returns the rules counted, in the order of the query's columns, with the query.
fn parent_counts(table: &str) -> (&'static [&'static str], String) {
    if table == "shipments" {
        let sql = "select sum(case when _parent = 0 then n end) from (\
                  select max(_parent) as _parent, sum(n) as n from (\
                    select order_id, 0 as _parent, 1 as n from shipments \
                    union all select order_id, 1, 0 from orders) as u \
                  group by order_id) as g";
        return (&["orphan_order"], sql.into());
    }
    let sql = "select sum(case when _parent = 0 then n end), sum(case when first_ts < signup_ts then 1 end) from (\
       select max(_parent) as _parent, sum(n) as n, min(first_ts) as first_ts, max(signup_ts) as signup_ts from (\
         select customer_id, 0 as _parent, count(*) as n, min(order_ts) as first_ts, null as signup_ts \
         from orders group by customer_id \
         union all select customer_id, 1, 0, null, signup_ts from customers) as u \
       group by customer_id) as g";
    (&["orphan_customer", "before_signup"], sql.into())
}

/// Counts each rule's rows in one table, cheaply: a scan for the row rules, an aggregation for
/// duplicates, one for the join rules. Overlaps are counted twice here, and the join rules may
/// count fewer; the exact counts come from the classified rows when anything is found.
async fn count(ctx: &SessionContext, checks: &Checks) -> Result<(u64, Vec<(&'static str, u64)>)> {
    let name = checks.table.name;
    let sums: Vec<String> = checks
        .row
        .iter()
        .map(|(_, p)| format!("sum(case when {p} then 1 else 0 end)"))
        .collect();
    let values = scalars(
        ctx,
        &format!(
            "select count(*) {} from {name}",
            sums.iter().map(|s| format!(", {s}")).collect::<String>()
        ),
        name,
    )
    .await?;
    let rows = values[0];
    let mut found: Vec<(&'static str, u64)> = checks
        .row
        .iter()
        .map(|(r, _)| *r)
        .zip(values[1..].iter().copied())
        .collect();
    if checks.duplicates {
        found.push(("duplicate_key", duplicate_keys(ctx, name).await?));
    }
    if !checks.joins.is_empty() {
        let (rules, sql) = parent_counts(name);
        let values = scalars(ctx, &sql, name).await?;
        found.extend(rules.iter().copied().zip(values));
    }
    Ok((rows, found))
}

/// Checks every present input table at the session's run date, applies each rule's policy,
/// and re-registers each table with findings as a view without its set-aside rows. Registers
/// `quality_rejects` (empty when nothing was set aside).
///
/// `later` is the report of the same input at the same or a later run date, when there is one
/// (the churn job's cut-offs after the run date's checks): every row visible then is visible
/// later, so a table it found free of duplicate keys has none now, and that check, a group-by
/// over the whole table (300M sessions at 10M customers), is skipped; a table it found free of
/// every rule (under the same `quality.latest`) is only counted.
pub async fn apply(
    ctx: &SessionContext,
    root: &Root,
    input: &Input,
    run_date: RunDate,
    config: &QualityConfig,
    later: Option<&Report>,
) -> Result<Report> {
    let range = TimeRange::of(config);
    // Rows from here on are not in the as-of views; out of range, they are counted apart.
    let unseen = range.latest.max(run_date.date + chrono::Days::new(1));
    let mut report = Report {
        latest: Some(range.latest),
        ..Report::default()
    };
    let mut rejects: Vec<DataFrame> = Vec::new();
    // Customers before orders (orphans), orders before shipments.
    let order = [
        "customers",
        "orders",
        "sessions",
        "marketing_spend",
        "invites",
        "shipments",
    ];
    for name in order {
        let Some(table) = input.tables.get(name) else {
            continue;
        };
        let location = root.describe(&root.path(&[name]));
        let mut checks = checks(table.spec, input, range);
        checks.duplicates &= !later.is_some_and(|r| r.free_of(name, "duplicate_key"));
        let clean_later = later.is_some_and(|r| r.latest == Some(range.latest) && r.clean(name));
        if clean_later {
            // Every row visible now is visible at the later date, where no rule found anything.
            // A shipment can be visible now while its order is not (shipped before ordered,
            // which no rule forbids), so the orphan check of shipments stays.
            checks.row.clear();
            if name != "shipments" {
                checks.joins.clear();
            }
        }
        let (rows, mut counts) = count(ctx, &checks).await?;
        report.rows.insert(name.into(), rows);
        if name == "orders" && rows == 0 {
            // Nothing to judge the other tables against; the caller decides what an empty
            // orders table means (the transform stops, a churn window cannot train).
            break;
        }
        // Rows on or after quality.latest and after the run date are not in the view; they
        // are counted (and set aside) all the same.
        let far = if clean_later {
            // Rows past quality.latest are the same rows at any run date before it.
            0
        } else {
            far_future(ctx, table.spec, unseen).await?
        };
        counts.push(("out_of_range_time", far));
        // A null event time is never before the end of a run date, so no view holds the row;
        // it is counted from the files' statistics (or, without them, from the files).
        let nulls = match table.null_events {
            Some(nulls) => nulls,
            None => null_events(ctx, table.spec).await?,
        };
        counts.push(("null_event_time", nulls));
        let found: Vec<&str> = counts.iter().filter(|(_, n)| *n > 0).map(|(r, _)| *r).collect();
        if found.is_empty() {
            continue;
        }
        let classified = ctx
            .sql(&classified_sql(&checks, &found))
            .await
            .map_err(Error::engine(format!("classifying the rows of {name}")))?;
        let mut exact = rule_counts(&classified, name).await?;
        if far > 0 {
            match exact.iter_mut().find(|(r, _)| *r == "out_of_range_time") {
                Some((_, n)) => *n += far,
                None => exact.insert(0, ("out_of_range_time", far)),
            }
        }
        if nulls > 0 {
            exact.insert(0, ("null_event_time", nulls));
        }
        for (rule_name, rows_broken) in exact {
            let policy = rules::policy(config, rule_name);
            let share = rows_broken as f64 / rows.max(1) as f64;
            if policy == Policy::Reject {
                return Err(Error::BadRows {
                    table: name.into(),
                    check: format!(
                        "rule {rule_name} on {}: {} (policy reject; quality.policy.{rule_name} = \"quarantine\" sets such rows aside instead); {}; in {}",
                        rule_columns(table.spec, rule_name),
                        rule(rule_name).map_or("", |r| r.doc),
                        time_span(ctx, table.spec, &[rule_name], range).await?,
                        location
                    ),
                    rows: rows_broken,
                });
            }
            report.findings.push(Finding {
                table: name.into(),
                rule: rule_name.into(),
                policy,
                rows: rows_broken,
                share,
            });
        }
        let set_aside: u64 = report
            .findings
            .iter()
            .filter(|f| f.table == name)
            .map(|f| f.rows)
            .sum();
        let share = set_aside as f64 / rows.max(1) as f64;
        if share > config.max_reject_share {
            let broken: Vec<&str> = report
                .findings
                .iter()
                .filter(|f| f.table == name)
                .map(|f| f.rule.as_str())
                .collect();
            let span = time_span(ctx, table.spec, &broken, range).await?;
            let rules: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.table == name)
                .map(|f| {
                    format!(
                        "{} on {}: {} rows",
                        f.rule,
                        rule_columns(table.spec, &f.rule),
                        f.rows
                    )
                })
                .collect();
            return Err(Error::BadRows {
                table: name.into(),
                check: format!(
                    "{:.2}% of its {rows} rows would be quarantined ({}), above quality.max_reject_share = {:.2}%; {span}; in {}",
                    share * 100.0,
                    rules.join(", "),
                    config.max_reject_share * 100.0,
                    location
                ),
                rows: set_aside,
            });
        }
        tracing::warn!(table = name, rows = set_aside, rules = ?found, "rows quarantined");
        rejects.push(rejected_rows(&classified, table.spec)?);
        let clean = classified
            .filter(datafusion::prelude::col("_rule").is_null())
            .and_then(|df| df.select_columns(&table.spec.columns.iter().map(|c| c.name).collect::<Vec<_>>()))
            .map_err(Error::engine(format!("filtering {name}")))?;
        ctx.deregister_table(name)
            .map_err(Error::engine(format!("replacing view {name}")))?;
        ctx.register_table(name, clean.into_view())
            .map_err(Error::engine(format!("registering the checked view {name}")))?;
        if name == "orders" && !input.tables.contains_key("customers") {
            // Customers derived from orders come from the checked orders.
            crate::input::catalog::register_customers_from_orders(ctx).await?;
        }
    }
    let all = match rejects
        .into_iter()
        .reduce(|a, b| a.union(b).expect("rejects share one schema"))
    {
        Some(all) => all,
        None => empty_rejects(ctx).await?,
    };
    ctx.register_table(crate::input::rules::REJECTS_VIEW, all.into_view())
        .map_err(Error::engine("registering quality_rejects"))?;
    Ok(report)
}

async fn empty_rejects(ctx: &SessionContext) -> Result<DataFrame> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::lit;
    let text = || lit(ScalarValue::Utf8(None));
    let columns = vec![
        text().alias("table_name"),
        text().alias("rule"),
        text().alias("row_key"),
        lit(ScalarValue::TimestampMicrosecond(None, Some("UTC".into()))).alias("event_ts"),
        text().alias("row_values"),
    ];
    crate::input::catalog::no_rows(ctx, columns, "empty rejects view").await
}

/// Rows of a table whose event time is null, counted from its files.
async fn null_events(ctx: &SessionContext, table: &contract::Table) -> Result<u64> {
    let sql = format!(
        "select count(*) from {}.{} where {} is null",
        crate::input::catalog::RAW_SCHEMA,
        table.name,
        q(table.as_of.event)
    );
    Ok(scalars(ctx, &sql, table.name).await?[0])
}

/// Rows of a table from `unseen` on: out of range (on or after `quality.latest`) and after
/// the run date, so not in its view.
async fn far_future(ctx: &SessionContext, table: &contract::Table, unseen: NaiveDate) -> Result<u64> {
    let event = table.column(table.as_of.event).expect("as-of column");
    let sql = format!(
        "select count(*) from {}.{} where {} >= {}",
        crate::input::catalog::RAW_SCHEMA,
        table.name,
        q(event.name),
        day_literal(event.kind, unseen)
    );
    Ok(scalars(ctx, &sql, table.name).await?[0])
}

/// For an error that sets much of a table aside: the span of its event times in the whole
/// input, and, when `rules` has `out_of_range_time`, the one setting that admits them.
/// Run only on the way to an error, so its scan costs a clean night nothing.
async fn time_span(
    ctx: &SessionContext,
    table: &contract::Table,
    rules: &[&str],
    range: TimeRange,
) -> Result<String> {
    let event = q(table.as_of.event);
    let sql = format!(
        "select cast(min({event}) as varchar) as first, cast(max({event}) as varchar) as last, \
                cast(cast(min({event}) as date) as varchar) as first_day, \
                cast(cast(max({event}) as date) as varchar) as last_day \
         from {}.{}",
        crate::input::catalog::RAW_SCHEMA,
        table.name
    );
    let context = format!("finding the event times of {}", table.name);
    let Some(batch) = first_row(ctx, &sql, &context).await? else {
        return Ok(format!("{} has no rows", table.name));
    };
    let text = |i: usize| {
        let column =
            datafusion::arrow::compute::cast(batch.column(i), &datafusion::arrow::datatypes::DataType::Utf8)
                .ok()?;
        let column = column.as_string::<i32>();
        (!column.is_null(0)).then(|| column.value(0).to_string())
    };
    let (Some(min), Some(max)) = (text(0), text(1)) else {
        return Ok(format!("{} has no {}", table.name, table.as_of.event));
    };
    let mut span = format!("{}.{} runs from {min} to {max}", table.name, table.as_of.event);
    if !rules.contains(&"out_of_range_time") {
        return Ok(span);
    }
    let day = |i: usize| text(i).and_then(|d| d.parse::<NaiveDate>().ok());
    let TimeRange { earliest, latest } = range;
    span.push_str(&format!(
        " and the range in force is [{}, {latest}) (quality.earliest, quality.latest)",
        earliest.map_or("none".to_string(), |d| d.to_string())
    ));
    let mut flags = Vec::new();
    if let (Some(first), Some(earliest)) = (day(2), earliest)
        && first < earliest
    {
        flags.push(format!("--set quality.earliest={first}"));
    }
    if let Some(last) = day(3)
        && last >= latest
    {
        flags.push(format!("--set quality.latest={}", last + chrono::Days::new(1)));
    }
    if !flags.is_empty() {
        span.push_str(&format!(
            "; if those times are real, {} admits them",
            flags.join(" ")
        ));
    }
    Ok(span)
}

/// Exact rows per rule, each row under the first rule it breaks.
async fn rule_counts(classified: &DataFrame, table: &str) -> Result<Vec<(&'static str, u64)>> {
    let batches = classified
        .clone()
        .filter(datafusion::prelude::col("_rule").is_not_null())
        .and_then(|df| {
            df.aggregate(
                vec![datafusion::prelude::col("_rule")],
                vec![datafusion::functions_aggregate::count::count_all().alias("n")],
            )
        })
        .map_err(Error::engine(format!("counting the rows of {table} set aside")))?
        .collect()
        .await
        .map_err(Error::engine(format!("counting the rows of {table} set aside")))?;
    let mut counts = Vec::new();
    for batch in batches {
        let rules =
            datafusion::arrow::compute::cast(batch.column(0), &datafusion::arrow::datatypes::DataType::Utf8)
                .map_err(Error::arrow(format!("counting the rows of {table} set aside")))?;
        let rules = rules.as_string::<i32>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            if let Some(rule) = rule(rules.value(i)) {
                counts.push((rule.name, n.value(i) as u64));
            }
        }
    }
    counts.sort_by_key(|(r, _)| RULES.iter().position(|x| x.name == *r));
    Ok(counts)
}

/// The rows set aside, in the shape of `quality_rejects`: table, rule, the row's key, its event
/// time, and every column as `name=value` text.
fn rejected_rows(classified: &DataFrame, table: &contract::Table) -> Result<DataFrame> {
    use datafusion::functions::expr_fn::{coalesce, concat_ws};
    use datafusion::logical_expr::{cast, lit};
    use datafusion::prelude::{col, ident};
    let text = |name: &str| cast(ident(name), datafusion::arrow::datatypes::DataType::Utf8);
    let key_text = concat_ws(
        lit("|"),
        key(table.name)
            .iter()
            .map(|k| coalesce(vec![text(k), lit("null")]))
            .collect(),
    );
    let values = concat_ws(
        lit(", "),
        table
            .columns
            .iter()
            .map(|c| {
                datafusion::functions::expr_fn::concat(vec![
                    lit(format!("{}=", c.name)),
                    coalesce(vec![text(c.name), lit("null")]),
                ])
            })
            .collect(),
    );
    let event = table.column(table.as_of.event).expect("as-of column");
    let event_ts = match event.kind {
        Kind::Date => cast(ident(event.name), contract::timestamp_utc()),
        _ => ident(event.name),
    };
    classified
        .clone()
        .filter(col("_rule").is_not_null())
        .and_then(|df| {
            df.select(vec![
                lit(table.name).alias("table_name"),
                col("_rule").alias("rule"),
                key_text.alias("row_key"),
                event_ts.alias("event_ts"),
                values.alias("row_values"),
            ])
        })
        .map_err(Error::engine(format!(
            "listing the rows of {} set aside",
            table.name
        )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use std::sync::Arc;

    fn ids(ids: Vec<Option<String>>) -> Arc<StringArray> {
        Arc::new(StringArray::from(ids))
    }

    async fn orders_with_ids(order_ids: Vec<Option<String>>) -> SessionContext {
        let ctx = SessionContext::new();
        let batch = RecordBatch::try_from_iter([("order_id", ids(order_ids) as _)]).unwrap();
        ctx.register_batch("orders", batch).unwrap();
        ctx
    }

    fn many(n: usize) -> Vec<Option<String>> {
        (0..n).map(|i| Some(format!("O{i:08}"))).collect()
    }

    #[tokio::test]
    async fn duplicate_keys_counts_each_extra_copy_exactly() {
        assert_eq!(
            duplicate_keys(&orders_with_ids(many(20_000)).await, "orders")
                .await
                .unwrap(),
            0
        );
        let mut copies = many(20_000);
        copies.push(Some("O00012345".into()));
        copies.push(Some("O00000007".into()));
        copies.push(Some("O00000007".into()));
        assert_eq!(
            duplicate_keys(&orders_with_ids(copies).await, "orders")
                .await
                .unwrap(),
            3
        );
        // Two missing keys are one key twice, as the exact grouping has it.
        let mut nulls = many(100);
        nulls.extend([None, None]);
        assert_eq!(
            duplicate_keys(&orders_with_ids(nulls).await, "orders")
                .await
                .unwrap(),
            1
        );
    }

    async fn orders_and_customers(orders: &[(&str, i64)], customers: &[(&str, i64)]) -> Vec<u64> {
        let ctx = SessionContext::new();
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let table = |key: &str, time: &str, rows: &[(&str, i64)]| {
            let schema = Schema::new(vec![
                Field::new(key, DataType::Utf8, false),
                Field::new(time, ts.clone(), false),
            ]);
            RecordBatch::try_new(
                Arc::new(schema),
                vec![
                    ids(rows.iter().map(|(id, _)| Some(id.to_string())).collect()),
                    Arc::new(
                        TimestampMicrosecondArray::from(rows.iter().map(|(_, t)| *t).collect::<Vec<_>>())
                            .with_timezone("UTC"),
                    ),
                ],
            )
            .unwrap()
        };
        ctx.register_batch("orders", table("customer_id", "order_ts", orders))
            .unwrap();
        ctx.register_batch("customers", table("customer_id", "signup_ts", customers))
            .unwrap();
        let (rules, sql) = parent_counts("orders");
        assert_eq!(rules, ["orphan_customer", "before_signup"]);
        scalars(&ctx, &sql, "orders").await.unwrap()
    }

    #[tokio::test]
    async fn parent_counts_find_orphans_and_orders_before_signup() {
        let customers = [("a", 10), ("b", 20)];
        assert_eq!(
            orders_and_customers(&[("a", 10), ("a", 15), ("b", 25)], &customers).await,
            [0, 0]
        );
        // Three orders of an unknown customer, all counted; one order before b's signup.
        let broken = [("a", 10), ("x", 1), ("x", 2), ("x", 3), ("b", 30), ("b", 19)];
        assert_eq!(orders_and_customers(&broken, &customers).await, [3, 1]);
    }
}
