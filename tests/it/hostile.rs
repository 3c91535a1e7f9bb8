//! Hostile input: every case is a real nightly run on a published output. Each must exit with
//! its documented code, print one `error:` line naming what is wrong and where, and leave
//! every published file (tables, manifests, models) byte for byte as it was.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use datafusion::arrow::array::{ArrayRef, StringArray};
use growth_jobs::error::exit_code;

use crate::support::*;

const RUN_DATE: &str = "2026-06-30";
/// A few tables that read every input table the checks care about: enough to prove nothing
/// is published, fast enough for thirty runs.
const SELECT: &str = "daily_sales,rfm_segments,stg_order_deliveries,rejects";

/// A generated input (1,500 customers) with one good night published, made once.
fn template() -> &'static Workspace {
    static TEMPLATE: OnceLock<Workspace> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let ws = Workspace::new();
        generate_into(&ws.input(), 1_500, 9);
        copy_dir(&repo_models(), &{
            std::fs::create_dir_all(ws.models()).unwrap();
            ws.models()
        });
        let result = nightly(&ws, &[]);
        assert!(
            result.status.success(),
            "{}",
            String::from_utf8_lossy(&result.stderr)
        );
        ws
    })
}

fn repo_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sql")
}

/// A copy of the template: its input, its models and its published output.
fn case() -> Workspace {
    let ws = Workspace::new();
    for (from, to) in [
        (template().input(), ws.input()),
        (template().output(), ws.output()),
        (template().models(), ws.models()),
    ] {
        std::fs::create_dir_all(&to).unwrap();
        copy_dir(&from, &to);
    }
    ws
}

fn nightly_command(ws: &Workspace, binary: &Path, args: &[&str]) -> Command {
    let mut command = ws.command_with_models(binary, &ws.models());
    command.args(["--date", RUN_DATE, "--select", SELECT]).args(args);
    command
}

fn nightly(ws: &Workspace, args: &[&str]) -> Output {
    nightly_command(ws, Path::new(env!("CARGO_BIN_EXE_nightly")), args)
        .output()
        .unwrap()
}

/// Runs the night on a broken workspace and checks the exit code, the one error line and its
/// words, and that nothing published changed.
fn expect_failure(ws: &Workspace, args: &[&str], code: i32, needles: &[&str]) -> String {
    expect_failure_of(ws, || nightly(ws, args), code, needles)
}

fn expect_failure_of(ws: &Workspace, run: impl FnOnce() -> Output, code: i32, needles: &[&str]) -> String {
    let before = ws.snapshot();
    let result = run();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(code), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{stderr}");
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "{needle:?} missing from: {}",
            errors[0]
        );
    }
    assert!(ws.snapshot() == before, "a published file changed: {}", errors[0]);
    errors[0].to_string()
}

/// The sample's only orders file.
fn orders_file(ws: &Workspace) -> PathBuf {
    ws.input().join("orders/part-00000.parquet")
}

/// An order row: (order_id, customer_id, order_ts, amount_usd, status).
type Order = (String, String, String, f64, String);

/// An extra orders file of `n` rows built from a row template.
fn extra_orders(ws: &Workspace, n: usize, row: impl Fn(usize) -> Order) {
    let rows: Vec<_> = (0..n).map(row).collect();
    let borrowed: Vec<(&str, &str, &str, f64, &str)> = rows
        .iter()
        .map(|(o, c, t, a, s)| (o.as_str(), c.as_str(), t.as_str(), *a, s.as_str()))
        .collect();
    write_orders(&ws.input(), "part-extra.parquet", &borrowed);
}

/// An order of the sample's first customer (signed up 2024-07-01), valid in every way.
fn good_order(i: usize) -> Order {
    (
        format!("extra-{i}"),
        "C000000000".into(),
        "2025-03-01T10:00:00".into(),
        25.0,
        "completed".into(),
    )
}

/// 200 bad rows: about 3% of the sample's orders, above the 1% quarantine limit.
const MANY: usize = 200;

// ---- Files and folders ----

