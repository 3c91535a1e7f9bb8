//! The growth marts on small hand-made inputs, with every expected row worked out by hand.

use std::path::Path;

use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};
use growth_jobs::output::manifest::Manifest;

use crate::support::*;

/// Runs the repository's own models on a workspace's input.
pub(crate) async fn run_marts(ws: &Workspace, run_date: &str) -> Manifest {
    run_marts_with(ws, run_date, growth_jobs::config::Config::default()).await
}

/// [`run_marts`] with settings other than the defaults.
pub(crate) async fn run_marts_with(
    ws: &Workspace,
    run_date: &str,
    config: growth_jobs::config::Config,
) -> Manifest {
    let mut options = ws.options(Some(run_date));
    options.models_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    options.config = config;
    growth_jobs::transform::run(&options).await.unwrap()
}

/// Four customers; their purchases give tied recencies, frequencies and amounts (run date 2025-03-31):
///
/// | customer | completed purchases | recency | frequency | monetary |
/// |---|---|---|---|---|
/// | a | 02-01 $260, 03-01 $30, 03-31 $10 | 0 | 3 | 300 |
/// | b | 03-31 $400 | 0 | 1 | 400 |
/// | c | 02-28 $5 | 31 | 1 | 5 |
/// | d | 01-15 $100, 01-20 $100 (plus a cancelled and a refunded order) | 70 | 2 | 200 |
///
/// percent_rank over 4 rows is (rank - 1) / 3, and score = least(5, 1 + floor(5 * rank)):
/// R by recency descending: d 0 -> 1, c 1/3 -> 2, a and b tie at 2/3 -> 4.
/// F ascending: b and c tie at 0 -> 1, d 2/3 -> 4, a 1 -> 5 (capped from 6).
/// M ascending: c 0 -> 1, d 1/3 -> 2, a 2/3 -> 4, b 1 -> 5.
/// Tiers: a is high (4, 5, 4); b spent the most and bought recently, once (F 1): mid by the plan's
/// rule (recent, not frequent, medium spend or more), not low; c (R 2) and d (R 1) are low.
#[tokio::test]
async fn rfm_scores_share_ties_and_name_segments_and_tiers() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("a1", "a", "2025-02-01T10:00:00", 260.0, "completed"),
            ("a2", "a", "2025-03-01T10:00:00", 30.0, "completed"),
            ("a3", "a", "2025-03-31T23:00:00", 10.0, "completed"),
            ("b1", "b", "2025-03-31T01:00:00", 400.0, "completed"),
            ("c1", "c", "2025-02-28T12:00:00", 5.0, "completed"),
            ("d1", "d", "2025-01-15T12:00:00", 100.0, "completed"),
            ("d2", "d", "2025-01-20T12:00:00", 100.0, "completed"),
            ("d3", "d", "2025-01-25T12:00:00", 50.0, "cancelled"),
            ("d4", "d", "2025-01-26T12:00:00", 70.0, "refunded"),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let rfm = query(
        &ws.published("rfm_segments", "2025-03-31"),
        "order by customer_id",
    )
    .await;
    assert_eq!(
        lines(&rfm),
        lines(
            "+-------------+-----------------+--------------+-----------+--------------+---------+---------+---------+----------+-----------------+------------+
             | customer_id | last_order_date | recency_days | frequency | monetary_usd | r_score | f_score | m_score | rfm_cell | segment         | value_tier |
             +-------------+-----------------+--------------+-----------+--------------+---------+---------+---------+----------+-----------------+------------+
             | a           | 2025-03-31      | 0            | 3         | 300.0        | 4       | 5       | 4       | 454      | Loyal Customers | high       |
             | b           | 2025-03-31      | 0            | 1         | 400.0        | 4       | 1       | 5       | 415      | Promising       | mid        |
             | c           | 2025-02-28      | 31           | 1         | 5.0          | 2       | 1       | 1       | 211      | Hibernating     | low        |
             | d           | 2025-01-20      | 70           | 2         | 200.0        | 1       | 4       | 2       | 142      | At Risk         | low        |
             +-------------+-----------------+--------------+-----------+--------------+---------+---------+---------+----------+-----------------+------------+"
        )
    );
}

