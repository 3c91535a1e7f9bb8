//! The model runner on hand-made models and inputs, with results worked out by hand.

use growth_jobs::Error;
use growth_jobs::error::exit_code;
use growth_jobs::output::manifest::TestStatus;

use crate::support::*;

/// Four visible orders and one after the run date (2025-01-31).
fn workspace() -> Workspace {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[
            ("o1", "c1", "2025-01-05T10:00:00", 10.0, "completed"),
            ("o2", "c1", "2025-01-20T08:00:00", 30.0, "completed"),
            ("o3", "c2", "2025-01-31T23:59:59", 5.0, "completed"),
            ("o4", "c2", "2025-01-15T12:00:00", 100.0, "cancelled"),
            ("o5", "c3", "2025-02-01T00:00:00", 50.0, "completed"),
        ],
    );
    ws.model(
        "staging/paid.sql",
        "-- materialized: ephemeral\nselect customer_id, amount_usd from orders where status = 'completed'",
    );
    ws.model(
        "marts/spend_by_customer.sql",
        "with paid_orders as (select * from paid)
         select customer_id, sum(amount_usd) as revenue_usd, count(*) as purchases
         from paid_orders group by customer_id order by customer_id",
    );
    ws.model(
        "marts/big_spenders.sql",
        "select s.customer_id, s.revenue_usd, r.run_date
         from spend_by_customer s cross join run_context r
         where s.revenue_usd > 10 order by s.customer_id",
    );
    ws
}

#[tokio::test]
async fn models_run_in_dependency_order_as_of_the_run_date() {
    let ws = workspace();
    let manifest = ws.run(Some("2025-01-31")).await.unwrap();
    let order: Vec<&str> = manifest.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(order, ["paid", "spend_by_customer", "big_spenders"]);

    // c1: 10 + 30 over two purchases; c2: the cancelled order does not count, the order at
    // 23:59:59 on the run date does; c3 ordered after the run date and does not exist yet.
    let spend = query(
        &ws.published("spend_by_customer", "2025-01-31"),
        "order by customer_id",
    )
    .await;
    assert_eq!(
        lines(&spend),
        lines(
            "+-------------+-------------+-----------+
             | customer_id | revenue_usd | purchases |
             +-------------+-------------+-----------+
             | c1          | 40.0        | 2         |
             | c2          | 5.0         | 1         |
             +-------------+-------------+-----------+"
        )
    );
    let big = query(&ws.published("big_spenders", "2025-01-31"), "").await;
    assert_eq!(
        lines(&big),
        lines(
            "+-------------+-------------+------------+
             | customer_id | revenue_usd | run_date   |
             +-------------+-------------+------------+
             | c1          | 40.0        | 2025-01-31 |
             +-------------+-------------+------------+"
        )
    );
    assert!(
        !ws.output().join("paid").exists(),
        "an ephemeral model is never written"
    );
    let entry = manifest
        .models
        .iter()
        .find(|m| m.model == "spend_by_customer")
        .unwrap();
    assert_eq!(entry.output.as_ref().unwrap().rows, 2);
    assert_eq!(entry.file, "marts/spend_by_customer.sql");

    // Peak memory is on record for every model and stage (Linux), and the models stage's peak
    // covers each of its models'.
    let stage_peak = |name: &str| {
        let stage = manifest.stages.iter().find(|s| s.stage == name).unwrap();
        stage.peak_rss_bytes.unwrap()
    };
    assert!(stage_peak("validate") > 0 && stage_peak("publish") > 0);
    for model in &manifest.models {
        let peak = model.peak_rss_bytes.unwrap();
        assert!(
            peak > 0 && peak <= stage_peak("models"),
            "{}: {peak}",
            model.model
        );
    }
}

#[tokio::test]
async fn an_earlier_run_date_sees_less() {
    let ws = workspace();
    ws.run(Some("2025-01-10")).await.unwrap();
    let spend = query(
        &ws.published("spend_by_customer", "2025-01-10"),
        "order by customer_id",
    )
    .await;
    assert_eq!(
        lines(&spend),
        lines(
            "+-------------+-------------+-----------+
             | customer_id | revenue_usd | purchases |
             +-------------+-------------+-----------+
             | c1          | 10.0        | 1         |
             +-------------+-------------+-----------+"
        )
    );
}

#[tokio::test]
async fn the_default_run_date_is_the_latest_order_day() {
    let ws = workspace();
    let manifest = ws.run(None).await.unwrap();
    assert_eq!(manifest.run_date, date("2025-02-01"));
    assert!(ws.published("spend_by_customer", "2025-02-01").exists());
}

