//! The KPI definitions on hand-worked inputs: each test builds the smallest input that tells the
//! documented definition from the tempting wrong one, and checks both scorecards where both apply.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};

use crate::marts::{run_marts, run_marts_with, single_value};
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
        &format!(
            "where market = '{market}' and channel = '{channel}' and {key} = '{period}' \
             and (market <> '(all)' or region = '(all)')"
        ),
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
    assert_eq!(single_value(&july, "returning_buyer_share"), "0.25");
    let august = row(&ws, "kpi_monthly", "2025-01-31", "2024-08-01", "(all)", "(all)").await;
    assert_eq!(single_value(&august, "returning_buyer_share"), "1.0");
    // Daily: d bought twice on 07-05 (a repeat); c's first day is not.
    for (day, rate) in [("2024-07-05", "1.0"), ("2024-07-04", "0.0")] {
        let daily = row(&ws, "kpi_daily", "2025-01-31", day, "(all)", "(all)").await;
        assert_eq!(single_value(&daily, "returning_buyer_share"), rate, "{day}");
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
                invites_accepted, converted_invites, invite_conversion, referred_new_customers, k_factor
         from t where month_start = '2025-01-01' order by share_channel",
    )
    .await;
    assert_eq!(
        lines(&funnel),
        lines(
            "+---------------+--------------+---------+----------------+------------------+------------+------------------+-------------------+-------------------+------------------------+----------+
             | share_channel | invites_sent | sharers | buying_sharers | active_customers | share_rate | invites_accepted | converted_invites | invite_conversion | referred_new_customers | k_factor |
             +---------------+--------------+---------+----------------+------------------+------------+------------------+-------------------+-------------------+------------------------+----------+
             | link          | 2            | 1       | 0              | 2                | 0.0        | 2                | 0                 | 0.0               | 0                      | 0.0      |
             | whatsapp      | 1            | 1       | 1              | 2                | 0.5        | 1                | 1                 | 1.0               | 1                      | 0.5      |
             +---------------+--------------+---------+----------------+------------------+------------+------------------+-------------------+-------------------+------------------------+----------+"
        )
    );
    let january = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&january, "invite_share_rate"), "0.5");
    // Invites that brought a buyer, the funnel's figure over every share channel: i1 alone of
    // three (all three were accepted: acceptances would say 1.0).
    assert_eq!(
        single_value(&january, "invite_conversion"),
        (1.0_f64 / 3.0).to_string()
    );
    // Daily: on 01-03 n shared but nobody bought; on 01-02 b bought and shared.
    let sharing_day = row(&ws, "kpi_daily", "2025-01-31", "2025-01-02", "(all)", "(all)").await;
    assert_eq!(single_value(&sharing_day, "invite_share_rate"), "1.0");
    let no_buyer = row(&ws, "kpi_daily", "2025-01-31", "2025-01-03", "(all)", "(all)").await;
    assert_eq!(single_value(&no_buyer, "invite_share_rate"), "");
}

fn booleans(values: &[bool]) -> ArrayRef {
    Arc::new(datafusion::arrow::array::BooleanArray::from(values.to_vec()))
}

