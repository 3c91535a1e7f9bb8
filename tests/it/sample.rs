//! The sample generator: deterministic, in the contract, spread over files, and with the
//! planted behaviour visible in the data.

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use growth_jobs::input::contract;
use growth_jobs::sample::{self, SampleOptions};
use growth_jobs::storage::Root;

fn options(folder: &Path, customers: u64, seed: u64) -> SampleOptions {
    let mut options = SampleOptions::embedded(folder.to_path_buf());
    options.customers = customers;
    options.seed = seed;
    options
}

fn files(folder: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for table in std::fs::read_dir(folder).unwrap() {
        let table = table.unwrap().path();
        for file in std::fs::read_dir(&table).unwrap() {
            let file = file.unwrap().path();
            if file.is_file() {
                out.push((
                    file.strip_prefix(folder).unwrap().display().to_string(),
                    std::fs::read(&file).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_same_seed_gives_identical_files_whatever_the_threads_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    // 9,000 customers make three chunks, so three threads each write some.
    sample::generate(&SampleOptions {
        threads: 1,
        ..options(&a, 9_000, 5)
    })
    .unwrap();
    sample::generate(&SampleOptions {
        threads: 3,
        ..options(&b, 9_000, 5)
    })
    .unwrap();
    sample::generate(&options(&c, 9_000, 6)).unwrap();
    assert_eq!(files(&a), files(&b));
    assert_ne!(files(&a), files(&c));
}

#[tokio::test]
async fn the_sample_meets_the_contract_in_several_files_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("s");
    let mut opts = options(&folder, 3_000, 1);
    opts.rows_per_file = 5_000;
    let report = sample::generate(&opts).unwrap();
    let root = Root::open(folder.to_str().unwrap(), false).unwrap();
    let input = contract::validate(&root).await.unwrap();
    assert!(input.absent().is_empty(), "every table is generated");
    assert_eq!(input.tables["customers"].rows, 3_000);
    assert!(
        input.tables["orders"].files.len() >= 2,
        "orders spread over files"
    );
    for (table, rows) in &report {
        assert_eq!(input.tables[table.as_str()].rows, *rows, "{table}");
        assert!(
            input.tables[table.as_str()].present.len() == input.tables[table.as_str()].spec.columns.len(),
            "{table} has every column"
        );
    }
}

/// The planted groups must show in the data, or churn and value could not be learned.
#[tokio::test]
async fn planted_groups_differ_in_purchases_and_spend() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("s");
    sample::generate(&options(&folder, 4_000, 3)).unwrap();
    let ctx = SessionContext::new();
    for table in [
        "orders",
        "_truth/customers",
        "customers",
        "marketing_spend",
        "invites",
        "shipments",
    ] {
        let name = table.replace("_truth/", "truth_");
        ctx.register_parquet(
            &name,
            folder.join(table).to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    let figures = ctx
        .sql(
            "select
                (select count(*) * 1.0 / (select count(*) from truth_customers where true_group = 'vip')
                   from orders join truth_customers using (customer_id) where true_group = 'vip') as vip_orders,
                (select count(*) * 1.0 / (select count(*) from truth_customers where true_group = 'one_timer')
                   from orders join truth_customers using (customer_id) where true_group = 'one_timer') as one_timer_orders,
                (select avg(amount_usd) from orders join customers using (customer_id) where customers.market = 'US') as us_basket,
                (select avg(amount_usd) from orders join customers using (customer_id) where customers.market = 'ID') as id_basket,
                (select count(*) from invites where invitee_customer_id is not null) as accepted,
                (select count(*) from customers where acquisition_channel = 'referral') as referred,
                (select sum(spend_usd) from marketing_spend) as spend,
                (select avg(case when delivered_ts is not null then 1.0 else 0.0 end) from shipments) as delivered_share",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let row = &figures[0];
    let value = |i: usize| -> f64 {
        let col = row.column(i);
        datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Float64)
            .unwrap()
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Float64Array>()
            .unwrap()
            .value(0)
    };
    let (vip, one_timer) = (value(0), value(1));
    assert!(
        vip > 5.0 * one_timer,
        "vip customers order far more: {vip} vs {one_timer}"
    );
    assert!(
        value(2) > 1.8 * value(3),
        "US baskets are larger than Indonesian ones"
    );
    assert_eq!(
        value(4),
        value(5),
        "every referred customer has one accepted invite"
    );
    assert!(value(6) > 0.0);
    assert!(value(7) > 0.9, "almost every shipment is delivered by the end");
}