#[test]
fn a_truncated_parquet_file() {
    let ws = case();
    let bytes = std::fs::read(orders_file(&ws)).unwrap();
    std::fs::write(orders_file(&ws), &bytes[..bytes.len() / 2]).unwrap();
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "part-00000.parquet", "not a readable Parquet file"],
    );
}

#[test]
fn a_corrupt_parquet_file() {
    let ws = case();
    let file = ws.input().join("customers/part-00000.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    let end = bytes.len();
    bytes[end - 12..end - 8].copy_from_slice(&[0xff; 4]); // the footer length
    std::fs::write(&file, bytes).unwrap();
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["customers", "part-00000.parquet"],
    );
}

#[test]
fn a_zero_byte_file() {
    let ws = case();
    std::fs::write(ws.input().join("sessions/part-00001.parquet"), b"").unwrap();
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["sessions", "part-00001.parquet", "0 bytes"],
    );
}

#[test]
fn a_folder_with_no_files() {
    let ws = case();
    std::fs::remove_file(ws.input().join("shipments/part-00000.parquet")).unwrap();
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["shipments", "holds no Parquet files"],
    );
}

#[test]
fn a_missing_required_table() {
    let ws = case();
    std::fs::remove_dir_all(ws.input().join("orders")).unwrap();
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "required table missing"],
    );
}

#[test]
fn a_missing_required_column() {
    let ws = case();
    write_parquet(
        &ws.input().join("orders/part-extra.parquet"),
        vec![
            ("order_id", strings(&["x1"])),
            ("customer_id", strings(&["C000000000"])),
        ],
    );
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "order_ts", "part-extra.parquet"],
    );
}

#[test]
fn a_column_of_the_wrong_type() {
    let ws = case();
    write_parquet(
        &ws.input().join("orders/part-extra.parquet"),
        vec![
            ("order_id", strings(&["x1"])),
            ("customer_id", strings(&["C000000000"])),
            ("order_ts", timestamps(&["2025-03-01T10:00:00"])),
            ("amount_usd", strings(&["12.50"])),
        ],
    );
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "amount_usd", "part-extra.parquet", "Utf8"],
    );
}

#[test]
fn an_unreadable_file() {
    let ws = case();
    let file = orders_file(&ws);
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        set_mode(&file, 0o000);
        expect_failure(&ws, &[], exit_code::BAD_INPUT, &["orders", "part-00000.parquet"]);
        return;
    }
    // Root reads anything: run the binary as nobody, on a copy nobody can run.
    let binary = ws.dir.path().join("nightly");
    std::fs::copy(env!("CARGO_BIN_EXE_nightly"), &binary).unwrap();
    open_to_everyone(ws.dir.path());
    set_mode(&file, 0o000);
    let run = || {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        let inner = nightly_command(&ws, &binary, &[]);
        command.arg(inner.get_program()).args(inner.get_args());
        command.env("RUST_LOG", "warn").output().unwrap()
    };
    expect_failure_of(&ws, run, exit_code::BAD_INPUT, &["orders", "part-00000.parquet"]);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn open_to_everyone(dir: &Path) {
    set_mode(dir, 0o777);
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            open_to_everyone(&path);
        } else {
            set_mode(&path, 0o777);
        }
    }
}

#[test]
fn an_input_root_that_does_not_exist() {
    let ws = case();
    let before = ws.snapshot();
    let result = Command::new(env!("CARGO_BIN_EXE_nightly"))
        .args(["--input", "/nonexistent/growth-input", "--output"])
        .arg(ws.output())
        .args(["--date", RUN_DATE])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(exit_code::BAD_INPUT));
    assert!(String::from_utf8_lossy(&result.stderr).contains("/nonexistent/growth-input"));
    assert!(ws.snapshot() == before);
}

// ---- Rows ----