/// SG, every customer acquired by search unless said. h bought in February 2024. m1 (member)
/// bought in January 2025 and again in February; in February m2 (member), r (referred by m1) and
/// g (organic) bought first; m2 also placed a cancelled order, g a refunded one, and c, who never
/// bought, a cancelled one. February's orders placed: 7 (4 completed, 2 cancelled, 1 refunded);
/// its buyers m1, m2, r, g, of whom the members are m1 and m2, and only m1 bought before.
#[tokio::test]
async fn orders_by_status_members_referrals_and_growth() {
    let ws = Workspace::new();
    let input = ws.input();
    let ids = ["h", "m1", "m2", "r", "g", "c"];
    write_parquet(
        &input.join("customers/c.parquet"),
        vec![
            ("customer_id", strings(&ids)),
            ("signup_ts", timestamps(&["2024-02-01T00:00:00"; 6])),
            ("market", strings(&["SG"; 6])),
            (
                "acquisition_channel",
                strings(&["search", "search", "search", "referral", "organic", "search"]),
            ),
            (
                "referrer_customer_id",
                optional_strings(&[None, None, None, Some("m1"), None, None]),
            ),
            ("is_member", booleans(&[false, true, true, false, false, false])),
        ],
    );
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o0", "h", "2024-02-10T10:00:00", 10.0, "completed"),
            ("o1", "m1", "2025-01-05T10:00:00", 20.0, "completed"),
            ("o2", "m1", "2025-02-03T10:00:00", 30.0, "completed"),
            ("o3", "m2", "2025-02-10T10:00:00", 10.0, "completed"),
            ("o4", "m2", "2025-02-11T10:00:00", 10.0, "cancelled"),
            ("o5", "r", "2025-02-12T10:00:00", 40.0, "completed"),
            ("o6", "g", "2025-02-14T10:00:00", 50.0, "completed"),
            ("o7", "g", "2025-02-20T10:00:00", 50.0, "refunded"),
            ("o8", "c", "2025-02-15T10:00:00", 25.0, "cancelled"),
        ],
    );
    run_marts(&ws, "2025-02-28").await;
    let february = row(&ws, "kpi_monthly", "2025-02-28", "2025-02-01", "(all)", "(all)").await;
    let value = |column: &str| single_value(&february, column);
    // Of all 7 orders placed, not of the completed ones, and c's order counts though c never bought.
    assert_eq!(value("cancellation_rate"), (2.0_f64 / 7.0).to_string());
    assert_eq!(value("refund_rate"), (1.0_f64 / 7.0).to_string());
    assert_eq!(value("aov_usd"), "32.5", "completed orders only: 130 / 4");
    assert_eq!(value("member_share"), "0.5");
    assert_eq!(
        value("member_returning_buyer_share"),
        "0.5",
        "m1 bought before, m2 not"
    );
    // Members who bought in the 12 months to February: m1 on two days, m2 on one.
    assert_eq!(value("member_repurchase_rate"), "0.5");
    assert_eq!(value("member_repurchase_status"), "green");
    // Buyers of those 12 months: m1, m2, r, g (h's February 2024 is outside); of the 12 before, h.
    assert_eq!(value("active_buyers_growth"), "3.0");
    assert_eq!(value("referred_share_of_new"), (1.0_f64 / 3.0).to_string());
    assert_eq!(value("self_growth_ratio"), (2.0_f64 / 3.0).to_string());
    assert_eq!(value("self_growth_status"), "green");
    assert_eq!(value("total_customers"), "5");
    // 5 customers against 2 at January's end, and against 1 at February 2024's end.
    assert_eq!(value("total_customers_mom"), "1.5");
    assert_eq!(value("total_customers_yoy"), "4.0");
    assert_eq!(value("total_customers_yoy_status"), "green");
    // 3 new against January's 1 and February 2024's 1.
    assert_eq!(value("new_customers_mom"), "2.0");
    assert_eq!(value("new_customers_yoy"), "2.0");

    // Daily: the 30 days ending 02-28 hold 3 new customers, the 30 before them 1 (m1), the 30
    // ending 365 days before (2024-02-29) 1 (h).
    let last = row(&ws, "kpi_daily", "2025-02-28", "2025-02-28", "(all)", "(all)").await;
    assert_eq!(single_value(&last, "new_customers_mom"), "2.0", "{last}");
    assert_eq!(single_value(&last, "new_customers_yoy"), "2.0");
    assert_eq!(single_value(&last, "total_customers_mom"), "1.5");
    assert_eq!(single_value(&last, "total_customers_yoy"), "4.0");
    // 02-15: c's cancelled order is the day's only order; 02-14: g, organic, is the day's only
    // new customer.
    let cancelled = row(&ws, "kpi_daily", "2025-02-28", "2025-02-15", "SG", "search").await;
    assert_eq!(single_value(&cancelled, "cancellation_rate"), "1.0");
    let organic = row(&ws, "kpi_daily", "2025-02-28", "2025-02-14", "(all)", "(all)").await;
    assert_eq!(single_value(&organic, "self_growth_ratio"), "1.0");
    assert_eq!(single_value(&organic, "referred_share_of_new"), "0.0");
    let member = row(&ws, "kpi_daily", "2025-02-28", "2025-02-10", "(all)", "(all)").await;
    assert_eq!(single_value(&member, "member_share"), "1.0");
    assert_eq!(single_value(&member, "member_returning_buyer_share"), "0.0");

    // A partial month has no growth rate: March on 03-10 is not March.
    run_marts(&ws, "2025-03-10").await;
    let march = row(&ws, "kpi_monthly", "2025-03-10", "2025-03-01", "(all)", "(all)").await;
    assert_eq!(single_value(&march, "new_customers_mom"), "");
    assert_eq!(single_value(&march, "total_customers_yoy"), "");
}