#[tokio::test]
async fn absent_customers_are_derived_from_first_orders_and_other_tables_are_empty() {
    let ws = workspace();
    ws.model(
        "known_customers.sql",
        "select customer_id, signup_ts, market, acquisition_channel, (select count(*) from sessions) as sessions
         from customers order by customer_id",
    );
    let manifest = ws.run(Some("2025-01-31")).await.unwrap();
    assert!(manifest.absent_inputs.contains(&"sessions".to_string()));
    assert!(manifest.absent_inputs.contains(&"customers".to_string()));
    let customers = query(
        &ws.published("known_customers", "2025-01-31"),
        "order by customer_id",
    )
    .await;
    assert_eq!(
        lines(&customers),
        lines(
            "+-------------+----------------------+---------+---------------------+----------+
             | customer_id | signup_ts            | market  | acquisition_channel | sessions |
             +-------------+----------------------+---------+---------------------+----------+
             | c1          | 2025-01-05T10:00:00Z | unknown | unknown             | 0        |
             | c2          | 2025-01-15T12:00:00Z | unknown | unknown             | 0        |
             +-------------+----------------------+---------+---------------------+----------+"
        )
    );
}

#[tokio::test]
async fn selection_runs_a_model_with_what_it_reads_only() {
    let ws = workspace();
    let mut options = ws.options(Some("2025-01-31"));
    options.select = vec!["spend_by_customer".into()];
    let manifest = growth_jobs::transform::run(&options).await.unwrap();
    let names: Vec<&str> = manifest.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(names, ["paid", "spend_by_customer"]);
    assert!(!ws.output().join("big_spenders").exists());
}

/// Each broken project fails before any write, with the bad-model exit code and the file named.
#[tokio::test]
async fn broken_models_fail_before_writing_and_name_the_file() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "marts/typo.sql",
            "selec customer_id from orders",
            &["typo.sql", "syntax"],
        ),
        (
            "marts/lost.sql",
            "select * from order_lines",
            &["lost.sql", "order_lines"],
        ),
        (
            "marts/no_column.sql",
            "select customer_key from orders",
            &["no_column.sql", "customer_key"],
        ),
        (
            "marts/loop_a.sql",
            "select * from loop_b",
            &["cycle", "loop_a.sql", "loop_b.sql"],
        ),
    ];
    for (file, sql, needles) in cases {
        let ws = workspace();
        ws.model(file, sql);
        if file.contains("loop_a") {
            ws.model("marts/loop_b.sql", "select * from loop_a");
        }
        let err = ws.run(Some("2025-01-31")).await.expect_err(file);
        assert_eq!(err.exit_code(), exit_code::BAD_MODEL, "{err}");
        for needle in *needles {
            assert!(err.to_string().contains(needle), "{err} should name {needle}");
        }
        assert!(!ws.output().exists(), "{file}: nothing may be written");
    }
}

#[tokio::test]
async fn a_model_failing_at_run_time_publishes_nothing() {
    let ws = workspace();
    ws.run(Some("2025-01-31")).await.unwrap();
    let before = ws.snapshot();
    ws.model(
        "marts/bad_cast.sql",
        "select cast(customer_id as int) as n from spend_by_customer",
    );
    let err = ws
        .run(Some("2025-01-31"))
        .await
        .expect_err("the cast fails on 'c1'");
    assert!(
        matches!(err, Error::ModelFailed { ref model, ref file, .. } if model == "bad_cast" && file == "marts/bad_cast.sql"),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit_code::BAD_MODEL);
    assert_eq!(
        ws.snapshot(),
        before,
        "published files and manifest unchanged, drafts removed"
    );
}

/// A later event (an acceptance) after the run date has not happened yet for that run.
#[tokio::test]
async fn later_events_after_the_run_date_are_not_seen() {
    let ws = workspace();
    write_parquet(
        &ws.input().join("invites/part-0.parquet"),
        vec![
            ("invite_id", strings(&["i1", "i2", "i3"])),
            ("inviter_customer_id", strings(&["c1", "c1", "c2"])),
            (
                "sent_ts",
                timestamps(&[
                    "2025-01-10T09:00:00",
                    "2025-01-30T09:00:00",
                    "2025-02-05T09:00:00",
                ]),
            ),
            ("invitee_customer_id", strings(&["c2", "c3", "c9"])),
            (
                "accepted_ts",
                timestamps(&[
                    "2025-01-12T09:00:00",
                    "2025-02-02T09:00:00",
                    "2025-02-06T09:00:00",
                ]),
            ),
        ],
    );
    ws.model(
        "accepted_invites.sql",
        "select invite_id, invitee_customer_id, accepted_ts, share_channel from invites order by invite_id",
    );
    ws.run(Some("2025-01-31")).await.unwrap();
    let invites = query(
        &ws.published("accepted_invites", "2025-01-31"),
        "order by invite_id",
    )
    .await;
    assert_eq!(
        lines(&invites),
        lines(
            "+-----------+---------------------+----------------------+---------------+
             | invite_id | invitee_customer_id | accepted_ts          | share_channel |
             +-----------+---------------------+----------------------+---------------+
             | i1        | c2                  | 2025-01-12T09:00:00Z | unknown       |
             | i2        |                     |                      | unknown       |
             +-----------+---------------------+----------------------+---------------+"
        )
    );
}