/// Customer x is acquired at 23:59:59 on 31 January (UTC) and comes back in March; y is acquired
/// one second later, on 1 February, and never comes back (its cancelled March order does not
/// count). With the run date in April, January's triangle has months 0 to 3 and February's 0 to 2.
#[tokio::test]
async fn cohorts_keep_empty_months_and_split_at_the_utc_month_boundary() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("x1", "x", "2025-01-31T23:59:59", 10.0, "completed"),
            ("x2", "x", "2025-03-05T08:00:00", 20.0, "completed"),
            ("y1", "y", "2025-02-01T00:00:00", 15.0, "completed"),
            ("y2", "y", "2025-03-10T08:00:00", 99.0, "cancelled"),
        ],
    );
    run_marts(&ws, "2025-04-15").await;
    let file = ws.published("cohort_retention", "2025-04-15");
    let cells = query(
        &file,
        "where market = 'unknown' and acquisition_channel = 'unknown' order by cohort_month, months_since",
    )
    .await;
    assert_eq!(
        lines(&cells),
        lines(
            "+--------------+---------+---------------------+--------------+-------------+------------------+----------------+--------+-------------+---------------------------------+
             | cohort_month | market  | acquisition_channel | months_since | cohort_size | active_customers | retention_rate | orders | revenue_usd | cumulative_revenue_per_customer |
             +--------------+---------+---------------------+--------------+-------------+------------------+----------------+--------+-------------+---------------------------------+
             | 2025-01-01   | unknown | unknown             | 0            | 1           | 1                | 1.0            | 1      | 10.0        | 10.0                            |
             | 2025-01-01   | unknown | unknown             | 1            | 1           | 0                | 0.0            | 0      | 0.0         | 10.0                            |
             | 2025-01-01   | unknown | unknown             | 2            | 1           | 1                | 1.0            | 1      | 20.0        | 30.0                            |
             | 2025-01-01   | unknown | unknown             | 3            | 1           | 0                | 0.0            | 0      | 0.0         | 30.0                            |
             | 2025-02-01   | unknown | unknown             | 0            | 1           | 1                | 1.0            | 1      | 15.0        | 15.0                            |
             | 2025-02-01   | unknown | unknown             | 1            | 1           | 0                | 0.0            | 0      | 0.0         | 15.0                            |
             | 2025-02-01   | unknown | unknown             | 2            | 1           | 0                | 0.0            | 0      | 0.0         | 15.0                            |
             +--------------+---------+---------------------+--------------+-------------+------------------+----------------+--------+-------------+---------------------------------+"
        )
    );
    // One market and one channel: each roll-up ('(all)' market, channel, or both) repeats the 7 cells.
    let rollups = query(&file, "where market = '(all)' or acquisition_channel = '(all)'").await;
    assert_eq!(lines(&rollups).len(), 3 * 7 + 4, "{rollups}");
}

/// Only `orders` is given: every mart still builds, the absent inputs are named in the manifest,
/// and the measures that need them are null rather than zero.
#[tokio::test]
async fn marts_build_without_optional_tables_and_leave_their_measures_null() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("x1", "x", "2025-01-10T10:00:00", 10.0, "completed"),
            ("x2", "x", "2025-02-10T10:00:00", 20.0, "completed"),
            ("y1", "y", "2025-02-11T10:00:00", 30.0, "completed"),
        ],
    );
    let manifest = run_marts(&ws, "2025-02-28").await;
    for absent in ["customers", "sessions", "marketing_spend", "invites", "shipments"] {
        assert!(manifest.absent_inputs.contains(&absent.to_string()), "{absent}");
    }
    for mart in [
        "cohort_retention",
        "rfm_segments",
        "kpi_monthly",
        "channel_performance",
        "referral_funnel",
    ] {
        assert!(ws.published(mart, "2025-02-28").exists(), "{mart} is published");
    }
    // February, all markets and channels: x bought again (repeat), y is new.
    let kpis = query(
        &ws.published("kpi_monthly", "2025-02-28"),
        "where region = '(all)' and market = '(all)' and channel = '(all)' and month_start = '2025-02-01'",
    )
    .await;
    let row = |column: &str| single_value(&kpis, column);
    assert_eq!(row("new_customers"), "1");
    assert_eq!(row("active_customers"), "2");
    assert_eq!(row("orders"), "2");
    assert_eq!(row("revenue_usd"), "50.0");
    assert_eq!(row("arpu_usd"), "25.0");
    assert_eq!(row("returning_buyer_share"), "0.5");
    // Of the two buyers of the 12 months to February, x bought on two different days.
    assert_eq!(row("repurchase_rate"), "0.5");
    for null in [
        "marketing_spend_usd",
        "cac_usd",
        "cac_status",
        "dau",
        "mau",
        "dau_mau",
        "invite_share_rate",
    ] {
        assert_eq!(row(null), "", "{null} must be null without its input");
    }
    assert_eq!(
        row("repurchase_status"),
        "green",
        "0.5 is at least the 0.40 target"
    );
}

/// The value of one column in a one-row pretty table.
pub(crate) fn single_value(table: &str, column: &str) -> String {
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 2, "one header and one row expected:\n{table}");
    let at = rows[0]
        .iter()
        .position(|c| c == column)
        .unwrap_or_else(|| panic!("no column {column}"));
    rows[1][at].clone()
}