/// March 2025 in SG: four visits, one by b through search and three anonymous (direct, app,
/// search); b's one order came through search. Search spent $8 for 10 clicks; social ads spent $5
/// and reported no clicks. Organic visits (direct, app) are half; b, the one logged-in visitor,
/// bought: visitor conversion is 1 (anonymous visits have no visitor to count; orders per visit
/// would say 0.25, and more than 1 with repeat orders); CPC is $8 over 10 clicks, not $13.
#[tokio::test]
async fn traffic_mix_conversion_and_cpc() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(&input, &[("b", "2025-03-01T09:00:00", "SG", "search")]);
    write_parquet(
        &input.join("orders/o.parquet"),
        vec![
            ("order_id", strings(&["o1"])),
            ("customer_id", strings(&["b"])),
            ("order_ts", timestamps(&["2025-03-02T10:00:00"])),
            ("amount_usd", floats(&[20.0])),
            ("market", strings(&["SG"])),
            ("channel", strings(&["search"])),
        ],
    );
    write_parquet(
        &input.join("sessions/s.parquet"),
        vec![
            ("session_id", strings(&["s1", "s2", "s3", "s4"])),
            ("customer_id", optional_strings(&[Some("b"), None, None, None])),
            ("session_start_ts", timestamps(&["2025-03-02T09:00:00"; 4])),
            ("market", strings(&["SG"; 4])),
            ("channel", strings(&["search", "direct", "app", "search"])),
        ],
    );
    write_parquet(
        &input.join("marketing_spend/s.parquet"),
        vec![
            (
                "spend_date",
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![20149, 20149])) as ArrayRef, // 2025-03-02
            ),
            ("market", strings(&["SG", "SG"])),
            ("channel", strings(&["search", "social_ads"])),
            ("spend_usd", floats(&[8.0, 5.0])),
            (
                "clicks",
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![Some(10), None])) as ArrayRef,
            ),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    for (table, period) in [("kpi_monthly", "2025-03-01"), ("kpi_daily", "2025-03-02")] {
        let all = row(&ws, table, "2025-03-31", period, "(all)", "(all)").await;
        let value = |column: &str| single_value(&all, column);
        assert_eq!(value("sessions"), "4", "{table}: {all}");
        assert_eq!(value("organic_session_share"), "0.5", "{table}");
        assert_eq!(value("organic_session_status"), "green", "{table}");
        assert_eq!(value("visit_to_purchase_rate"), "1.0", "{table}");
        assert_eq!(value("cpc_usd"), "0.8", "{table}");
        assert_eq!(value("cpc_status"), "green", "{table}: at most the plan's $0.80");
        let search = row(&ws, table, "2025-03-31", period, "SG", "search").await;
        assert_eq!(single_value(&search, "sessions"), "2", "{table}");
        assert_eq!(single_value(&search, "organic_session_share"), "0.0");
        assert_eq!(single_value(&search, "visit_to_purchase_rate"), "1.0");
        let direct = row(&ws, table, "2025-03-31", period, "SG", "direct").await;
        assert_eq!(single_value(&direct, "sessions"), "1", "{table}");
        assert_eq!(single_value(&direct, "organic_session_share"), "1.0");
        let social = row(&ws, table, "2025-03-31", period, "SG", "social_ads").await;
        assert_eq!(single_value(&social, "cpc_usd"), "", "{table}: no clicks, no CPC");
    }
}

/// Completed orders shipped CN to SG (delivered in 2 and in 10 days) and SG to SG (1 day); the
/// route table's 7-day share and days are per route.
#[tokio::test]
async fn delivery_time_is_per_route() {
    let ws = Workspace::new();
    let input = ws.input();
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o1", "a", "2025-03-02T10:00:00", 10.0, "completed"),
            ("o2", "b", "2025-03-03T10:00:00", 10.0, "completed"),
            ("o3", "c", "2025-03-04T10:00:00", 10.0, "completed"),
        ],
    );
    write_parquet(
        &input.join("shipments/s.parquet"),
        vec![
            ("order_id", strings(&["o1", "o2", "o3"])),
            (
                "shipped_ts",
                timestamps(&[
                    "2025-03-03T10:00:00",
                    "2025-03-04T10:00:00",
                    "2025-03-04T12:00:00",
                ]),
            ),
            (
                "delivered_ts",
                optional_timestamps(&[
                    Some("2025-03-04T10:00:00"),
                    Some("2025-03-13T10:00:00"),
                    Some("2025-03-05T10:00:00"),
                ]),
            ),
            ("origin_market", strings(&["CN", "CN", "SG"])),
            ("dest_market", strings(&["SG", "SG", "SG"])),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let routes = query_sql(
        &ws.published("delivery_routes", "2025-03-31"),
        "select origin_market, dest_market, shipped_orders, delivered_orders, delivered_within_7d_share,
                avg_delivery_days, median_delivery_days
         from t order by origin_market",
    )
    .await;
    assert_eq!(
        lines(&routes),
        lines(
            "+---------------+-------------+----------------+------------------+---------------------------+-------------------+----------------------+
             | origin_market | dest_market | shipped_orders | delivered_orders | delivered_within_7d_share | avg_delivery_days | median_delivery_days |
             +---------------+-------------+----------------+------------------+---------------------------+-------------------+----------------------+
             | CN            | SG          | 2              | 2                | 0.5                       | 6.0               | 6.0                  |
             | SG            | SG          | 1              | 1                | 1.0                       | 1.0               | 1.0                  |
             +---------------+-------------+----------------+------------------+---------------------------+-------------------+----------------------+"
        )
    );
}

/// January 2025 in SG: b (search) bought on 01-02 and invited z (sent 01-06, accepted 01-08) and
/// w (sent 01-09, accepted 01-10). z, signed up through the referral channel, had already bought
/// on 01-04: the invite did not bring z. w bought on 01-12, after accepting: referred. Of three
/// new customers one was referred (not two), and one invite of two converted (not both).
#[tokio::test]
async fn referred_means_a_first_purchase_after_the_accepted_invite() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("b", "2025-01-01T00:00:00", "SG", "search"),
            ("z", "2025-01-01T00:00:00", "SG", "referral"),
            ("w", "2025-01-01T00:00:00", "SG", "referral"),
        ],
    );
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o1", "b", "2025-01-02T10:00:00", 10.0, "completed"),
            ("o2", "z", "2025-01-04T10:00:00", 10.0, "completed"),
            ("o3", "w", "2025-01-12T10:00:00", 10.0, "completed"),
        ],
    );
    write_parquet(
        &input.join("invites/i.parquet"),
        vec![
            ("invite_id", strings(&["i1", "i2"])),
            ("inviter_customer_id", strings(&["b", "b"])),
            (
                "sent_ts",
                timestamps(&["2025-01-06T10:00:00", "2025-01-09T10:00:00"]),
            ),
            ("share_channel", strings(&["link", "link"])),
            ("invitee_customer_id", optional_strings(&[Some("z"), Some("w")])),
            (
                "accepted_ts",
                optional_timestamps(&[Some("2025-01-08T10:00:00"), Some("2025-01-10T10:00:00")]),
            ),
        ],
    );
    run_marts(&ws, "2025-01-31").await;
    let january = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&january, "new_customers"), "3");
    assert_eq!(
        single_value(&january, "referred_share_of_new"),
        (1.0_f64 / 3.0).to_string(),
        "{january}"
    );
    assert_eq!(single_value(&january, "invite_conversion"), "0.5");
    let funnel = query_sql(
        &ws.published("referral_funnel", "2025-01-31"),
        "select referred_new_customers, converted_invites, invite_conversion from t where month_start = '2025-01-01'",
    )
    .await;
    assert_eq!(single_value(&funnel, "referred_new_customers"), "1");
    assert_eq!(single_value(&funnel, "invite_conversion"), "0.5");
}