/// dbt's severities and thresholds: a warn-level test that fails publishes its model, the
/// manifest records the warning, and its failing rows (at most `store_failures`) are stored;
/// an error-level test past `error_if` blocks the model; a later run whose tests pass leaves
/// no stored failures for the date.
#[tokio::test]
async fn warn_level_tests_publish_and_store_failing_rows_and_error_if_decides_what_blocks() {
    let ws = workspace();
    let tests = ws.models().join("marts/spend_by_customer.tests.toml");
    let failures = ws
        .output()
        .join("_test_failures/spend_by_customer/run_date=2025-01-31");
    // As of 2025-01-31: c1 spent 40 over 2 purchases, c2 5 over 1.
    std::fs::write(
        &tests,
        "severity = \"warn\"\nstore_failures = 1\nexpect = [\"revenue_usd < 20\", \"purchases > 5\"]\n",
    )
    .unwrap();
    let manifest = ws.run(Some("2025-01-31")).await.unwrap();
    assert_eq!(manifest.status, "succeeded");
    assert!(ws.published("spend_by_customer", "2025-01-31").exists());
    let spend = &manifest.models[1];
    let outcomes: Vec<(&str, u64, TestStatus, Option<u64>)> = spend
        .tests
        .iter()
        .map(|t| {
            (
                t.test.as_str(),
                t.failing_rows,
                t.status(),
                t.stored.as_ref().map(|s| s.rows),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("expect(revenue_usd < 20)", 1, TestStatus::Warn, Some(1)),
            ("expect(purchases > 5)", 2, TestStatus::Warn, Some(1)),
        ]
    );
    assert!(
        manifest
            .warnings
            .iter()
            .any(|w| w == "data test warns: spend_by_customer: expect(revenue_usd < 20) (1 rows)"),
        "{:?}",
        manifest.warnings
    );
    let stored = query(&failures.join("01-expect-revenue_usd-20.parquet"), "").await;
    assert_eq!(
        lines(&stored),
        lines(
            "+-------------+-------------+-----------+
             | customer_id | revenue_usd | purchases |
             +-------------+-------------+-----------+
             | c1          | 40.0        | 2         |
             +-------------+-------------+-----------+"
        )
    );
    // The first of the two failing rows in the order of every column: c1.
    let stored = query(&failures.join("02-expect-purchases-5.parquet"), "").await;
    assert!(stored.contains("c1") && !stored.contains("c2"), "{stored}");

    // Error severity with a threshold: 2 failing rows are not "> 2", so a warning; 1 row past
    // "!= 0" is an error, which blocks the model and what reads it.
    std::fs::write(
        &tests,
        "store_failures = 5\nexpect = [\"revenue_usd < 20\", \"purchases > 5\"]\n\
         [config.\"expect(purchases > 5)\"]\nerror_if = \"> 2\"\n",
    )
    .unwrap();
    let error = ws.run(Some("2025-01-31")).await.unwrap_err();
    assert_eq!(error.exit_code(), exit_code::DATA_TEST, "{error}");
    let text = error.to_string();
    assert!(
        text.contains("expect(revenue_usd < 20) (1 rows)") && !text.contains("purchases > 5"),
        "{text}"
    );
    let stored = query(&failures.join("02-expect-purchases-5.parquet"), "").await;
    assert!(stored.contains("c1") && stored.contains("c2"), "{stored}");

    // A [config] naming no test is refused before anything runs.
    std::fs::write(
        &tests,
        "expect = [\"revenue_usd >= 0\"]\n[config.\"expect(revenue_usd > 0)\"]\nseverity = \"warn\"\n",
    )
    .unwrap();
    let error = ws.run(Some("2025-01-31")).await.unwrap_err();
    assert!(
        error.to_string().contains("names no test of the model"),
        "{error}"
    );

    // Passing tests: the date keeps no stored failures.
    std::fs::write(&tests, "expect = [\"revenue_usd >= 0\"]\n").unwrap();
    ws.run(Some("2025-01-31")).await.unwrap();
    assert!(!failures.exists());
}
