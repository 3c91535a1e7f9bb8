//! The input contract: every violation stops the run before anything is written, with a
//! message naming the table, the file and the column; lossless casts are accepted.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, TimestampMillisecondArray};
use growth_jobs::Error;
use growth_jobs::error::exit_code;

use crate::support::*;

const ONE_MODEL: &str = "select order_id, customer_id, amount_usd from orders order by order_id";

fn workspace_with_orders() -> Workspace {
    let ws = Workspace::new();
    write_orders(
        &ws.input(),
        "part-0.parquet",
        &[("o1", "c1", "2025-01-10T10:00:00", 10.0, "completed")],
    );
    ws.model("orders_copy.sql", ONE_MODEL);
    ws
}

/// Runs, expects a bad-input error, and checks that nothing at all was written.
async fn expect_bad_input(ws: &Workspace, needles: &[&str]) -> Error {
    let err = ws.run(Some("2025-01-31")).await.expect_err("the run must fail");
    assert_eq!(err.exit_code(), exit_code::BAD_INPUT, "{err}");
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{message:?} should name {needle:?}");
    }
    assert!(!ws.output().exists(), "a bad input must write nothing: {message}");
    err
}

#[tokio::test]
async fn missing_orders_table_is_named() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.input()).unwrap();
    ws.model("orders_copy.sql", ONE_MODEL);
    expect_bad_input(&ws, &["orders", "required table missing"]).await;
}

/// Writes `orders/part-1.parquet` with the order o2 of c2 on 2025-01-11, and `more` columns.
fn write_o2(ws: &Workspace, more: Vec<(&str, ArrayRef)>) {
    let mut columns = vec![
        ("order_id", strings(&["o2"])),
        ("customer_id", strings(&["c2"])),
        ("order_ts", timestamps(&["2025-01-11T10:00:00"])),
    ];
    columns.extend(more);
    write_parquet(&ws.input().join("orders/part-1.parquet"), columns);
}

#[tokio::test]
async fn missing_required_column_names_table_file_and_column() {
    let ws = workspace_with_orders();
    write_o2(&ws, vec![]);
    expect_bad_input(&ws, &["orders", "amount_usd", "part-1.parquet"]).await;
}

#[tokio::test]
async fn a_type_that_cannot_be_cast_is_named() {
    let ws = workspace_with_orders();
    write_o2(&ws, vec![("amount_usd", strings(&["12.50"]))]);
    let err = expect_bad_input(&ws, &["orders", "amount_usd", "part-1.parquet", "Utf8"]).await;
    assert!(matches!(err, Error::BadType { .. }));
}

#[tokio::test]
async fn zero_byte_and_corrupt_files_are_named() {
    let ws = workspace_with_orders();
    std::fs::write(ws.input().join("orders/part-9.parquet"), b"").unwrap();
    expect_bad_input(&ws, &["orders", "part-9.parquet", "empty"]).await;

    let ws = workspace_with_orders();
    let good = std::fs::read(ws.input().join("orders/part-0.parquet")).unwrap();
    std::fs::write(ws.input().join("orders/part-7.parquet"), &good[..good.len() / 2]).unwrap();
    expect_bad_input(&ws, &["orders", "part-7.parquet", "not a readable Parquet file"]).await;
}

#[tokio::test]
async fn an_optional_table_folder_without_files_is_an_error() {
    let ws = workspace_with_orders();
    std::fs::create_dir_all(ws.input().join("sessions")).unwrap();
    std::fs::write(ws.input().join("sessions/_SUCCESS"), b"").unwrap();
    expect_bad_input(&ws, &["sessions", "no Parquet files"]).await;
}

#[tokio::test]
async fn an_optional_table_missing_its_required_column_is_named() {
    let ws = workspace_with_orders();
    write_parquet(
        &ws.input().join("customers/c.parquet"),
        vec![("customer_id", strings(&["c1"])), ("market", strings(&["SG"]))],
    );
    expect_bad_input(&ws, &["customers", "signup_ts", "c.parquet"]).await;
}

/// Integer ids, millisecond timestamps without a zone, Hive folders, several files and extra
/// columns are all read, each cast losslessly.
#[tokio::test]
async fn integer_ids_naive_timestamps_and_hive_folders_are_accepted() {
    let ws = Workspace::new();
    let naive_ms = |v: &[&str]| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(
            v.iter().map(|t| micros(t) / 1000).collect::<Vec<_>>(),
        ))
    };
    write_parquet(
        &ws.input().join("orders/order_month=2025-01/a.parquet"),
        vec![
            ("order_id", Arc::new(Int64Array::from(vec![101, 102])) as ArrayRef),
            ("customer_id", Arc::new(Int64Array::from(vec![7, 8])) as ArrayRef),
            (
                "order_ts",
                naive_ms(&["2025-01-10T23:30:00", "2025-01-31T23:59:59"]),
            ),
            ("amount_usd", floats(&[10.25, 20.5])),
            ("warehouse_note", strings(&["x", "y"])),
        ],
    );
    write_orders(
        &ws.input(),
        "order_month=2025-02/b.parquet",
        &[("o3", "9", "2025-02-01T00:00:00", 99.0, "completed")],
    );
    ws.model(
        "orders_copy.sql",
        "select order_id, customer_id, order_ts, amount_usd, status from orders order by order_id",
    );
    let manifest = ws.run(Some("2025-01-31")).await.unwrap();
    assert_eq!(manifest.inputs["orders"].files, 2);
    let table = query(&ws.published("orders_copy", "2025-01-31"), "order by order_id").await;
    assert_eq!(
        lines(&table),
        lines(
            "+----------+-------------+----------------------+------------+-----------+
             | order_id | customer_id | order_ts             | amount_usd | status    |
             +----------+-------------+----------------------+------------+-----------+
             | 101      | 7           | 2025-01-10T23:30:00Z | 10.25      | completed |
             | 102      | 8           | 2025-01-31T23:59:59Z | 20.5       | completed |
             +----------+-------------+----------------------+------------+-----------+"
        ),
        "the order of 2025-02-01 is after the run date and must not be seen"
    );
}