/// a bought on 2023-03-01 and 2024-03-01, b twice on 2023-06-01, c on 2023-07-01 and 2023-08-15
/// (run date 2024-03-31). March 2024's only buyer, a, had bought before: the returning-buyer
/// share is 1, green under the old reading. The plan's repurchase rate looks at the 12 months
/// April 2023 to March 2024: buyers a (one day in it), b (two orders, one day) and c (two days):
/// 1 of 3, yellow (under the 40% target, above the 30% red bound). Its buyers against the 12 months before (a alone): growth 2.0.
/// On 2024-04-01 April has one day: its figures show, its statuses say partial.
#[tokio::test]
async fn repurchase_is_two_purchase_days_in_the_window_and_partial_months_have_no_colour() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("a1", "a", "2023-03-01T10:00:00", 10.0, "completed"),
            ("a2", "a", "2024-03-01T10:00:00", 10.0, "completed"),
            ("b1", "b", "2023-06-01T10:00:00", 10.0, "completed"),
            ("b2", "b", "2023-06-01T18:00:00", 10.0, "completed"),
            ("c1", "c", "2023-07-01T10:00:00", 10.0, "completed"),
            ("c2", "c", "2023-08-15T10:00:00", 10.0, "completed"),
        ],
    );
    run_marts(&ws, "2024-03-31").await;
    let march = row(&ws, "kpi_monthly", "2024-03-31", "2024-03-01", "(all)", "(all)").await;
    let value = |column: &str| single_value(&march, column);
    assert_eq!(value("returning_buyer_share"), "1.0", "{march}");
    assert_eq!(value("repurchase_rate"), (1.0_f64 / 3.0).to_string());
    assert_eq!(value("repurchase_status"), "yellow");
    assert_eq!(value("active_buyers_growth"), "2.0");
    // Daily: the 365 days ending 2024-03-31 start on 2023-04-02: the same three, c alone twice.
    let day = row(&ws, "kpi_daily", "2024-03-31", "2024-03-31", "(all)", "(all)").await;
    assert_eq!(single_value(&day, "repurchase_rate"), (1.0_f64 / 3.0).to_string());
    // 2023-08-15, c's second day: a (2023-03-01), b and c bought in the 365 days before.
    let second = row(&ws, "kpi_daily", "2024-03-31", "2023-08-15", "(all)", "(all)").await;
    assert_eq!(
        single_value(&second, "repurchase_rate"),
        (1.0_f64 / 3.0).to_string()
    );
    let before = row(&ws, "kpi_daily", "2024-03-31", "2023-08-14", "(all)", "(all)").await;
    assert_eq!(single_value(&before, "repurchase_rate"), "0.0");

    run_marts(&ws, "2024-04-01").await;
    let april = row(&ws, "kpi_monthly", "2024-04-01", "2024-04-01", "(all)", "(all)").await;
    assert_eq!(single_value(&april, "period_complete"), "false");
    assert_eq!(
        single_value(&april, "repurchase_rate"),
        (1.0_f64 / 3.0).to_string(),
        "{april}"
    );
    assert_eq!(single_value(&april, "repurchase_status"), "partial");
    let march = row(&ws, "kpi_monthly", "2024-04-01", "2024-03-01", "(all)", "(all)").await;
    assert_eq!(single_value(&march, "repurchase_status"), "yellow");
}