/// A single customer with a single purchase: every score is 1 (percent_rank of one row is 0).
#[tokio::test]
async fn a_single_customer_scores_one_everywhere() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[("o1", "solo", "2025-03-03T10:00:00", 42.0, "completed")],
    );
    run_marts(&ws, "2025-03-31").await;
    let rfm = query(&ws.published("rfm_segments", "2025-03-31"), "").await;
    assert_eq!(single_value(&rfm, "recency_days"), "28");
    assert_eq!(single_value(&rfm, "rfm_cell"), "111");
    assert_eq!(single_value(&rfm, "segment"), "Hibernating");
}

/// Everyone bought exactly once: frequency ties everywhere, no repeat purchases, no retention.
#[tokio::test]
async fn when_everyone_bought_once_repeat_and_retention_are_zero() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("o1", "p", "2024-07-03T10:00:00", 10.0, "completed"),
            ("o2", "q", "2024-07-04T10:00:00", 20.0, "completed"),
            ("o3", "r", "2024-07-05T10:00:00", 30.0, "completed"),
        ],
    );
    run_marts(&ws, "2025-01-31").await;
    let f_scores = query(
        &ws.published("rfm_segments", "2025-01-31"),
        "order by customer_id",
    )
    .await;
    assert!(
        f_scores
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .all(|l| l.split('|').nth(7).unwrap().trim() == "1"),
        "every F score is 1:\n{f_scores}"
    );
    let january = query(
        &ws.published("kpi_monthly", "2025-01-31"),
        "where region = '(all)' and market = '(all)' and channel = '(all)' and month_start = '2025-01-01'",
    )
    .await;
    assert_eq!(
        single_value(&january, "returning_buyer_share"),
        "",
        "nobody bought in January"
    );
    // The twelve months to January hold every customer, each with one purchase day: none repurchased.
    assert_eq!(single_value(&january, "repurchase_rate"), "0.0");
    assert_eq!(single_value(&january, "repeat_within_6m"), "0.0");
    assert_eq!(
        single_value(&january, "retention_6m"),
        "0.0",
        "the July cohort reaches 6 months in January"
    );
    assert_eq!(single_value(&january, "retention_6m_status"), "red");
    assert_eq!(single_value(&january, "active_customers"), "0");
    // Their last purchases were in July: with a 3-month lapse they churned in October.
    let october = query(
        &ws.published("kpi_monthly", "2025-01-31"),
        "where region = '(all)' and market = '(all)' and channel = '(all)' and month_start = '2024-10-01'",
    )
    .await;
    assert_eq!(single_value(&october, "monthly_churn_rate"), "1.0");
}