/// The binary turns a contract violation into exit code 3 and one `error:` line.
#[test]
fn the_binary_exits_with_the_bad_input_code_and_one_error_line() {
    let ws = workspace_with_orders();
    write_parquet(
        &ws.input().join("orders/part-1.parquet"),
        vec![("order_id", strings(&["o2"])), ("customer_id", strings(&["c2"]))],
    );
    let result = ws
        .command_with_models(env!("CARGO_BIN_EXE_transform"), &ws.models())
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(exit_code::BAD_INPUT));
    let stderr = String::from_utf8_lossy(&result.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("orders")
            && errors[0].contains("order_ts")
            && errors[0].contains("part-1.parquet"),
        "{stderr}"
    );
    assert!(!ws.output().exists());
}

/// Writes `orders/part-1.parquet` with one order whose amount is the decimal `cents / 100` of
/// the given precision and scale 2.
fn write_decimal_amount(ws: &Workspace, precision: u8, cents: i128) {
    let amounts = datafusion::arrow::array::Decimal128Array::from(vec![cents])
        .with_precision_and_scale(precision, 2)
        .unwrap();
    write_o2(
        ws,
        vec![
            ("amount_usd", Arc::new(amounts) as ArrayRef),
            ("status", strings(&["completed"])),
        ],
    );
}

/// A decimal amount of up to 15 digits is read as the same decimal; a wider one is refused,
/// naming the table, column, file and type.
#[tokio::test]
async fn decimals_are_read_exactly_or_refused() {
    let ws = workspace_with_orders();
    write_decimal_amount(&ws, 15, 1_234_567_890_123);
    ws.run(Some("2025-01-31")).await.unwrap();
    let read = query(
        &ws.published("orders_copy", "2025-01-31"),
        "where order_id = 'o2'",
    )
    .await;
    assert!(read.contains("12345678901.23"), "{read}");

    let ws = workspace_with_orders();
    write_decimal_amount(&ws, 38, 1_234);
    let err = expect_bad_input(
        &ws,
        &["orders", "amount_usd", "part-1.parquet", "Decimal128(38, 2)"],
    )
    .await;
    assert!(matches!(err, Error::BadType { .. }));
}

/// Writes `orders/part-1.parquet` whose order_id is annotated as UTF-8 text but holds bytes
/// that are not UTF-8 (what a careless exporter writes), through the low-level writer, since
/// Arrow's own arrays refuse such text.
fn write_orders_with_invalid_utf8(ws: &Workspace) {
    use datafusion::parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::file::writer::SerializedFileWriter;
    use datafusion::parquet::schema::parser::parse_message_type;
    let schema = parse_message_type(
        "message orders { required binary order_id (UTF8); required binary customer_id (UTF8);
         required int64 order_ts (TIMESTAMP(MICROS,true)); required double amount_usd; }",
    )
    .unwrap();
    let file = std::fs::File::create(ws.input().join("orders/part-1.parquet")).unwrap();
    let properties = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), properties).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut text = |value: &[u8]| {
        let mut column = group.next_column().unwrap().unwrap();
        let values = [ByteArray::from(value.to_vec())];
        column
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        column.close().unwrap();
    };
    text(&[b'o', 0xff, 0xfe]);
    text(b"c2");
    let mut column = group.next_column().unwrap().unwrap();
    let at = [micros("2025-01-11T10:00:00")];
    column.typed::<Int64Type>().write_batch(&at, None, None).unwrap();
    column.close().unwrap();
    let mut column = group.next_column().unwrap().unwrap();
    column
        .typed::<DoubleType>()
        .write_batch(&[5.0], None, None)
        .unwrap();
    column.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
}

/// Text that is not UTF-8, and a page that cannot be decoded, pass the footer checks but fail
/// when read: the run names the table and the file, exits 3 and writes nothing.
#[tokio::test]
async fn undecodable_pages_and_invalid_utf8_name_the_file() {
    let ws = workspace_with_orders();
    write_orders_with_invalid_utf8(&ws);
    expect_bad_input(&ws, &["orders", "part-1.parquet", "not UTF-8"]).await;

    // Enough distinct rows that no column is a constant the statistics could answer for.
    let ws = workspace_with_orders();
    let ids: Vec<String> = (0..200).map(|i| format!("x{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let path = ws.input().join("orders/part-3.parquet");
    write_parquet(
        &path,
        vec![
            ("order_id", strings(&ids)),
            ("customer_id", strings(&ids)),
            ("order_ts", timestamps(&vec!["2025-01-11T10:00:00"; ids.len()])),
            ("amount_usd", floats(&vec![1.0; ids.len()])),
        ],
    );
    let mut bytes = std::fs::read(&path).unwrap();
    // The first page header follows the 4-byte magic; the footer at the end stays whole.
    bytes[4..24].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();
    expect_bad_input(&ws, &["orders", "part-3.parquet", "cannot be decoded"]).await;
}