/// March 2025, no customers table: b bought; b and v (who never bought) visited. Without
/// customers only buyers are known, so DAU/MAU would count b alone and say so as if it were the
/// whole audience: it is null instead. Visitor conversion needs no customers table: v and b
/// visited, b bought.
#[tokio::test]
async fn without_customers_dau_mau_is_null_not_a_count_of_buyers() {
    let ws = Workspace::new();
    let input = ws.input();
    write_orders(
        &input,
        "part-0.parquet",
        &[("o1", "b", "2025-03-02T10:00:00", 20.0, "completed")],
    );
    write_parquet(
        &input.join("sessions/s.parquet"),
        vec![
            ("session_id", strings(&["s1", "s2"])),
            ("customer_id", optional_strings(&[Some("b"), Some("v")])),
            ("session_start_ts", timestamps(&["2025-03-02T09:00:00"; 2])),
            ("market", strings(&["SG"; 2])),
            ("channel", strings(&["search"; 2])),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let march = row(&ws, "kpi_monthly", "2025-03-31", "2025-03-01", "(all)", "(all)").await;
    for column in ["dau", "mau", "dau_mau", "dau_mau_status"] {
        assert_eq!(single_value(&march, column), "", "{column}: {march}");
    }
    assert_eq!(single_value(&march, "visit_to_purchase_rate"), "0.5");
}

/// Rows the scorecard used to drop without a word (run date 2025-03-31, SG): u, whom no table
/// knows, visited logged in (MAU counts u under market unknown); n, a customer who never bought,
/// sent an invite (it counts in invites_sent under n's market).
#[tokio::test]
async fn unknown_visitors_and_non_buying_inviters_are_counted() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("b", "2025-03-01T00:00:00", "SG", "search"),
            ("n", "2025-03-01T00:00:00", "SG", "search"),
        ],
    );
    write_orders(
        &input,
        "part-0.parquet",
        &[("o1", "b", "2025-03-02T10:00:00", 20.0, "completed")],
    );
    write_parquet(
        &input.join("sessions/s.parquet"),
        vec![
            ("session_id", strings(&["s1", "s2"])),
            ("customer_id", optional_strings(&[Some("b"), Some("u")])),
            ("session_start_ts", timestamps(&["2025-03-02T09:00:00"; 2])),
            ("market", strings(&["SG"; 2])),
            ("channel", strings(&["search"; 2])),
        ],
    );
    write_parquet(
        &input.join("invites/i.parquet"),
        vec![
            ("invite_id", strings(&["i1"])),
            ("inviter_customer_id", strings(&["n"])),
            ("sent_ts", timestamps(&["2025-03-05T10:00:00"])),
            ("share_channel", strings(&["link"])),
            ("invitee_customer_id", optional_strings(&[None])),
            ("accepted_ts", optional_timestamps(&[None])),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let march = row(&ws, "kpi_monthly", "2025-03-31", "2025-03-01", "(all)", "(all)").await;
    assert_eq!(single_value(&march, "mau"), "2", "{march}");
    assert_eq!(
        single_value(&march, "invite_conversion"),
        "0.0",
        "one invite sent, none converted"
    );
    let unknown = row(
        &ws,
        "kpi_monthly",
        "2025-03-31",
        "2025-03-01",
        "unknown",
        "unknown",
    )
    .await;
    assert_eq!(single_value(&unknown, "mau"), "1", "{unknown}");
}

/// The cohort acquired in January 2024 (run date 2025-01-31): a spent $100 in its first year;
/// search spent $10 in January 2024. With SG's margin at 40% and the default (30%) elsewhere,
/// LTV/CAC is $40 over $10 = 4 (green), where revenue over spend would say 10.
#[tokio::test]
async fn ltv_to_cac_is_gross_margin_per_market() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(&input, &[("a", "2024-01-01T00:00:00", "SG", "search")]);
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o1", "a", "2024-01-10T10:00:00", 60.0, "completed"),
            ("o2", "a", "2024-06-10T10:00:00", 40.0, "completed"),
        ],
    );
    write_parquet(
        &input.join("marketing_spend/s.parquet"),
        vec![
            (
                "spend_date",
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![19723])) as ArrayRef, // 2024-01-01
            ),
            ("market", strings(&["SG"])),
            ("channel", strings(&["search"])),
            ("spend_usd", floats(&[10.0])),
        ],
    );
    let mut config = growth_jobs::config::Config::default();
    config.margin_rate.insert("SG".into(), 0.4);
    run_marts_with(&ws, "2025-01-31", config).await;
    let january = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "SG", "search").await;
    assert_eq!(single_value(&january, "ltv_12m_usd"), "100.0", "{january}");
    assert_eq!(single_value(&january, "ltv_12m_margin_usd"), "40.0");
    assert_eq!(single_value(&january, "ltv_to_cac"), "4.0");
    assert_eq!(single_value(&january, "ltv_to_cac_status"), "green");
}

