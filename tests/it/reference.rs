//! The reference pages name every flag of every binary and every config key, and nothing that
//! is not one: they are read here against the binaries' `--help` and the config's defaults.

use std::collections::BTreeSet;
use std::process::Command;

use growth_jobs::error::exit_code;

fn page(name: &str) -> String {
    std::fs::read_to_string(format!("{}/docs/reference/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The text under a `## ` heading, up to the next one.
fn section<'a>(page: &'a str, heading: &str) -> &'a str {
    let start = page
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section ## {heading}"));
    let rest = &page[start + 1..];
    &rest[..rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3)]
}

/// Every `--flag` a text names in backticks (`` `--from D1 --to D2` `` names both).
fn flags_named(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|code| code.split_whitespace())
        .filter(|word| word.starts_with("--"))
        .map(String::from)
        .collect()
}

/// The flags and environment variables `--help` lists.
fn help(binary: &str) -> (String, BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(binary).arg("--help").output().unwrap();
    assert!(out.status.success(), "{binary} --help");
    let text = String::from_utf8(out.stdout).unwrap();
    let flags = text
        .lines()
        .filter(|line| {
            let indent = line.len() - line.trim_start().len();
            indent <= 6 && line.trim_start().starts_with('-')
        })
        .flat_map(|line| {
            line.split_whitespace()
                .take_while(|w| w.starts_with('-') || w.starts_with('<'))
                .map(|w| w.trim_end_matches(',').to_string())
                .filter(|w| w.starts_with("--") && w != "--help" && w != "--version")
                .collect::<Vec<_>>()
        })
        .collect();
    let env = text
        .split("[env: ")
        .skip(1)
        .map(|rest| rest[..rest.find('=').unwrap()].to_string())
        .collect();
    (text, flags, env)
}

const SHARED: &str = "Flags every binary shares";

/// The binaries, by name and path; the cluster's only when built with them.
fn binaries() -> Vec<(&'static str, &'static str)> {
    #[allow(unused_mut)]
    let mut binaries = vec![
        ("nightly", env!("CARGO_BIN_EXE_nightly")),
        ("transform", env!("CARGO_BIN_EXE_transform")),
        ("segment", env!("CARGO_BIN_EXE_segment")),
        ("churn", env!("CARGO_BIN_EXE_churn")),
        ("score", env!("CARGO_BIN_EXE_score")),
        ("clv", env!("CARGO_BIN_EXE_clv")),
        ("report", env!("CARGO_BIN_EXE_report")),
        ("generate", env!("CARGO_BIN_EXE_generate")),
        ("bench", env!("CARGO_BIN_EXE_bench")),
        ("dictionary", env!("CARGO_BIN_EXE_dictionary")),
        ("unlock", env!("CARGO_BIN_EXE_unlock")),
    ];
    #[cfg(feature = "ballista")]
    binaries.extend([
        ("growth-scheduler", env!("CARGO_BIN_EXE_growth-scheduler")),
        ("growth-executor", env!("CARGO_BIN_EXE_growth-executor")),
    ]);
    binaries
}

