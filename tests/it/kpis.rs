//! The KPI definitions on hand-worked inputs: each test builds the smallest input that tells the
//! documented definition from the tempting wrong one, and checks both scorecards where both apply.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};

use crate::marts::{run_marts, single_value};
use crate::support::*;

/// One scorecard row: `(market, channel)` on `period` (a month_start or a day).
async fn row(
    ws: &Workspace,
    table: &str,
    run_date: &str,
    period: &str,
    market: &str,
    channel: &str,
) -> String {
    let key = if table == "kpi_monthly" {
        "month_start"
    } else {
        "day"
    };
    query(
        &ws.published(table, run_date),
        &format!("where market = '{market}' and channel = '{channel}' and {key} = '{period}'"),
    )
    .await
}

fn optional_strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn optional_timestamps(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(
        TimestampMicrosecondArray::from(values.iter().map(|v| v.map(micros)).collect::<Vec<_>>())
            .with_timezone("UTC"),
    )
}

/// p bought only on 2024-10-15; with a 3-month lapse p churns in January 2025. On 2025-01-15
/// January is partial (p may still buy): no churn rate yet. On 2025-01-31 it is complete: 1 of 1.
#[tokio::test]
async fn a_partial_month_has_no_churn_rate_yet() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[("o1", "p", "2024-10-15T10:00:00", 10.0, "completed")],
    );
    run_marts(&ws, "2025-01-15").await;
    let partial = row(&ws, "kpi_monthly", "2025-01-15", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&partial, "period_complete"), "false");
    assert_eq!(single_value(&partial, "monthly_churn_rate"), "", "{partial}");
    assert_eq!(single_value(&partial, "monthly_churn_status"), "");
    let december = row(&ws, "kpi_monthly", "2025-01-15", "2024-12-01", "(all)", "(all)").await;
    assert_eq!(single_value(&december, "period_complete"), "true");
    assert_eq!(single_value(&december, "monthly_churn_rate"), "0.0");

    run_marts(&ws, "2025-01-31").await;
    let complete = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&complete, "period_complete"), "true");
    assert_eq!(single_value(&complete, "monthly_churn_rate"), "1.0");
    assert_eq!(single_value(&complete, "monthly_churn_status"), "red");
    // Daily: the lapse of 90 days ends on 2025-01-13, inside the 30 days ending 2025-01-15.
    let day = row(&ws, "kpi_daily", "2025-01-31", "2025-01-15", "(all)", "(all)").await;
    assert_eq!(single_value(&day, "monthly_churn_rate"), "1.0");
}

/// The July 2024 cohort a, b, c, d (run date 2025-01-31):
/// a buys again in January 2025 (month 6), b in August, c never, d twice on its first day.
/// retention_6m (still buying in month 6) is 1/4; repeat_within_6m (a second purchase by month 6)
/// is 3/4 (a, b, d). July's repeat rate is 1/4 (d bought twice in it); August's is 1/1.
#[tokio::test]
async fn retention_is_still_buying_at_six_months_and_repeat_is_per_period() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("a1", "a", "2024-07-02T10:00:00", 10.0, "completed"),
            ("a2", "a", "2025-01-10T10:00:00", 10.0, "completed"),
            ("b1", "b", "2024-07-03T10:00:00", 10.0, "completed"),
            ("b2", "b", "2024-08-03T10:00:00", 10.0, "completed"),
            ("c1", "c", "2024-07-04T10:00:00", 10.0, "completed"),
            ("d1", "d", "2024-07-05T10:00:00", 10.0, "completed"),
            ("d2", "d", "2024-07-05T18:00:00", 10.0, "completed"),
        ],
    );
    run_marts(&ws, "2025-01-31").await;
    let january = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&january, "retention_6m"), "0.25", "{january}");
    assert_eq!(single_value(&january, "retention_6m_status"), "red");
    assert_eq!(single_value(&january, "repeat_within_6m"), "0.75");
    // The same figure as the cohort table's month 6.
    let cohort = query(
        &ws.published("cohort_retention", "2025-01-31"),
        "where market = '(all)' and acquisition_channel = '(all)' and cohort_month = '2024-07-01' and months_since = 6",
    )
    .await;
    assert_eq!(single_value(&cohort, "retention_rate"), "0.25");
    let july = row(&ws, "kpi_monthly", "2025-01-31", "2024-07-01", "(all)", "(all)").await;
    assert_eq!(single_value(&july, "repeat_purchase_rate"), "0.25");
    assert_eq!(single_value(&july, "repeat_purchase_status"), "red");
    let august = row(&ws, "kpi_monthly", "2025-01-31", "2024-08-01", "(all)", "(all)").await;
    assert_eq!(single_value(&august, "repeat_purchase_rate"), "1.0");
    // Daily: d bought twice on 07-05 (a repeat); c's first day is not.
    for (day, rate) in [("2024-07-05", "1.0"), ("2024-07-04", "0.0")] {
        let daily = row(&ws, "kpi_daily", "2025-01-31", day, "(all)", "(all)").await;
        assert_eq!(single_value(&daily, "repeat_purchase_rate"), rate, "{day}");
    }
    // Daily, 2024-12-31: the cohorts of 06-03..07-02 at 182 days hold a alone, whose next
    // purchase (day 192) is after days 153 to 182: none still buying.
    let daily = row(&ws, "kpi_daily", "2025-01-31", "2024-12-31", "(all)", "(all)").await;
    assert_eq!(single_value(&daily, "retention_6m"), "0.0", "{daily}");
}