/// The input names its organic traffic `organic_search`; the config's organic channels (organic,
/// direct, app) appear nowhere. organic_session_share reads 0%, red: the manifest says why.
#[tokio::test]
async fn an_organic_channel_no_input_names_is_a_warning_in_the_manifest() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(&input, &[("b", "2025-03-01T00:00:00", "SG", "organic_search")]);
    write_orders(
        &input,
        "part-0.parquet",
        &[("o1", "b", "2025-03-02T10:00:00", 20.0, "completed")],
    );
    let manifest = run_marts(&ws, "2025-03-31").await;
    assert_eq!(manifest.warnings.len(), 3, "{:?}", manifest.warnings);
    assert!(
        manifest
            .warnings
            .iter()
            .any(|w| w.contains("\"direct\"") && w.contains("organic_search")),
        "{:?}",
        manifest.warnings
    );
    let config = growth_jobs::config::Config {
        organic_channels: vec!["organic_search".into()],
        ..Default::default()
    };
    let manifest = run_marts_with(&ws, "2025-03-31", config).await;
    assert!(manifest.warnings.is_empty(), "{:?}", manifest.warnings);
}

/// One file says nothing of o2's status (null); another has no status column at all, which the
/// contract reads as completed. The null is a row rule (null_status): quarantined by default and
/// counted in the manifest, so o2's $30 is not revenue; o4 of the file without the column is.
/// Under `reject` the run stops naming the rule and the rows.
#[tokio::test]
async fn a_null_order_status_is_a_row_rule_and_a_file_without_the_column_reads_completed() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(&input, &[("b", "2025-03-01T00:00:00", "SG", "search")]);
    write_parquet(
        &input.join("orders/part-0.parquet"),
        vec![
            ("order_id", strings(&["o1", "o2", "o3"])),
            ("customer_id", strings(&["b", "b", "b"])),
            (
                "order_ts",
                timestamps(&[
                    "2025-03-02T10:00:00",
                    "2025-03-03T10:00:00",
                    "2025-03-04T10:00:00",
                ]),
            ),
            ("amount_usd", floats(&[20.0, 30.0, 50.0])),
            (
                "status",
                Arc::new(StringArray::from(vec![
                    Some("completed"),
                    None,
                    Some("cancelled"),
                ])) as ArrayRef,
            ),
        ],
    );
    write_parquet(
        &input.join("orders/part-1.parquet"),
        vec![
            ("order_id", strings(&["o4"])),
            ("customer_id", strings(&["b"])),
            ("order_ts", timestamps(&["2025-03-05T10:00:00"])),
            ("amount_usd", floats(&[5.0])),
        ],
    );
    // One order of four set aside is more than the default 1% share.
    let mut config = growth_jobs::config::Config::default();
    config.quality.max_reject_share = 0.5;
    let manifest = run_marts_with(&ws, "2025-03-31", config.clone()).await;
    assert!(
        !manifest.warnings.iter().any(|w| w.starts_with("orders.status")),
        "{:?}",
        manifest.warnings
    );
    assert_eq!(manifest.inputs["orders"].defaulted.get("status"), None);
    let finding = manifest
        .quality
        .findings
        .iter()
        .find(|f| f.rule == "null_status")
        .unwrap_or_else(|| panic!("no null_status finding: {:?}", manifest.quality.findings));
    assert_eq!((finding.table.as_str(), finding.rows), ("orders", 1));
    let sales = query_sql(
        &ws.published("daily_sales", "2025-03-31"),
        "select sum(revenue_usd) as revenue from t",
    )
    .await;
    assert_eq!(single_value(&sales, "revenue"), "25.0", "{sales}");

    config
        .quality
        .policy
        .insert("null_status".into(), growth_jobs::config::Policy::Reject);
    let mut options = ws.options(Some("2025-03-31"));
    options.models_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    options.config = config;
    let error = growth_jobs::transform::run(&options).await.unwrap_err();
    assert_eq!(
        error.exit_code(),
        growth_jobs::error::exit_code::BAD_INPUT,
        "{error}"
    );
    assert!(error.to_string().contains("null_status"), "{error}");
}