#[test]
fn every_flag_of_every_binary_is_in_the_reference() {
    let page = page("binaries.md");
    let shared = flags_named(section(&page, SHARED));
    let mut missing = Vec::new();
    for (name, path) in binaries() {
        let own_section = section(&page, &format!("`{name}`"));
        let own = flags_named(own_section);
        let (text, flags, env) = help(path);
        assert!(!flags.is_empty(), "{name} --help lists no flags:\n{text}");
        for flag in &flags {
            if !own.contains(flag) && !shared.contains(flag) {
                missing.push(format!("{name} {flag}"));
            }
        }
        for flag in own.difference(&flags) {
            missing.push(format!(
                "{name}'s section names {flag}, which {name} does not take"
            ));
        }
        for var in &env {
            if !page.contains(&format!("`{var}`")) && !page.contains(&format!("`{var}=")) {
                missing.push(format!("{name}'s environment variable {var}"));
            }
        }
        let writes = !matches!(name, "generate" | "bench" | "dictionary") && !name.starts_with("growth-");
        if writes {
            assert!(
                text.contains(growth_jobs::cli::EXIT_CODES),
                "{name} --help ends with the exit codes:\n{text}"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "docs/reference/binaries.md lacks:\n{}",
        missing.join("\n")
    );
}

/// Config sections whose keys the user names (markets, KPIs, rules): documented as `[section]`.
const MAPS: &[&str] = &[
    "kpi_thresholds",
    "model_thresholds",
    "margin_rate",
    "region",
    "time_zone",
    "quality.policy",
];

fn config_keys(value: &serde_json::Value, prefix: &str, keys: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(fields) if !MAPS.contains(&prefix) => {
            for (key, value) in fields {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                config_keys(value, &path, keys);
            }
        }
        _ if MAPS.contains(&prefix) => {
            keys.insert(format!("[{prefix}]"));
        }
        _ => {
            keys.insert(prefix.to_string());
        }
    }
}

#[test]
fn every_config_key_is_in_the_reference() {
    let defaults = serde_json::to_value(growth_jobs::config::Config::default()).unwrap();
    let mut keys = BTreeSet::new();
    config_keys(&defaults, "", &mut keys);
    // The user-named maps are there even when empty by default.
    keys.extend(MAPS.iter().map(|m| format!("[{m}]")));
    assert!(
        keys.contains("churn.horizon_days") && keys.contains("run.engine"),
        "{keys:?}"
    );

    let page = page("config.md");
    let documented: BTreeSet<String> = page
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').nth(1).unwrap().trim().trim_matches('`').to_string())
        .collect();
    let missing: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(missing.is_empty(), "docs/reference/config.md lacks {missing:?}");
    assert!(
        unknown.is_empty(),
        "docs/reference/config.md names keys the config has not: {unknown:?}"
    );
}

/// The numbers of the first list (`[1, 7]` or `{1, 7}`) after `marker` in `text`.
fn codes_after(text: &str, marker: &str) -> BTreeSet<i32> {
    let start = text.find(marker).unwrap_or_else(|| panic!("no {marker:?}")) + marker.len();
    let rest = &text[start..];
    let open = rest
        .match_indices(['[', '{'])
        .map(|(i, _)| i)
        .find(|i| rest[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
        .unwrap();
    let close = rest[open..].find([']', '}']).unwrap() + open;
    rest[open + 1..close]
        .split(',')
        .map(|n| n.trim().parse().unwrap_or_else(|_| panic!("{marker:?}: {n:?}")))
        .collect()
}

/// The codes in the first column of the first table in `text` whose header starts `| code`.
fn table_codes(text: &str) -> BTreeSet<i32> {
    text.lines()
        .skip_while(|l| !l.starts_with("| code"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap().trim().parse().unwrap())
        .collect()
}

/// The scheduling recipes (the table, the Airflow task, the Kubernetes CronJob) give every
/// exit code of the reference a fate, each exactly one, and the Airflow task is valid Python.
#[test]
fn the_scheduling_recipes_map_every_exit_code() {
    let binaries = page("binaries.md");
    let codes = table_codes(&binaries[binaries.find("## Exit codes").unwrap()..]);
    assert!(codes.contains(&exit_code::STALE_INPUT) && codes.contains(&exit_code::STOPPED));
    let failing: BTreeSet<i32> = codes.iter().copied().filter(|c| *c != 0).collect();
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/guide/scheduling.md")).unwrap();
    assert_eq!(table_codes(&guide), codes, "the scheduling guide's table");
    let recipes = [
        (
            "Airflow",
            codes_after(&guide, "RETRY = "),
            codes_after(&guide, "ALERT = "),
        ),
        (
            "Kubernetes",
            codes_after(&guide, "action: Count"),
            codes_after(&guide, "action: FailJob"),
        ),
    ];
    for (recipe, retry, alert) in recipes {
        assert!(
            retry.is_disjoint(&alert),
            "{recipe}: {retry:?} and {alert:?} overlap"
        );
        assert_eq!(
            retry.union(&alert).copied().collect::<BTreeSet<_>>(),
            failing,
            "{recipe} maps every failing code"
        );
    }
    let start = guide.find("```python").unwrap() + "```python".len();
    let dag = &guide[start..start + guide[start..].find("```").unwrap()];
    let mut python = Command::new("python3")
        .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    python.stdin.take().unwrap().write_all(dag.as_bytes()).unwrap();
    assert!(python.wait().unwrap().success(), "the Airflow task parses");
}