/// Orders o1 (delivered in 2 days), o2 (never shipped, 20 days before the run date) and o3 (never
/// shipped, 2 days before: its outcome is not known yet). The share is 1 of 2, not 1 of 1.
#[tokio::test]
async fn an_order_never_shipped_counts_as_late() {
    let ws = Workspace::new();
    let input = ws.input();
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o1", "a", "2025-03-02T10:00:00", 10.0, "completed"),
            ("o2", "b", "2025-03-11T10:00:00", 10.0, "completed"),
            ("o3", "c", "2025-03-29T10:00:00", 10.0, "completed"),
        ],
    );
    write_parquet(
        &input.join("shipments/s.parquet"),
        vec![
            ("order_id", strings(&["o1"])),
            ("shipped_ts", timestamps(&["2025-03-03T10:00:00"])),
            (
                "delivered_ts",
                optional_timestamps(&[Some("2025-03-04T10:00:00")]),
            ),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let march = row(&ws, "kpi_monthly", "2025-03-31", "2025-03-01", "(all)", "(all)").await;
    assert_eq!(
        single_value(&march, "delivered_within_7d_share"),
        "0.5",
        "{march}"
    );
    assert_eq!(single_value(&march, "avg_delivery_days"), "2.0");
    let unshipped = row(&ws, "kpi_daily", "2025-03-31", "2025-03-11", "(all)", "(all)").await;
    assert_eq!(single_value(&unshipped, "delivered_within_7d_share"), "0.0");
    let unknown = row(&ws, "kpi_daily", "2025-03-31", "2025-03-29", "(all)", "(all)").await;
    assert_eq!(single_value(&unknown, "delivered_within_7d_share"), "");
}

/// March 2025: b bought; v signed up and visited on two days without buying; an anonymous
/// session has no customer. Active users are b and v (3 customer-days), not b alone.
#[tokio::test]
async fn logged_in_visitors_who_never_bought_are_active_users() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("b", "2025-03-01T09:00:00", "SG", "search"),
            ("v", "2025-03-01T09:00:00", "SG", "search"),
        ],
    );
    write_orders(
        &input,
        "part-0.parquet",
        &[("o1", "b", "2025-03-02T10:00:00", 10.0, "completed")],
    );
    write_parquet(
        &input.join("sessions/s.parquet"),
        vec![
            ("session_id", strings(&["s1", "s2", "s3", "s4"])),
            (
                "customer_id",
                optional_strings(&[Some("b"), Some("v"), Some("v"), None]),
            ),
            (
                "session_start_ts",
                timestamps(&[
                    "2025-03-02T09:00:00",
                    "2025-03-02T09:30:00",
                    "2025-03-05T09:00:00",
                    "2025-03-05T10:00:00",
                ]),
            ),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let march = row(&ws, "kpi_monthly", "2025-03-31", "2025-03-01", "SG", "search").await;
    assert_eq!(single_value(&march, "mau"), "2", "{march}");
    assert_eq!(
        single_value(&march, "dau_mau"),
        (3.0_f64 / 31.0 / 2.0).to_string()
    );
    let day = row(&ws, "kpi_daily", "2025-03-31", "2025-03-05", "SG", "search").await;
    assert_eq!(single_value(&day, "dau"), "1.0");
    assert_eq!(single_value(&day, "mau"), "2");
    assert_eq!(single_value(&day, "dau_mau"), "0.5");
}

/// January 2025 in SG: search spent $30 for s; o came organically (no spend). Organic has no CAC
/// (not $0, not green); the blended CAC is $30 over both new customers.
#[tokio::test]
async fn a_channel_without_spend_has_no_cac() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("s", "2025-01-02T09:00:00", "SG", "search"),
            ("o", "2025-01-02T09:00:00", "SG", "organic"),
        ],
    );
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o1", "s", "2025-01-02T10:00:00", 10.0, "completed"),
            ("o2", "o", "2025-01-02T11:00:00", 10.0, "completed"),
        ],
    );
    write_parquet(
        &input.join("marketing_spend/s.parquet"),
        vec![
            (
                "spend_date",
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![20090])) as ArrayRef, // 2025-01-02
            ),
            ("market", strings(&["SG"])),
            ("channel", strings(&["search"])),
            ("spend_usd", floats(&[30.0])),
        ],
    );
    run_marts(&ws, "2025-01-31").await;
    for table in ["kpi_monthly", "kpi_daily"] {
        let period = if table == "kpi_monthly" {
            "2025-01-01"
        } else {
            "2025-01-02"
        };
        let organic = row(&ws, table, "2025-01-31", period, "SG", "organic").await;
        assert_eq!(single_value(&organic, "new_customers"), "1", "{table}");
        assert_eq!(single_value(&organic, "cac_usd"), "", "{table}: {organic}");
        assert_eq!(single_value(&organic, "cac_status"), "");
        let search = row(&ws, table, "2025-01-31", period, "SG", "search").await;
        assert_eq!(single_value(&search, "cac_usd"), "30.0", "{table}");
        let blended = row(&ws, table, "2025-01-31", period, "(all)", "(all)").await;
        assert_eq!(single_value(&blended, "cac_usd"), "15.0", "{table}");
        assert_eq!(single_value(&blended, "cac_status"), "red");
    }
    let organic = query(
        &ws.published("channel_performance", "2025-01-31"),
        "where channel = 'organic'",
    )
    .await;
    assert_eq!(single_value(&organic, "cac_usd"), "");
}