/// a (SG) bought on two days of March 2025, b (TH) once, c (MX) once, d (ZZ, a market no region
/// names) once. The plan's regions roll their markets up; ZZ falls in the `default` region.
#[tokio::test]
async fn regions_roll_up_their_markets_and_unnamed_markets_fall_in_the_default_region() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("a", "2025-03-01T00:00:00", "SG", "search"),
            ("b", "2025-03-01T00:00:00", "TH", "search"),
            ("c", "2025-03-01T00:00:00", "MX", "search"),
            ("d", "2025-03-01T00:00:00", "ZZ", "search"),
        ],
    );
    write_orders(
        &input,
        "part-0.parquet",
        &[
            ("o1", "a", "2025-03-02T10:00:00", 10.0, "completed"),
            ("o2", "a", "2025-03-05T10:00:00", 20.0, "completed"),
            ("o3", "b", "2025-03-03T10:00:00", 30.0, "completed"),
            ("o4", "c", "2025-03-04T10:00:00", 40.0, "completed"),
            ("o5", "d", "2025-03-06T10:00:00", 5.0, "completed"),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let regions = query_sql(
        &ws.published("kpi_monthly", "2025-03-31"),
        "select region, active_customers, revenue_usd, repurchase_rate from t \
         where market = '(all)' and channel = '(all)' and month_start = '2025-03-01' order by region",
    )
    .await;
    assert_eq!(
        regions,
        "+-----------------+------------------+-------------+-----------------+
| region          | active_customers | revenue_usd | repurchase_rate |
+-----------------+------------------+-------------+-----------------+
| (all)           | 4                | 105.0       | 0.25            |
| Latin America   | 1                | 40.0        | 0.0             |
| Other           | 1                | 5.0         | 0.0             |
| South-East Asia | 2                | 60.0        | 0.5             |
+-----------------+------------------+-------------+-----------------+"
    );
    let detail = row(&ws, "kpi_monthly", "2025-03-31", "2025-03-01", "SG", "search").await;
    assert_eq!(single_value(&detail, "region"), "South-East Asia");
    let day = query_sql(
        &ws.published("kpi_daily", "2025-03-31"),
        "select revenue_usd from t where region = 'South-East Asia' and market = '(all)' \
         and channel = 'search' and day = '2025-03-05'",
    )
    .await;
    assert_eq!(single_value(&day, "revenue_usd"), "20.0", "{day}");

    // A market the config names leaves its built-in region.
    let mut config = growth_jobs::config::Config::default();
    config.region.insert("SG".into(), "Singapore".into());
    run_marts_with(&ws, "2025-03-31", config).await;
    let regions = query_sql(
        &ws.published("kpi_monthly", "2025-03-31"),
        "select region, revenue_usd from t \
         where region <> '(all)' and market = '(all)' and channel = '(all)' and month_start = '2025-03-01' \
         order by region",
    )
    .await;
    assert!(regions.contains("| Singapore       | 30.0 "), "{regions}");
    assert!(regions.contains("| South-East Asia | 30.0 "), "{regions}");
}

/// y joined in January 2023 and spent $200 in its first year ($500 more in February 2024, its
/// second year); x joined in January 2024 and spent $300 in its first. First-year value per
/// customer grew by half: +50%, above the plan's +35%.
#[tokio::test]
async fn ltv_growth_compares_first_year_value_with_the_cohort_a_year_before() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("y1", "y", "2023-01-10T10:00:00", 100.0, "completed"),
            ("y2", "y", "2023-06-10T10:00:00", 100.0, "completed"),
            ("y3", "y", "2024-02-10T10:00:00", 500.0, "completed"),
            ("x1", "x", "2024-01-10T10:00:00", 100.0, "completed"),
            ("x2", "x", "2024-03-10T10:00:00", 200.0, "completed"),
        ],
    );
    run_marts(&ws, "2025-01-31").await;
    let january = row(&ws, "kpi_monthly", "2025-01-31", "2025-01-01", "(all)", "(all)").await;
    assert_eq!(single_value(&january, "ltv_12m_margin_usd"), "90.0", "{january}");
    assert_eq!(single_value(&january, "ltv_12m_growth"), "0.5", "{january}");
    assert_eq!(single_value(&january, "ltv_growth_status"), "green");
    // A cohort with no cohort a year before it has no growth.
    let a_year_before = row(&ws, "kpi_monthly", "2025-01-31", "2024-01-01", "(all)", "(all)").await;
    assert_eq!(
        single_value(&a_year_before, "ltv_12m_growth"),
        "",
        "{a_year_before}"
    );
    let day = row(&ws, "kpi_daily", "2025-01-31", "2025-01-10", "(all)", "(all)").await;
    assert_eq!(single_value(&day, "ltv_12m_growth"), "0.5", "{day}");
}