#[test]
fn null_customer_ids_are_rejected() {
    let ws = case();
    let ids: ArrayRef = std::sync::Arc::new(StringArray::from(vec![Some("C000000000"), None, None]));
    write_parquet(
        &ws.input().join("orders/part-extra.parquet"),
        vec![
            ("order_id", strings(&["n1", "n2", "n3"])),
            ("customer_id", ids),
            ("order_ts", timestamps(&["2025-03-01T10:00:00"; 3])),
            ("amount_usd", floats(&[1.0, 2.0, 3.0])),
        ],
    );
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "2 rows", "null_id", "customer_id"],
    );
}

#[test]
fn empty_customer_ids_are_rejected() {
    let ws = case();
    extra_orders(&ws, 4, |i| {
        (
            format!("e{i}"),
            " ".into(),
            "2025-03-01T10:00:00".into(),
            5.0,
            "completed".into(),
        )
    });
    expect_failure(&ws, &[], exit_code::BAD_INPUT, &["orders", "4 rows", "null_id"]);
}

#[test]
fn unknown_status_values_are_rejected() {
    let ws = case();
    extra_orders(&ws, 3, |i| {
        let (o, c, t, a, _) = good_order(i);
        (o, c, t, a, "returned".into())
    });
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "3 rows", "unknown_status", "status"],
    );
}

/// 200 good orders, each changed by `spoil`: a night that must fail naming `needles`.
fn many_spoiled_orders(spoil: impl Fn(usize, Order) -> Order, needles: &[&str]) {
    many_spoiled_orders_with(&[], spoil, needles);
}

/// As [`many_spoiled_orders`], with extra nightly flags.
fn many_spoiled_orders_with(args: &[&str], spoil: impl Fn(usize, Order) -> Order, needles: &[&str]) {
    let ws = case();
    extra_orders(&ws, MANY, |i| spoil(i, good_order(i)));
    expect_failure(&ws, args, exit_code::BAD_INPUT, needles);
}

#[test]
fn many_duplicate_order_ids_fail_the_run() {
    many_spoiled_orders(
        |i, o| (format!("dup-{}", i / 2), o.1, o.2, o.3, o.4),
        &[
            "orders",
            "duplicate_key on order_id: 100 rows",
            "quality.max_reject_share",
        ],
    );
}

#[test]
fn many_negative_amounts_fail_the_run() {
    many_spoiled_orders(
        |_, o| (o.0, o.1, o.2, -5.0, o.4),
        &["orders", "bad_amount", "amount_usd", "200 rows"],
    );
}

#[test]
fn many_nan_amounts_fail_the_run() {
    many_spoiled_orders(
        |_, o| (o.0, o.1, o.2, f64::NAN, o.4),
        &["orders", "bad_amount", "200 rows"],
    );
}

#[test]
fn many_timestamps_in_1970_fail_the_run() {
    // No lower bound by default: the epoch is before the customer's signup.
    many_spoiled_orders(
        |_, o| (o.0, o.1, "1970-01-01T00:00:00".into(), o.3, o.4),
        &["orders", "before_signup", "200 rows"],
    );
}

#[test]
fn many_timestamps_before_a_set_lower_bound_fail_the_run_naming_the_flag() {
    many_spoiled_orders_with(
        &["--set", "quality.earliest=2000-01-01"],
        |_, o| (o.0, o.1, "1970-01-01T00:00:00".into(), o.3, o.4),
        &[
            "orders",
            "out_of_range_time on order_ts: 200 rows",
            "orders.order_ts runs from 1970-01-01T00:00:00",
            "--set quality.earliest=1970-01-01 admits them",
        ],
    );
}

#[test]
fn many_orders_after_tomorrow_fail_the_run() {
    // Three days from now has not happened yet, whatever the run date.
    let later = (chrono::Utc::now() + chrono::Days::new(3)).date_naive();
    many_spoiled_orders(
        |_, o| (o.0, o.1, format!("{later}T08:00:00"), o.3, o.4),
        &[
            "orders",
            "out_of_range_time on order_ts: 200 rows",
            &format!("to {later}T08:00:00"),
            &format!("--set quality.latest={}", later + chrono::Days::new(1)),
        ],
    );
}

#[test]
fn many_timestamps_in_2100_fail_the_run() {
    many_spoiled_orders(
        |_, o| (o.0, o.1, "2100-03-01T00:00:00".into(), o.3, o.4),
        &["orders", "out_of_range_time on order_ts: 200 rows"],
    );
}