/// A small market with every input: two paid channels, invites, sessions and shipments
/// (run date 2025-06-30). Customers s1 and s2 came through search, a1 through social ads after an
/// invite from s1.
fn full_market() -> Workspace {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("s1", "2025-01-05T09:00:00", "SG", "search"),
            ("s2", "2025-01-20T09:00:00", "SG", "search"),
            ("a1", "2025-01-10T09:00:00", "SG", "social_ads"),
        ],
    );
    // s1: $50 and $30 within 90 days of the first purchase, $100 after; s2: $20; a1: $10.
    write_orders(
        &input,
        "o.parquet",
        &[
            ("o1", "s1", "2025-01-05T10:00:00", 50.0, "completed"),
            ("o2", "s1", "2025-02-01T10:00:00", 30.0, "completed"),
            ("o3", "s1", "2025-05-01T10:00:00", 100.0, "completed"),
            ("o4", "s2", "2025-01-20T10:00:00", 20.0, "completed"),
            ("o5", "a1", "2025-01-10T10:00:00", 10.0, "completed"),
        ],
    );
    let days = |v: &[i32]| -> datafusion::arrow::array::ArrayRef {
        std::sync::Arc::new(datafusion::arrow::array::Date32Array::from(
            v.iter().map(|d| *d + 20089).collect::<Vec<_>>(), // 20089 = 2025-01-01
        ))
    };
    let ints = |v: &[i64]| -> datafusion::arrow::array::ArrayRef {
        std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(v.to_vec()))
    };
    write_parquet(
        &input.join("marketing_spend/s.parquet"),
        vec![
            ("spend_date", days(&[0, 14, 2])),
            ("market", strings(&["SG", "SG", "SG"])),
            ("channel", strings(&["search", "search", "social_ads"])),
            ("spend_usd", floats(&[40.0, 20.0, 30.0])),
            ("impressions", ints(&[10_000, 5_000, 6_000])),
            ("clicks", ints(&[200, 100, 60])),
        ],
    );
    write_parquet(
        &input.join("invites/i.parquet"),
        vec![
            ("invite_id", strings(&["i1", "i2", "i3"])),
            ("inviter_customer_id", strings(&["s1", "s1", "s2"])),
            (
                "sent_ts",
                timestamps(&[
                    "2025-01-07T10:00:00",
                    "2025-01-08T10:00:00",
                    "2025-01-25T10:00:00",
                ]),
            ),
            ("share_channel", strings(&["whatsapp", "whatsapp", "link"])),
            (
                "invitee_customer_id",
                std::sync::Arc::new(StringArray::from(vec![Some("a1"), None, None])) as _,
            ),
            (
                "accepted_ts",
                std::sync::Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(micros("2025-01-09T10:00:00")), None, None])
                        .with_timezone("UTC"),
                ) as _,
            ),
        ],
    );
    write_parquet(
        &input.join("sessions/s.parquet"),
        vec![
            ("session_id", strings(&["v1", "v2", "v3", "v4"])),
            ("customer_id", strings(&["s1", "s1", "s1", "a1"])),
            (
                "session_start_ts",
                timestamps(&[
                    "2025-01-05T09:50:00",
                    "2025-01-05T18:00:00",
                    "2025-01-06T08:00:00",
                    "2025-01-10T09:55:00",
                ]),
            ),
        ],
    );
    // o1 arrives in 4 days, o4 in 10, o5 never (known late: ordered long before the run date).
    write_parquet(
        &input.join("shipments/s.parquet"),
        vec![
            ("order_id", strings(&["o1", "o4", "o5"])),
            (
                "shipped_ts",
                timestamps(&[
                    "2025-01-06T10:00:00",
                    "2025-01-21T10:00:00",
                    "2025-01-11T10:00:00",
                ]),
            ),
            (
                "delivered_ts",
                std::sync::Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(micros("2025-01-09T10:00:00")),
                        Some(micros("2025-01-30T10:00:00")),
                        None,
                    ])
                    .with_timezone("UTC"),
                ) as _,
            ),
        ],
    );
    ws
}