/// January 2025: b bought on 01-02 and invited y on WhatsApp (accepted 01-03). n, who last bought
/// in December, invited x by link (accepted 01-04, x never buys) and y by link (accepted 01-06,
/// after WhatsApp). y bought on 01-10. Buyers: b and y; the only sharer among them is b.
#[tokio::test]
async fn sharing_counts_buyers_who_share_and_k_factor_counts_new_buyers() {
    let ws = Workspace::new();
    let input = ws.input();
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o0", "n", "2024-12-20T10:00:00", 10.0, "completed"),
            ("o1", "b", "2025-01-02T10:00:00", 10.0, "completed"),
            ("o2", "y", "2025-01-10T10:00:00", 10.0, "completed"),
        ],
    );
    write_parquet(
        &input.join("invites/i.parquet"),
        vec![
            ("invite_id", strings(&["i1", "i2", "i3"])),
            ("inviter_customer_id", strings(&["b", "n", "n"])),
            (
                "sent_ts",
                timestamps(&[
                    "2025-01-02T12:00:00",
                    "2025-01-03T10:00:00",
                    "2025-01-05T10:00:00",
                ]),
            ),
            ("share_channel", strings(&["whatsapp", "link", "link"])),
            (
                "invitee_customer_id",
                optional_strings(&[Some("y"), Some("x"), Some("y")]),
            ),
            (
                "accepted_ts",
                optional_timestamps(&[
                    Some("2025-01-03T10:00:00"),
                    Some("2025-01-04T10:00:00"),
                    Some("2025-01-06T10:00:00"),
                ]),
            ),
        ],
    );
    run_marts(&ws, "2025-01-31").await;
    let funnel = query_sql(
        &ws.published("referral_funnel", "2025-01-31"),
        "select share_channel, invites_sent, sharers, buying_sharers, active_customers, share_rate,
                invites_accepted, referred_new_customers, k_factor
         from t where month_start = '2025-01-01' order by share_channel",
    )
    .await;
    assert_eq!(
        lines(&funnel),
        lines(
            "+---------------+--------------+---------+----------------+------------------+------------+------------------+------------------------+----------+
             | share_channel | invites_sent | sharers | buying_sharers | active_customers | share_rate | invites_accepted | referred_new_customers | k_factor |
             +---------------+--------------+---------+----------------+------------------+------------+------------------+------------------------+----------+
             | link          | 2            | 1       | 0              | 2                | 0.0        | 2                | 0                      | 0.0      |
             | whatsapp      | 1            | 1       | 1              | 2                | 0.5        | 1                | 1                      | 0.5      |
             +---------------+--------------+---------+----------------+------------------+------------+------------------+------------------------+----------+"
        )
    );
    let january = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&january, "invite_share_rate"), "0.5");
    assert_eq!(single_value(&january, "invite_conversion"), "1.0");
    // Daily: on 01-03 n shared but nobody bought; on 01-02 b bought and shared.
    let sharing_day = row(&ws, "kpi_daily", "2025-01-31", "2025-01-02", "(all)", "(all)").await;
    assert_eq!(single_value(&sharing_day, "invite_share_rate"), "1.0");
    let no_buyer = row(&ws, "kpi_daily", "2025-01-31", "2025-01-03", "(all)", "(all)").await;
    assert_eq!(single_value(&no_buyer, "invite_share_rate"), "");
}