/// The checks that look a row's parent up run as a join, and under a memory cap as a window
/// over both tables sorted by the key (which spills): each is run both ways.
const UNCAPPED_AND_CAPPED: [&[&str]; 2] = [&[], &["--memory-limit", "1GiB"]];

#[test]
fn many_orders_before_signup_fail_the_run() {
    for args in UNCAPPED_AND_CAPPED {
        many_spoiled_orders_with(
            args,
            |_, o| (o.0, o.1, "2024-01-15T00:00:00".into(), o.3, o.4),
            &["orders", "before_signup", "200 rows"],
        );
    }
}

#[test]
fn many_orders_of_unknown_customers_fail_the_run() {
    for args in UNCAPPED_AND_CAPPED {
        many_spoiled_orders_with(
            args,
            |i, o| (o.0, format!("ghost-{i}"), o.2, o.3, o.4),
            &["orders", "orphan_customer on customer_id: 200 rows"],
        );
    }
}

#[test]
fn many_shipments_of_unknown_orders_fail_the_run() {
    let ws = case();
    let ids: Vec<String> = (0..MANY).map(|i| format!("ghost-order-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    write_parquet(
        &ws.input().join("shipments/part-extra.parquet"),
        vec![
            ("order_id", strings(&ids)),
            ("shipped_ts", timestamps(&vec!["2025-03-02T10:00:00"; MANY])),
            ("delivered_ts", timestamps(&vec!["2025-03-05T10:00:00"; MANY])),
        ],
    );
    for args in UNCAPPED_AND_CAPPED {
        expect_failure(
            &ws,
            args,
            exit_code::BAD_INPUT,
            &["shipments", "orphan_order on order_id: 200 rows"],
        );
    }
}

#[test]
fn a_table_with_only_rows_after_the_run_date() {
    let ws = case();
    std::fs::remove_file(orders_file(&ws)).unwrap();
    extra_orders(&ws, 5, |i| {
        let (o, c, _, a, s) = good_order(i);
        (o, c, "2026-07-05T00:00:00".into(), a, s)
    });
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_INPUT,
        &["orders", "none of its 5 rows", RUN_DATE],
    );
}

// ---- Models ----

/// Adds model files to a copy of the project; the night must stop with exit 4 naming `needles`.
fn bad_models(files: &[(&str, &str)], args: &[&str], needles: &[&str]) {
    let ws = case();
    for (file, sql) in files {
        ws.model(file, sql);
    }
    expect_failure(&ws, args, exit_code::BAD_MODEL, needles);
}

#[test]
fn a_model_with_a_syntax_error() {
    let broken = [("marts/broken.sql", "select customer_id, from orders where")];
    bad_models(&broken, &[], &["broken", "marts/broken.sql", "syntax"]);
}

#[test]
fn a_model_reading_a_table_that_does_not_exist() {
    let lost = [("marts/lost.sql", "select * from order_lines")];
    bad_models(&lost, &[], &["marts/lost.sql", "order_lines"]);
}

#[test]
fn a_dependency_cycle() {
    let cycle = [
        ("marts/chicken.sql", "select * from egg"),
        ("marts/egg.sql", "select * from chicken"),
    ];
    bad_models(&cycle, &[], &["cycle", "chicken.sql", "egg.sql"]);
}

#[test]
fn a_model_dividing_by_zero_at_run_time() {
    let ratio = [(
        "marts/ratio.sql",
        "select customer_id, cast(purchases as bigint) / 0 as per_zero from stg_customers",
    )];
    bad_models(
        &ratio,
        &["--select", "ratio"],
        &["ratio", "marts/ratio.sql", "Divide by zero"],
    );
}

#[test]
fn a_model_with_a_bad_cast_at_run_time() {
    let casting = [(
        "marts/casting.sql",
        "select cast(customer_id as int) as customer_number from stg_customers",
    )];
    bad_models(
        &casting,
        &["--select", "casting"],
        &["casting", "marts/casting.sql", "C000000000"],
    );
}