/// January in SG: search spent $60 for 2 customers worth $100 in their first 90 days (CAC $30,
/// ROI 2/3); social ads spent $30 for 1 customer worth $10 (CAC $30, ROI -2/3). The plan's rule:
/// the budget is $90; 30% ($27) is reserve and each channel's base is 70% of its spend (search
/// $42, social $21). Both CACs are above the red bound ($10): each gives up half its base (search
/// -$21, social -$10.50). No channel reaches ROI 4, so the $31.50 cut joins the reserve ($58.50).
/// Today's ROI-only rule kept search (ROI above 0) and moved 20% of social's spend.
#[tokio::test]
async fn the_plans_budget_rule_cuts_by_cac_keeps_a_reserve_and_moves_to_high_roi() {
    let ws = full_market();
    run_marts(&ws, "2025-06-30").await;
    let january = query_sql(
        &ws.published("channel_performance", "2025-06-30"),
        "select channel, spend_usd, impressions, clicks, ctr, cpc_usd, new_customers, cac_usd, revenue_90d_usd,
                revenue_window_complete as complete, round(roas_90d, 4) as roas_90d, round(roi, 4) as roi,
                budget_recommendation
         from t where month_start = '2025-01-01' order by channel",
    )
    .await;
    assert_eq!(
        lines(&january),
        lines(
            "+------------+-----------+-------------+--------+------+---------+---------------+---------+-----------------+----------+----------+---------+-----------------------+
             | channel    | spend_usd | impressions | clicks | ctr  | cpc_usd | new_customers | cac_usd | revenue_90d_usd | complete | roas_90d | roi     | budget_recommendation |
             +------------+-----------+-------------+--------+------+---------+---------------+---------+-----------------+----------+----------+---------+-----------------------+
             | search     | 60.0      | 15000       | 300    | 0.02 | 0.2     | 2             | 30.0    | 100.0           | true     | 1.6667   | 0.6667  | decrease              |
             | social_ads | 30.0      | 6000        | 60     | 0.01 | 0.5     | 1             | 30.0    | 10.0            | true     | 0.3333   | -0.6667 | decrease              |
             +------------+-----------+-------------+--------+------+---------+---------------+---------+-----------------+----------+----------+---------+-----------------------+"
        )
    );
    let moves = |ws: &Workspace| {
        let path = ws.published("channel_performance", "2025-06-30");
        async move {
            query_sql(
                &path,
                "select channel, budget_recommendation, budget_reason, round(budget_shift_usd, 4) as shift,
                        round(proposed_spend_usd, 4) as proposed, round(market_reserve_usd, 4) as reserve,
                        round(market_budget_usd, 4) as budget
                 from t where month_start = '2025-01-01' order by channel",
            )
            .await
        }
    };
    assert_eq!(
        lines(&moves(&ws).await),
        lines(
            "+------------+-----------------------+---------------+-------+----------+---------+--------+
             | channel    | budget_recommendation | budget_reason | shift | proposed | reserve | budget |
             +------------+-----------------------+---------------+-------+----------+---------+--------+
             | search     | decrease              | cac_above_red | -21.0 | 21.0     | 58.5    | 90.0   |
             | social_ads | decrease              | cac_above_red | -10.5 | 10.5     | 58.5    | 90.0   |
             +------------+-----------------------+---------------+-------+----------+---------+--------+"
        )
    );
    // Add $15 of influencer spend on 2025-01-05 that acquired no one, and bands of $30 / $40 with
    // a preferred ROI of 0.5: influencer is the worst case (red, half its $10.50 base cut); search
    // (CAC $30, not above $30; ROI 2/3) is preferred and takes the $5.25; social keeps its base.
    // Budget $105 = reserve $31.50 + search $47.25 + social $21 + influencer $5.25.
    write_parquet(
        &ws.input().join("marketing_spend/influencer.parquet"),
        vec![
            (
                "spend_date",
                std::sync::Arc::new(datafusion::arrow::array::Date32Array::from(vec![20093])),
            ),
            ("market", strings(&["SG"])),
            ("channel", strings(&["influencer"])),
            ("spend_usd", floats(&[15.0])),
            (
                "impressions",
                std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(vec![1_000])),
            ),
            (
                "clicks",
                std::sync::Arc::new(datafusion::arrow::array::Int64Array::from(vec![10])),
            ),
        ],
    );
    let mut config = growth_jobs::config::Config {
        preferred_roi: 0.5,
        ..Default::default()
    };
    config.kpi_thresholds.get_mut("cac_usd").unwrap().green = 30.0;
    config.kpi_thresholds.get_mut("cac_usd").unwrap().red = 40.0;
    run_marts_with(&ws, "2025-06-30", config).await;
    assert_eq!(
        lines(&moves(&ws).await),
        lines(
            "+------------+-----------------------+---------------------------+-------+----------+---------+--------+
             | channel    | budget_recommendation | budget_reason             | shift | proposed | reserve | budget |
             +------------+-----------------------+---------------------------+-------+----------+---------+--------+
             | influencer | decrease              | spend_without_customers   | -5.25 | 5.25     | 31.5    | 105.0  |
             | search     | increase              | roi_at_or_above_preferred | 5.25  | 47.25    | 31.5    | 105.0  |
             | social_ads | keep                  | within_bounds             | 0.0   | 21.0     | 31.5    | 105.0  |
             +------------+-----------------------+---------------------------+-------+----------+---------+--------+"
        )
    );
    // The scorecard calls spend that acquired no one red, not unknown.
    let influencer = query(
        &ws.published("kpi_monthly", "2025-06-30"),
        "where market = 'SG' and channel = 'influencer' and month_start = '2025-01-01'",
    )
    .await;
    assert_eq!(single_value(&influencer, "cac_usd"), "");
    assert_eq!(single_value(&influencer, "cac_status"), "red", "{influencer}");
    // On 2025-03-31 January's 90 days are not over: its revenue is not all in, so no advice yet.
    run_marts(&ws, "2025-03-31").await;
    let early = query_sql(
        &ws.published("channel_performance", "2025-03-31"),
        "select channel, revenue_window_complete as complete, budget_recommendation
         from t where month_start = '2025-01-01' order by channel",
    )
    .await;
    assert_eq!(
        lines(&early),
        lines(
            "+------------+----------+-----------------------+
             | channel    | complete | budget_recommendation |
             +------------+----------+-----------------------+
             | influencer | false    |                       |
             | search     | false    |                       |
             | social_ads | false    |                       |
             +------------+----------+-----------------------+"
        )
    );
}

/// January in SG: s1 shared twice on WhatsApp (a1 accepted and bought), s2 once by link; three
/// customers bought in January.
#[tokio::test]
async fn the_referral_funnel_counts_sharers_acceptances_and_k_factor() {
    let ws = full_market();
    run_marts(&ws, "2025-06-30").await;
    let funnel = query_sql(
        &ws.published("referral_funnel", "2025-06-30"),
        "select share_channel, invites_sent, sharers, active_customers, round(share_rate, 4) as share_rate,
                invites_accepted, invite_conversion, referred_new_customers, round(k_factor, 4) as k_factor
         from t where month_start = '2025-01-01' and market = 'SG' order by share_channel",
    )
    .await;
    assert_eq!(
        lines(&funnel),
        lines(
            "+---------------+--------------+---------+------------------+------------+------------------+-------------------+------------------------+----------+
             | share_channel | invites_sent | sharers | active_customers | share_rate | invites_accepted | invite_conversion | referred_new_customers | k_factor |
             +---------------+--------------+---------+------------------+------------+------------------+-------------------+------------------------+----------+
             | link          | 1            | 1       | 3                | 0.3333     | 0                | 0.0               | 0                      | 0.0      |
             | whatsapp      | 2            | 1       | 3                | 0.3333     | 1                | 0.5               | 1                      | 0.3333   |
             +---------------+--------------+---------+------------------+------------+------------------+-------------------+------------------------+----------+"
        )
    );
}

