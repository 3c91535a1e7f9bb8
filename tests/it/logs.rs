//! Logs for the people who run the night: `GROWTH_LOG_FORMAT=json` makes every stderr line a
//! JSON object, the final error included, so a log shipper parses them all.

use std::process::Command;

#[test]
fn json_logs_end_with_one_parseable_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_segment"))
        .args(["--output", dir.path().to_str().unwrap(), "--date", "2026-06-30"])
        .env(growth_jobs::telemetry::LOG_FORMAT, "json")
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&result.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{stderr}");
    assert_eq!(last["exit_code"], 3, "{stderr}");
    assert!(
        last["message"].as_str().unwrap().contains("customer_features"),
        "{stderr}"
    );
}