#[test]
fn two_models_with_one_name() {
    let twin = [("staging/daily_sales.sql", "select 1 as x")];
    bad_models(
        &twin,
        &[],
        &["daily_sales", "marts/daily_sales.sql", "staging/daily_sales.sql"],
    );
}

#[test]
fn a_model_file_with_two_statements() {
    let two = [("marts/two.sql", "select 1 as x; select 2 as y")];
    bad_models(&two, &[], &["marts/two.sql", "exactly one select"]);
}

// ---- Configuration and command line ----

#[test]
fn a_misspelt_config_key() {
    let ws = case();
    expect_failure(
        &ws,
        &["--set", "quality.max_reject_shares=0.5"],
        exit_code::BAD_MODEL,
        &["max_reject_shares"],
    );
}

#[test]
fn an_unknown_rule_in_the_config() {
    let ws = case();
    expect_failure(
        &ws,
        &["--set", "quality.policy.no_such_rule=\"reject\""],
        exit_code::BAD_MODEL,
        &["no_such_rule", "the rules are"],
    );
}

#[test]
fn an_unknown_selected_model() {
    let ws = case();
    expect_failure(
        &ws,
        &["--select", "daily_sale"],
        exit_code::BAD_MODEL,
        &["daily_sale"],
    );
}

#[test]
fn an_impossible_date() {
    let ws = case();
    let before = ws.snapshot();
    let result = Command::new(env!("CARGO_BIN_EXE_nightly"))
        .arg("--input")
        .arg(ws.input())
        .arg("--output")
        .arg(ws.output())
        .args(["--date", "2026-02-30"])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(exit_code::USAGE));
    assert!(String::from_utf8_lossy(&result.stderr).contains("2026-02-30"));
    assert!(ws.snapshot() == before);
}

// ---- The machine ----

/// Mounts a tmpfs of `size` at `dir` (root only); false when this machine does not allow it.
fn mount_tmpfs(dir: &Path, options: &str) -> bool {
    if unsafe { libc::geteuid() } != 0 {
        return false;
    }
    std::fs::create_dir_all(dir).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", options, "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

fn unmount(dir: &Path) {
    let _ = Command::new("umount").arg(dir).status();
}

#[test]
fn an_output_folder_that_cannot_be_written() {
    let ws = case();
    let output = ws.dir.path().join("read-only");
    let mounted = mount_tmpfs(&output, "ro,size=1m");
    if !mounted {
        std::fs::create_dir_all(&output).unwrap();
        set_mode(&output, 0o555);
    }
    let result = Command::new(env!("CARGO_BIN_EXE_nightly"))
        .arg("--input")
        .arg(ws.input())
        .arg("--output")
        .arg(&output)
        .args(["--date", RUN_DATE, "--select", "daily_sales"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    if mounted {
        unmount(&output);
    }
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(exit_code::RESOURCES), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("cannot write to the output") && errors[0].contains("read-only"),
        "{}",
        errors[0]
    );
}

#[test]
fn a_full_disk_leaves_what_was_published() {
    let ws = case();
    let output = ws.dir.path().join("small-disk");
    if !mount_tmpfs(&output, "size=8m") {
        eprintln!("skipped: mounting a tmpfs needs root, which this machine does not give");
        return;
    }
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_nightly"))
            .arg("--input")
            .arg(ws.input())
            .arg("--output")
            .arg(&output)
            .arg("--models")
            .arg(ws.models())
            .args(["--date", RUN_DATE, "--select", SELECT])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let snapshot = |dir: &Path| {
        let mut files = Vec::new();
        for entry in walk(dir) {
            files.push((entry.clone(), std::fs::read(&entry).unwrap()));
        }
        files
    };
    let before = snapshot(&output);
    // Fill the disk, then run again.
    let filler = output.join("_filler");
    let free = 8 << 20;
    let _ = std::fs::write(&filler, vec![7u8; free]);
    let result = run();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    let _ = std::fs::remove_file(&filler);
    let after = snapshot(&output);
    unmount(&output);
    assert_eq!(result.status.code(), Some(exit_code::RESOURCES), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("disk is full"), "{}", errors[0]);
    assert!(after == before, "a published file changed on a full disk");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("_growth_drafts") {
                out.extend(walk(&path));
            }
        } else if !path.ends_with("_filler") {
            out.push(path);
        }
    }
    out.sort();
    out
}

