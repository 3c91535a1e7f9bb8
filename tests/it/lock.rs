//! The run lock as containers meet it: runs posing as different hosts, leases that expire and
//! are taken over, `unlock`, and SIGTERM stopping a run at a safe point.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use growth_jobs::error::exit_code;

use crate::support::*;

const RUN_DATE: &str = "2026-06-30";

/// A lease short enough that a test sees several renewals.
const LEASE: &str = "2s";

fn workspace() -> Workspace {
    let ws = Workspace::new();
    generate_into(&ws.input(), 2_000, 5);
    ws
}

/// `nightly` on the workspace for the run date, naming itself `host` in the lock.
fn nightly(ws: &Workspace, host: &str, args: &[&str]) -> Command {
    let mut command = ws.command(env!("CARGO_BIN_EXE_nightly"));
    command
        .args(["--date", RUN_DATE])
        .args(args)
        .env("GROWTH_LOCK_HOST", host)
        .env("GROWTH_LOCK_LEASE", LEASE);
    command
}

fn unlock(ws: &Workspace, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unlock"))
        .arg("--output")
        .arg(ws.output())
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn lock_file(ws: &Workspace) -> Option<serde_json::Value> {
    let bytes = std::fs::read(ws.output().join("_lock.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Waits until `ready` holds, failing after a minute or when `child` ends first.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before {what}");
        assert!(Instant::now() < deadline, "no {what} within two minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn error_lines(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| l.starts_with("error: "))
        .map(String::from)
        .collect()
}

/// A run holding the lock renews its lease while it works: runs from other hosts, started
/// over several lease lengths, are each refused naming the holder; once it ends, the next
/// run takes the lock.
#[test]
fn two_runs_posing_as_different_hosts_never_both_hold_the_lock() {
    let ws = workspace();
    let mut holder = nightly(&ws, "host-a", &[]).stderr(Stdio::null()).spawn().unwrap();
    wait_for(&mut holder, "the lock", || lock_file(&ws).is_some());
    let first = lock_file(&ws).unwrap();
    assert_eq!(first["host"], "host-a");
    let started = Instant::now();
    let mut refused = 0;
    // Four lease lengths: the lease must have been renewed for the refusals to go on.
    while started.elapsed() < Duration::from_secs(8) && holder.try_wait().unwrap().is_none() {
        let other = nightly(&ws, "host-b", &["--select", "daily_sales"])
            .output()
            .unwrap();
        if holder.try_wait().unwrap().is_some() {
            break;
        }
        assert_eq!(other.status.code(), Some(exit_code::LOCKED), "{}", stderr(&other));
        let errors = error_lines(&other);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("on host-a") && errors[0].contains("lease until"),
            "{}",
            errors[0]
        );
        refused += 1;
    }
    let now = lock_file(&ws).expect("the holder still holds the lock");
    assert_eq!(now["token"], first["token"], "nobody took the lock over");
    assert_ne!(now["expires_at"], first["expires_at"], "the lease was renewed");
    assert!(refused >= 2, "only {refused} runs tried while the holder ran");
    assert!(holder.wait().unwrap().success());
    assert!(lock_file(&ws).is_none(), "the holder released the lock");
    let after = nightly(&ws, "host-b", &["--select", "daily_sales"])
        .output()
        .unwrap();
    assert!(after.status.success(), "{}", stderr(&after));
}

/// A lease from another host that expired is taken over; one that has not is refused with a
/// message pointing at `unlock`, which removes it only with --force.
#[test]
fn an_expired_lease_is_taken_over_from_any_host_and_unlock_removes_a_live_one_only_when_forced() {
    let ws = workspace();
    std::fs::create_dir_all(ws.output()).unwrap();
    let lease = |expires_in: i64| {
        let now = chrono::Utc::now();
        serde_json::json!({
            "command": "nightly", "host": "a-pod-long-gone", "pid": 1, "token": "theirs",
            "started_at": now - chrono::Duration::hours(1),
            "expires_at": now + chrono::Duration::seconds(expires_in),
        })
        .to_string()
    };
    let path = ws.output().join("_lock.json");

    std::fs::write(&path, lease(-5)).unwrap();
    let taken = nightly(&ws, "host-b", &["--select", "daily_sales"])
        .output()
        .unwrap();
    assert!(taken.status.success(), "{}", stderr(&taken));
    assert!(stderr(&taken).contains("its lease expired"), "{}", stderr(&taken));
    assert!(!path.exists(), "the taker released the lock");

    std::fs::write(&path, lease(600)).unwrap();
    let refused = nightly(&ws, "host-b", &["--select", "daily_sales"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(exit_code::LOCKED));
    let errors = error_lines(&refused);
    assert!(
        errors[0].contains("a-pod-long-gone") && errors[0].contains("unlock --output"),
        "{}",
        errors[0]
    );
    let kept = unlock(&ws, &[]);
    assert_eq!(kept.status.code(), Some(exit_code::LOCKED), "{}", stderr(&kept));
    assert!(path.exists());
    let forced = unlock(&ws, &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(String::from_utf8_lossy(&forced.stdout).contains("a-pod-long-gone"));
    assert!(!path.exists());
    let nothing = unlock(&ws, &[]);
    assert!(nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stdout).contains("not locked"));
}

/// SIGTERM while the SQL models run, and again during the model stages: each run stops with
/// exit 8, releases the lock, leaves no draft and publishes no half date; `--resume` then
/// completes the night.
#[test]
fn sigterm_stops_at_a_safe_point_and_releases_the_lock() {
    let ws = workspace();
    let manifest = ws
        .output()
        .join(format!("_manifests/run_date={RUN_DATE}/manifest.json"));
    // Starts a night, waits until `ready`, sends SIGTERM: the run stops with exit 8 and one
    // error line saying so, and releases the lock.
    let stop_when = |what: &str, ready: &dyn Fn() -> bool| {
        let mut run = nightly(&ws, "host-a", &[])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&mut run, what, ready);
        // SAFETY: signals a child process this test spawned and has not reaped.
        assert_eq!(unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) }, 0);
        let stopped = run.wait_with_output().unwrap();
        assert_eq!(
            stopped.status.code(),
            Some(exit_code::STOPPED),
            "{}",
            stderr(&stopped)
        );
        assert!(
            error_lines(&stopped)[0].contains("stopped by SIGTERM"),
            "{}",
            stderr(&stopped)
        );
        assert!(lock_file(&ws).is_none(), "the lock was released");
    };

    // During the SQL stage: nothing is published.
    stop_when("the lock", &|| {
        lock_file(&ws).is_some() && {
            std::thread::sleep(Duration::from_millis(500));
            true
        }
    });
    assert!(!manifest.exists() && !ws.published("daily_sales", RUN_DATE).exists());
    assert!(!ws.output().join("_latest.json").exists());

    // During the model stages: the manifest says failed, and why; no pointer names the date.
    stop_when("the SQL stage's manifest", &|| manifest.exists());
    let written = ws.manifest(RUN_DATE);
    assert_eq!(written["status"], "failed");
    assert!(
        written["error"].as_str().unwrap().contains("SIGTERM"),
        "{written}"
    );
    assert!(!ws.output().join("_latest.json").exists());
    let drafts = ws.output().join("_growth_drafts");
    assert!(!drafts.exists() || std::fs::read_dir(&drafts).unwrap().next().is_none());

    let resumed = nightly(&ws, "host-a", &["--resume"]).output().unwrap();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(ws.manifest(RUN_DATE)["status"], "succeeded");
}