/// January, all markets and channels: CAC $90 / 3 = $30 (red); DAU/MAU from 3 customer-days over
/// 31 days and 2 customers; invites: 2 sharers of 3 buyers; deliveries: 1 of 3 within 7 days.
#[tokio::test]
async fn the_monthly_scorecard_combines_every_input_and_flags_statuses() {
    let ws = full_market();
    run_marts(&ws, "2025-06-30").await;
    let january = query(
        &ws.published("kpi_monthly", "2025-06-30"),
        "where region = '(all)' and market = '(all)' and channel = '(all)' and month_start = '2025-01-01'",
    )
    .await;
    let value = |column: &str| single_value(&january, column);
    assert_eq!(value("marketing_spend_usd"), "90.0");
    assert_eq!(value("cac_usd"), "30.0");
    assert_eq!(value("cac_status"), "red");
    assert_eq!(value("mau"), "2");
    assert_eq!(value("dau_mau"), (3.0_f64 / 31.0 / 2.0).to_string());
    assert_eq!(value("invite_share_rate"), (2.0_f64 / 3.0).to_string());
    assert_eq!(value("invite_share_status"), "green");
    assert_eq!(value("invite_conversion"), (1.0_f64 / 3.0).to_string());
    assert_eq!(value("delivered_within_7d_share"), (1.0_f64 / 3.0).to_string());
    assert_eq!(value("delivered_within_7d_status"), "red");
    assert_eq!(value("avg_delivery_days"), "7.0");
    // The daily scorecard agrees on the day s1 was acquired: one new customer, one buyer.
    let day = query(
        &ws.published("kpi_daily", "2025-06-30"),
        "where market = 'SG' and channel = 'search' and day = '2025-01-05'",
    )
    .await;
    assert_eq!(single_value(&day, "new_customers"), "1");
    assert_eq!(single_value(&day, "revenue_usd"), "50.0");
    assert_eq!(single_value(&day, "dau"), "1.0");
    assert_eq!(single_value(&day, "mau"), "1");
}

/// Daily sales on hand-worked orders: c's two orders at the same first time make one new
/// customer; b's cancelled order counts as an order, not a purchase, and b is new on the day of
/// the first completed order; a buyer with two purchases in a day is one buyer.
#[tokio::test]
async fn daily_sales_counts_orders_buyers_and_new_customers() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "o.parquet",
        &[
            ("a1", "a", "2025-03-01T10:00:00", 10.0, "completed"),
            ("a2", "a", "2025-03-03T10:00:00", 10.0, "completed"),
            ("b1", "b", "2025-03-01T11:00:00", 5.0, "cancelled"),
            ("b2", "b", "2025-03-02T09:00:00", 7.0, "completed"),
            ("b3", "b", "2025-03-02T18:00:00", 8.0, "completed"),
            ("c1", "c", "2025-03-01T12:00:00", 3.0, "completed"),
            ("c2", "c", "2025-03-01T12:00:00", 4.0, "completed"),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let sales = query_sql(
        &ws.published("daily_sales", "2025-03-31"),
        "select cast(order_date as varchar) as day, orders, purchases, cancelled_orders, revenue_usd, buyers, new_customers
         from t order by order_date",
    )
    .await;
    assert_eq!(
        lines(&sales),
        lines(
            "+------------+--------+-----------+------------------+-------------+--------+---------------+
             | day        | orders | purchases | cancelled_orders | revenue_usd | buyers | new_customers |
             +------------+--------+-----------+------------------+-------------+--------+---------------+
             | 2025-03-01 | 4      | 3         | 1                | 17.0        | 2      | 2             |
             | 2025-03-02 | 2      | 2         | 0                | 15.0        | 1      | 1             |
             | 2025-03-03 | 1      | 1         | 0                | 10.0        | 1      | 0             |
             +------------+--------+-----------+------------------+-------------+--------+---------------+"
        )
    );
}