// ---- Quarantine below the limit ----

#[tokio::test]
async fn a_few_bad_rows_are_quarantined_listed_and_counted() {
    let ws = case();
    // 10 duplicated orders and 5 negative amounts: about 0.2% of the orders.
    extra_orders(&ws, 25, |i| {
        let (_, c, t, a, s) = good_order(i);
        match i {
            0..10 => (format!("extra-dup-{i}"), c.clone(), t.clone(), a, s.clone()),
            10..20 => (format!("extra-dup-{}", i - 10), c, t, a, s),
            _ => (format!("extra-neg-{i}"), c, t, -1.0, s),
        }
    });
    let result = nightly(&ws, &[]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            ws.output()
                .join(format!("_manifests/run_date={RUN_DATE}/manifest.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let findings = &manifest["quality"]["findings"];
    let count = |rule: &str| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == rule)
            .map(|f| f["rows"].as_u64().unwrap())
    };
    assert_eq!(count("duplicate_key"), Some(10), "{findings}");
    assert_eq!(count("bad_amount"), Some(5), "{findings}");
    let rejects = ws.published("rejects", RUN_DATE);
    let listed = query_sql(
        &rejects,
        "select rule, count(*) as n from t group by rule order by rule",
    )
    .await;
    assert!(
        listed.contains("bad_amount") && listed.contains("duplicate_key"),
        "{listed}"
    );
    // The models saw one copy of each duplicated order and none of the negative ones: the
    // first copy is kept, so the day gains ten orders of $25.
    let sales = "select sum(orders) as orders from t where order_date = date '2025-03-01'";
    let now = query_sql(&ws.published("daily_sales", RUN_DATE), sales).await;
    let then = query_sql(&template().published("daily_sales", RUN_DATE), sales).await;
    assert_ne!(now, then);
    let number = |s: &str| {
        s.lines()
            .filter_map(|l| l.trim_matches(|c| c == '|' || c == ' ').parse::<i64>().ok())
            .next()
            .unwrap()
    };
    assert_eq!(number(&now) - number(&then), 10, "{then} -> {now}");

    // The same rows under a reject policy stop the run.
    let ws2 = case();
    copy_dir(&ws.input(), &ws2.input());
    expect_failure(
        &ws2,
        &["--set", "quality.policy.duplicate_key=\"reject\""],
        exit_code::BAD_INPUT,
        &["orders", "duplicate_key", "10 rows"],
    );
}

/// Orders with a null order_ts are counted under null_event_time (no view could show them,
/// so they used to vanish without a word): quarantined and counted by default, and under a
/// reject policy the run stops naming the rule, the column and the rows, publishing nothing.
#[test]
fn null_event_times_are_counted_and_can_be_rejected() {
    let ws = case();
    let times: ArrayRef = std::sync::Arc::new(
        datafusion::arrow::array::TimestampMicrosecondArray::from(vec![
            Some(micros("2025-03-01T10:00:00")),
            None,
            None,
            None,
        ])
        .with_timezone("UTC"),
    );
    write_parquet(
        &ws.input().join("orders/part-extra.parquet"),
        vec![
            ("order_id", strings(&["t1", "t2", "t3", "t4"])),
            ("customer_id", strings(&["C000000000"; 4])),
            ("order_ts", times),
            ("amount_usd", floats(&[1.0, 2.0, 3.0, 4.0])),
        ],
    );
    let result = nightly(&ws, &[]);
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let findings = ws.manifest(RUN_DATE)["quality"]["findings"].clone();
    let nulls = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "null_event_time")
        .unwrap_or_else(|| panic!("no null_event_time finding: {findings}"));
    assert_eq!(nulls["table"], "orders");
    assert_eq!(nulls["rows"], 3, "{findings}");
    assert_eq!(nulls["policy"], "quarantine", "{findings}");

    let ws2 = case();
    copy_dir(&ws.input(), &ws2.input());
    expect_failure(
        &ws2,
        &["--set", "quality.policy.null_event_time=\"reject\""],
        exit_code::BAD_INPUT,
        &["orders", "null_event_time", "order_ts", "3 rows"],
    );
}