/// Tokyo is UTC+9, Mexico City UTC-6 (no daylight saving since 2022), Singapore left at the
/// default, UTC. Each market's orders fall in its own days and months, and a run for 2025-02-28
/// sees each market up to the end of that day in its own time.
#[tokio::test]
async fn each_market_counts_its_days_and_months_in_its_own_time_zone() {
    let ws = Workspace::new();
    let input = ws.input();
    write_customers(
        &input,
        &[
            ("j", "2025-01-01T00:00:00", "JP", "search"),
            ("m", "2025-01-01T00:00:00", "MX", "search"),
            ("s", "2025-01-01T00:00:00", "SG", "search"),
        ],
    );
    write_parquet(
        &input.join("orders/part-0.parquet"),
        vec![
            ("order_id", strings(&["j1", "j2", "m1", "m2", "s1"])),
            ("customer_id", strings(&["j", "j", "m", "m", "s"])),
            (
                "order_ts",
                timestamps(&[
                    "2025-01-31T16:00:00", // 02-01 01:00 in Tokyo
                    "2025-02-28T16:00:00", // 03-01 01:00 in Tokyo: after the run date there
                    "2025-03-01T03:00:00", // 02-28 21:00 in Mexico City
                    "2025-03-01T05:00:00", // 02-28 23:00 in Mexico City
                    "2025-02-28T23:00:00", // 02-28 in Singapore's configured zone, UTC
                ]),
            ),
            ("amount_usd", floats(&[10.0, 20.0, 30.0, 40.0, 50.0])),
            ("status", strings(&["completed"; 5])),
            ("market", strings(&["JP", "JP", "MX", "MX", "SG"])),
        ],
    );
    let mut config = growth_jobs::config::Config::default();
    config.time_zone.insert("JP".into(), "Asia/Tokyo".into());
    config.time_zone.insert("MX".into(), "America/Mexico_City".into());
    run_marts_with(&ws, "2025-02-28", config).await;
    let months = query_sql(
        &ws.published("kpi_monthly", "2025-02-28"),
        "select market, cast(month_start as varchar) as month, orders, revenue_usd, new_customers from t \
         where channel = '(all)' and market in ('JP', 'MX', 'SG') and orders > 0 order by market, month",
    )
    .await;
    assert_eq!(
        months,
        "+--------+------------+--------+-------------+---------------+
| market | month      | orders | revenue_usd | new_customers |
+--------+------------+--------+-------------+---------------+
| JP     | 2025-02-01 | 1      | 10.0        | 1             |
| MX     | 2025-02-01 | 2      | 70.0        | 1             |
| SG     | 2025-02-01 | 1      | 50.0        | 1             |
+--------+------------+--------+-------------+---------------+"
    );
    let days = query_sql(
        &ws.published("daily_sales", "2025-02-28"),
        "select market, cast(order_date as varchar) as day, orders from t order by market, day",
    )
    .await;
    assert_eq!(
        days,
        "+--------+------------+--------+
| market | day        | orders |
+--------+------------+--------+
| JP     | 2025-02-01 | 1      |
| MX     | 2025-02-28 | 2      |
| SG     | 2025-02-28 | 1      |
+--------+------------+--------+"
    );
    let cohorts = query_sql(
        &ws.published("cohort_retention", "2025-02-28"),
        "select market, cast(cohort_month as varchar) as cohort, months_since, cohort_size from t \
         where acquisition_channel = '(all)' and market = 'JP' order by months_since",
    )
    .await;
    assert!(
        cohorts.contains("| JP     | 2025-02-01 | 0            | 1 "),
        "{cohorts}"
    );
}

/// Five buyers by March's end: a and b the most recent, most frequent and biggest spenders, so
/// R, F and M all score 4 or 5 for them and 3 or less for c, d and e. 2 of 5 are high value at
/// the end of March, as rfm_segments says on that day; on 2025-04-15 March keeps its figure and
/// the month under way has none.
#[tokio::test]
async fn the_high_value_share_is_rfm_segments_high_tier_at_the_latest_complete_months_end() {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("a1", "a", "2025-03-30T10:00:00", 100.0, "completed"),
            ("a2", "a", "2025-03-29T10:00:00", 100.0, "completed"),
            ("a3", "a", "2025-03-28T10:00:00", 100.0, "completed"),
            ("b1", "b", "2025-03-25T10:00:00", 90.0, "completed"),
            ("b2", "b", "2025-03-24T10:00:00", 90.0, "completed"),
            ("c1", "c", "2025-03-10T10:00:00", 30.0, "completed"),
            ("d1", "d", "2025-02-10T10:00:00", 20.0, "completed"),
            ("e1", "e", "2025-01-10T10:00:00", 10.0, "completed"),
            ("e2", "e", "2025-04-10T10:00:00", 10.0, "completed"),
        ],
    );
    run_marts(&ws, "2025-03-31").await;
    let tiers = query_sql(
        &ws.published("rfm_segments", "2025-03-31"),
        "select avg(case when value_tier = 'high' then 1.0 else 0.0 end) as share from t",
    )
    .await;
    assert_eq!(single_value(&tiers, "share"), "0.4", "{tiers}");
    let march = row(&ws, "kpi_monthly", "2025-03-31", "2025-03-01", "(all)", "(all)").await;
    assert_eq!(single_value(&march, "high_value_share"), "0.4", "{march}");
    assert_eq!(single_value(&march, "high_value_status"), "green");
    let february = row(&ws, "kpi_monthly", "2025-03-31", "2025-02-01", "(all)", "(all)").await;
    assert_eq!(single_value(&february, "high_value_share"), "", "{february}");

    run_marts(&ws, "2025-04-15").await;
    let march = row(&ws, "kpi_monthly", "2025-04-15", "2025-03-01", "(all)", "(all)").await;
    assert_eq!(single_value(&march, "high_value_share"), "0.4", "{march}");
    let april = row(&ws, "kpi_monthly", "2025-04-15", "2025-04-01", "(all)", "(all)").await;
    assert_eq!(single_value(&april, "high_value_share"), "", "{april}");
    let day = row(&ws, "kpi_daily", "2025-04-15", "2025-03-31", "(all)", "(all)").await;
    assert_eq!(single_value(&day, "high_value_share"), "", "{day}");
}