/// `stg_customers` takes a customer's first and second purchase from one aggregation over their
/// completed orders: the first is the earliest (its market and channel stand in for unknown
/// ones), the second the next one, however the orders are stored. Here: y's cancelled order
/// comes before its first purchase and is not one; y's later orders tie with each other, not
/// with the first; z bought once; w's own market and channel win over its first purchase's.
#[tokio::test]
async fn first_and_second_purchases_come_from_completed_orders_in_time_order() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("y", "2025-01-01T00:00:00", "unknown", "unknown"),
            ("z", "2025-01-01T00:00:00", "unknown", "unknown"),
            ("w", "2025-01-01T00:00:00", "JP", "influencer"),
        ],
    );
    let rows = [
        // [order_id, customer, time, status, market, channel], stored out of time order
        ["y4", "y", "2025-02-20T08:00:00", "completed", "US", "search"],
        ["y5", "y", "2025-01-20T09:00:00", "completed", "US", "search"],
        ["y2", "y", "2025-01-05T10:00:00", "cancelled", "MX", "social_ads"],
        ["y3", "y", "2025-02-20T08:00:00", "completed", "US", "search"],
        ["y1", "y", "2025-01-10T10:00:00", "completed", "BR", "referral"],
        ["z1", "z", "2025-03-03T03:00:00", "completed", "KR", "marketplace"],
        ["w2", "w", "2025-03-02T00:00:00", "completed", "US", "search"],
        ["w1", "w", "2025-03-01T00:00:00", "completed", "US", "search"],
    ];
    let column = |at: usize| rows.iter().map(|row| row[at]).collect::<Vec<_>>();
    write_parquet(
        &input.join("orders/o.parquet"),
        vec![
            ("order_id", strings(&column(0))),
            ("customer_id", strings(&column(1))),
            ("order_ts", timestamps(&column(2))),
            ("amount_usd", floats(&[10.0; 8])),
            ("status", strings(&column(3))),
            ("market", strings(&column(4))),
            ("channel", strings(&column(5))),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let customers = query_sql(
        &ws.published("stg_customers", "2025-03-31"),
        "select customer_id, market, acquisition_channel, first_purchase_ts, second_purchase_ts,
            second_purchase_month_index - 2025 * 12 as second_month, last_purchase_ts, purchases
         from t order by customer_id",
    )
    .await;
    assert_eq!(
        lines(&customers),
        lines(
            "+-------------+--------+---------------------+----------------------+----------------------+--------------+----------------------+-----------+
             | customer_id | market | acquisition_channel | first_purchase_ts    | second_purchase_ts   | second_month | last_purchase_ts     | purchases |
             +-------------+--------+---------------------+----------------------+----------------------+--------------+----------------------+-----------+
             | w           | JP     | influencer          | 2025-03-01T00:00:00Z | 2025-03-02T00:00:00Z | 2            | 2025-03-02T00:00:00Z | 2         |
             | y           | BR     | referral            | 2025-01-10T10:00:00Z | 2025-01-20T09:00:00Z | 0            | 2025-02-20T08:00:00Z | 4         |
             | z           | KR     | marketplace         | 2025-03-03T03:00:00Z |                      |              | 2025-03-03T03:00:00Z | 1         |
             +-------------+--------+---------------------+----------------------+----------------------+--------------+----------------------+-----------+"
        )
    );
}

/// The edges of the rules the models compute per order (run date 2025-03-31, whose end,
/// `run_end_ts`, is 2025-04-01T00:00:00, the first instant after it): a customer's first purchase is the earliest completed order, a tie broken
/// by order_id, and its market and channel stand in for unknown ones; the second purchase is the
/// next in that order; an order delivered exactly 7 days after it was placed was delivered within
/// 7 days, one delivered a microsecond later was not; the 7-day outcome of an order placed
/// exactly 7 days before the run date's end is known, a microsecond later it is not; the 30-day
/// window starts exactly 30 days before the end; an order at 23:59:59.999999 belongs to its day.
#[tokio::test]
async fn per_order_rules_hold_at_their_edges() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(&input, &[("x", "2025-01-01T00:00:00", "unknown", "unknown")]);
    // o0 is cancelled; o1 and o2 tie at their time, and o1 comes first by its id.
    write_parquet(
        &input.join("orders/o.parquet"),
        vec![
            ("order_id", strings(&["o0", "o2", "o1", "o3", "o4", "o5", "o6"])),
            ("customer_id", strings(&["x"; 7])),
            (
                "order_ts",
                timestamps(&[
                    "2025-01-15T10:00:00",
                    "2025-02-01T10:00:00",
                    "2025-02-01T10:00:00",
                    "2025-03-02T00:00:00",
                    "2025-03-01T23:59:59.999999",
                    "2025-03-25T00:00:00",
                    "2025-03-25T00:00:00.000001",
                ]),
            ),
            ("amount_usd", floats(&[10.0; 7])),
            (
                "status",
                strings(&[
                    "cancelled",
                    "completed",
                    "completed",
                    "completed",
                    "completed",
                    "completed",
                    "completed",
                ]),
            ),
            ("market", strings(&["US", "BR", "MX", "US", "US", "US", "US"])),
            (
                "channel",
                strings(&[
                    "search",
                    "search",
                    "social_ads",
                    "referral",
                    "referral",
                    "referral",
                    "referral",
                ]),
            ),
        ],
    );
    write_parquet(
        &input.join("shipments/s.parquet"),
        vec![
            ("order_id", strings(&["o1", "o2"])),
            (
                "shipped_ts",
                timestamps(&["2025-02-02T10:00:00", "2025-02-02T10:00:00"]),
            ),
            (
                "delivered_ts",
                timestamps(&["2025-02-08T10:00:00", "2025-02-08T10:00:00.000001"]),
            ),
        ],
    );
    run_marts(&ws, "2025-03-31").await;

    let customer = query(
        &ws.published("stg_customers", "2025-03-31"),
        "where customer_id = 'x'",
    )
    .await;
    assert_eq!(single_value(&customer, "market"), "MX");
    assert_eq!(single_value(&customer, "acquisition_channel"), "social_ads");
    assert_eq!(
        single_value(&customer, "first_purchase_ts"),
        "2025-02-01T10:00:00Z"
    );
    assert_eq!(
        single_value(&customer, "second_purchase_ts"),
        "2025-02-01T10:00:00Z"
    );
    assert_eq!(single_value(&customer, "purchases"), "6");

    let deliveries = query_sql(
        &ws.published("stg_order_deliveries", "2025-03-31"),
        "select order_id, cast(order_day_number as date) as day, order_month_index - 2025 * 12 as month,
            shipped, outcome_known, delivered_within_7d
         from t order by order_id",
    )
    .await;
    assert_eq!(
        lines(&deliveries),
        lines(
            "+----------+------------+-------+---------+---------------+---------------------+
             | order_id | day        | month | shipped | outcome_known | delivered_within_7d |
             +----------+------------+-------+---------+---------------+---------------------+
             | o1       | 2025-02-01 | 1     | 1       | 1             | 1                   |
             | o2       | 2025-02-01 | 1     | 1       | 1             | 0                   |
             | o3       | 2025-03-02 | 2     | 0       | 1             | 0                   |
             | o4       | 2025-03-01 | 2     | 0       | 1             | 0                   |
             | o5       | 2025-03-25 | 2     | 0       | 1             | 0                   |
             | o6       | 2025-03-25 | 2     | 0       | 0             | 0                   |
             +----------+------------+-------+---------+---------------+---------------------+"
        )
    );

    let features = query(&ws.published("customer_features", "2025-03-31"), "").await;
    assert_eq!(
        single_value(&features, "purchases_30d"),
        "3",
        "o3, o5, o6; not o4"
    );
    assert_eq!(single_value(&features, "purchases_90d"), "6");

    let march_1 = query_sql(
        &ws.published("daily_sales", "2025-03-31"),
        "select sum(orders) as orders from t where order_date = date '2025-03-01'",
    )
    .await;
    assert_eq!(
        single_value(&march_1, "orders"),
        "1",
        "o4, at its last microsecond"
    );
}