// ---- Data tests ----

/// A failing data test keeps its model and everything downstream from publishing; the others
/// publish, the manifest names the test and its failing rows, and the exit code is 5.
#[test]
fn a_failed_data_test_blocks_its_model_and_what_reads_it() {
    let ws = case();
    ws.fail_daily_sales_outside_my();
    ws.model(
        "marts/sales_by_market.sql",
        "select market, sum(orders) as orders from daily_sales group by market order by market",
    );
    let select = ["--select", "daily_sales,sales_by_market,rfm_segments,markets"];
    let old_sales = std::fs::read(ws.published("daily_sales", RUN_DATE)).unwrap();
    let result = nightly(&ws, &select);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(exit_code::DATA_TEST), "{stderr}");
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert!(
        error.contains("daily_sales: relationships(market -> markets.code)") && error.contains("rows)"),
        "{error}"
    );
    // daily_sales kept its old partition; what reads it was not built; rfm_segments published.
    assert_eq!(
        std::fs::read(ws.published("daily_sales", RUN_DATE)).unwrap(),
        old_sales
    );
    assert!(!ws.published("sales_by_market", RUN_DATE).exists());
    assert!(ws.published("rfm_segments", RUN_DATE).exists());
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            ws.output()
                .join(format!("_manifests/run_date={RUN_DATE}/manifest.json")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["status"], "failed");
    let model = |name: &str| {
        manifest["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["model"] == name)
            .unwrap()
            .clone()
    };
    let sales = model("daily_sales");
    let failing: Vec<&serde_json::Value> = sales["tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["failing_rows"].as_u64() > Some(0))
        .collect();
    assert_eq!(failing.len(), 1, "{sales}");
    assert_eq!(failing[0]["test"], "relationships(market -> markets.code)");
    // Every market but MY fails it: more than one row, fewer than all.
    let rows = failing[0]["failing_rows"].as_u64().unwrap();
    let total = sales["output"]["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < total, "{rows} of {total}");
    assert!(
        model("sales_by_market")["skipped"]
            .as_str()
            .unwrap()
            .contains("daily_sales")
    );
    assert!(model("rfm_segments")["tests"].as_array().unwrap().len() >= 10);
}

#[test]
fn a_data_test_naming_an_unknown_column() {
    let ws = case();
    std::fs::write(
        ws.models().join("marts/daily_sales.tests.toml"),
        "not_null = [\"order_day\"]\n",
    )
    .unwrap();
    expect_failure(
        &ws,
        &[],
        exit_code::BAD_MODEL,
        &["daily_sales.tests.toml", "order_day"],
    );
}

/// An output root inside the input root, or the input inside the output, is refused before
/// anything is read or written: exit 2, one line naming both roots.
#[test]
fn overlapping_input_and_output_roots_are_refused() {
    let ws = case();
    let run = |binary: &str, input: &Path, output: &Path| {
        Command::new(binary)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output)
            .args(["--date", RUN_DATE])
            .env("RUST_LOG", "warn")
            .env_remove("GROWTH_SET")
            .output()
            .unwrap()
    };
    let inside = ws.input().join("out");
    let nested = run(env!("CARGO_BIN_EXE_nightly"), &ws.input(), &inside);
    let reversed = run(
        env!("CARGO_BIN_EXE_transform"),
        &ws.output().join("in"),
        &ws.output(),
    );
    for result in [&nested, &reversed] {
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(exit_code::USAGE), "{stderr}");
        assert!(stderr.contains("overlap"), "{stderr}");
    }
    assert!(!inside.exists(), "the output folder was created inside the input");
}