/// The two scorecards write their column lists out twice (and their counts models union by
/// position): a measure or a status added to one and forgotten in the other, or two columns
/// swapped in one counts model, fails here rather than in a reader.
#[tokio::test]
async fn the_two_scorecards_and_their_counts_models_keep_one_column_list() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[("o1", "a", "2025-03-02T10:00:00", 20.0, "completed")],
    );
    run_marts(&ws, "2025-03-31").await;
    let fields = |table: &str| -> Vec<(String, String)> {
        let file = std::fs::File::open(ws.published(table, "2025-03-31")).unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        reader
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect()
    };
    assert_eq!(fields("stg_kpi_monthly_counts"), fields("stg_kpi_daily_counts"));
    let names = |table: &str| {
        fields(table)
            .into_iter()
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    let (monthly, daily) = (names("kpi_monthly"), names("kpi_daily"));
    let without = |columns: &[String], key: &str| {
        columns
            .iter()
            .filter(|c| *c != key && *c != "period_complete")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(without(&monthly, "month_start"), without(&daily, "day"));
    // Every measure and every status reaches both scorecards.
    let measures = names("stg_kpi_measures");
    let statuses = names("stg_kpi_statuses");
    for column in measures
        .iter()
        .chain(&statuses)
        .filter(|c| !c.starts_with("period_"))
    {
        assert!(monthly.contains(column), "kpi_monthly lacks {column}");
        assert!(daily.contains(column), "kpi_daily lacks {column}");
    }
}
