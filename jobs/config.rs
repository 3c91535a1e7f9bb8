//! The analytics settings the SQL models read: KPI thresholds for the red/yellow/green
//! statuses, the channel ROI threshold for budget recommendations, and the churn lapse.
//!
//! Defaults live here; `sql/growth.toml` (or the file `--config` names) overrides any of them.
//! The models see them as two tables, registered with the inputs: `kpi_thresholds` (one row
//! per KPI) and `settings` (one row of named values), so no number is repeated across files.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The config file read when present, relative to the repository root.
pub(crate) const DEFAULT_CONFIG: &str = "sql/growth.toml";

/// Which side of a threshold is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Lower is better (CAC, churn): green at or below `green`, red above `red`.
    AtMost,
    /// Higher is better (retention, LTV/CAC): green at or above `green`, red below `red`.
    AtLeast,
}

/// The bands of one KPI. Between green and red is yellow.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub direction: Direction,
    pub green: f64,
    pub red: f64,
}

impl Threshold {
    /// `green`, `yellow` or `red` for a value: the rule of sql/intermediate/stg_kpi_statuses.sql,
    /// for the figures the model stages compute.
    pub fn status(&self, value: f64) -> &'static str {
        let (good, fair) = match self.direction {
            Direction::AtMost => (value <= self.green, value <= self.red),
            Direction::AtLeast => (value >= self.green, value >= self.red),
        };
        if good {
            "green"
        } else if fair {
            "yellow"
        } else {
            "red"
        }
    }
}

/// The `margin_rate` and `region` key that applies to markets not named.
pub(crate) const DEFAULT_MARKET_KEY: &str = "default";

/// The growth plan's regions and the markets in each: the default `[region]` map.
const PLAN_REGIONS: &[(&str, &[&str])] = &[
    (
        "South-East Asia",
        &["BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "VN"],
    ),
    (
        "Latin America",
        &[
            "AR", "BO", "BR", "CL", "CO", "CR", "EC", "GT", "MX", "PA", "PE", "PY", "UY",
        ],
    ),
    ("North America", &["CA", "US"]),
    (
        "Europe",
        &[
            "AT", "BE", "CH", "CZ", "DE", "DK", "ES", "FI", "FR", "GB", "GR", "HU", "IE", "IT", "NL", "NO",
            "PL", "PT", "RO", "SE",
        ],
    ),
    ("Japan/Korea", &["JP", "KR"]),
];

/// The region of markets no `[region]` key names.
const OTHER_REGION: &str = "Other";

/// Everything the models read from config.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// KPI name (the `kpi_monthly` column it applies to) to its bands.
    pub kpi_thresholds: BTreeMap<String, Threshold>,
    /// The models' own accuracy to its bands: `churn_accuracy` (the chosen churn model's
    /// validation accuracy; plan: 85%) and `forecast_accuracy` (1 - the backtest's revenue MAPE
    /// over every market; plan 6.4: 82%).
    pub model_thresholds: BTreeMap<String, Threshold>,
    /// Channels whose ROI is at or above this are preferred: they receive the budget cut from
    /// others (plan 2.4.1 and 8.3: ROI above 4).
    pub preferred_roi: f64,
    /// The share of its budget a channel loses when its CAC is above the cac_usd green bound
    /// (plan 4.3 and 8.2: cut the channel whose CAC passes $5).
    pub cac_cut_share: f64,
    /// The share it loses when its CAC is above the red bound, or it spent and acquired no one
    /// (plan 6.1: above $10, the cost-control plan).
    pub cac_red_cut_share: f64,
    /// The share of each market-month's marketing budget held back as a reserve (plan 7.3: 30%).
    pub budget_reserve_share: f64,
    /// The months a customer must buy on two different days within to count as a repurchaser
    /// (repurchase_rate; plan 3.4).
    pub repurchase_window_months: i32,
    /// Gross margin as a share of revenue, per market (`default` for the others): LTV is value
    /// to the business, revenue times this.
    pub margin_rate: BTreeMap<String, f64>,
    /// Market to region, for the scorecards' region roll-ups (`default` for markets not
    /// named). Defaults to the plan's five regions.
    pub region: BTreeMap<String, String>,
    /// Market to IANA time zone (`default` for markets not named, UTC by default): each
    /// market's days and months, and the run date's end, are in its own time.
    pub time_zone: BTreeMap<String, String>,
    /// Traffic and acquisition channels no one pays for: their sessions are organic traffic,
    /// their new customers (with referred ones) self-grown.
    pub organic_channels: Vec<String>,
    /// A customer with no purchase for this many months has churned.
    pub churn_lapse_months: i32,
    /// The clustering job's parameters.
    pub segment: SegmentConfig,
    /// The churn job's parameters.
    pub churn: ChurnConfig,
    /// The lifetime-value job's parameters.
    pub clv: ClvConfig,
    /// Where the night reads and writes, and the memory it may use.
    pub run: RunConfig,
    /// The row rules' policies and limits (docs/reference/input-contract.md: Row rules and rejects).
    pub quality: QualityConfig,
}

/// What happens to the rows that break a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Stop the run before anything is written.
    Reject,
    /// Set the rows aside into `rejects`, and run on the others.
    Quarantine,
}

/// How the row rules treat bad rows ([`crate::input::quality`]).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// A table whose quarantined rows are more than this share of its rows fails the run.
    pub max_reject_share: f64,
    /// Event times before this day are out of range; none by default, since real histories
    /// go back decades. Set it to catch a default epoch or a typo'd century.
    pub earliest: Option<chrono::NaiveDate>,
    /// Event times on or after this day are out of range. By default the day after tomorrow
    /// (UTC) by the clock: an event more than a day after the latest night that could run
    /// has not happened yet. The manifest records the bound a run used (`quality.latest`).
    pub latest: Option<chrono::NaiveDate>,
    /// Rule name to `reject` or `quarantine`; rules left out keep their default.
    pub policy: BTreeMap<String, Policy>,
    /// The oldest the input's newest order may be (`36h`, `2d`) against the end of the last
    /// date a night runs, or the clock when that is earlier: an older input is stale (a
    /// stalled export) and the night stops with exit 9 before it publishes. None by default,
    /// since histories are also run long after their last order.
    pub max_input_age: Option<String>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            max_reject_share: 0.01,
            earliest: None,
            latest: None,
            policy: BTreeMap::new(),
            max_input_age: None,
        }
    }
}

impl QualityConfig {
    /// The first day out of range: `latest`, or the day after tomorrow by the clock.
    /// [`QualityConfig::max_input_age`] as a duration.
    pub(crate) fn max_input_age(&self) -> std::result::Result<Option<std::time::Duration>, String> {
        self.max_input_age
            .as_deref()
            .map(|text| parse_duration(text).map_err(|e| format!("quality.max_input_age: {e}")))
            .transpose()
    }

    pub(crate) fn latest_bound(&self) -> chrono::NaiveDate {
        self.latest
            .unwrap_or_else(|| chrono::Utc::now().date_naive() + chrono::Days::new(2))
    }
}

/// Paths and resources of a run. Flags and environment variables override each
/// (`--input`/`GROWTH_INPUT`, `--output`/`GROWTH_OUTPUT`, `--memory-limit`/`GROWTH_MEMORY_LIMIT`,
/// `--engine`/`GROWTH_ENGINE`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Input root: a folder or `s3://bucket/prefix`; absent means the embedded sample.
    pub input: Option<String>,
    /// Output root: a folder or `s3://bucket/prefix`; absent means `data/output`.
    pub output: Option<String>,
    /// Memory for DataFusion's sorts, aggregations and joins, such as `3GiB`; beyond it they
    /// spill to the temp folder. Absent means no cap.
    pub memory_limit: Option<String>,
    /// Where the SQL models run: `local` (absent) or `ballista://HOST:PORT`, a Ballista
    /// scheduler (docs/design/ballista.md: Running on a Ballista cluster).
    pub engine: Option<String>,
}

impl RunConfig {
    /// The engine the SQL models run on.
    pub fn engine(&self) -> std::result::Result<Engine, String> {
        self.engine.as_deref().map_or(Ok(Default::default()), str::parse)
    }

    /// The memory cap in bytes, when one is set.
    pub(crate) fn memory_limit_bytes(&self) -> std::result::Result<Option<usize>, String> {
        self.memory_limit.as_deref().map(parse_size).transpose()
    }
}

/// The scheme of a Ballista scheduler address.
pub(crate) const BALLISTA_SCHEME: &str = "ballista://";

/// The engine the SQL models run on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// A Ballista cluster, by its scheduler's `host:port`.
    Ballista { scheduler: String },
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        if text == "local" {
            return Ok(Engine::Local);
        }
        let Some(address) = text.strip_prefix(BALLISTA_SCHEME) else {
            return Err(format!(
                "unknown engine {text:?}: use local or {BALLISTA_SCHEME}HOST:PORT"
            ));
        };
        let address = address.trim_end_matches('/');
        match address.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(Engine::Ballista {
                scheduler: address.to_string(),
            }),
            _ => Err(format!(
                "engine {text:?}: expected {BALLISTA_SCHEME}HOST:PORT, such as {BALLISTA_SCHEME}localhost:50050"
            )),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::Local => f.write_str("local"),
            Engine::Ballista { scheduler } => write!(f, "{BALLISTA_SCHEME}{scheduler}"),
        }
    }
}

/// A size with an optional unit: `4GiB`, `512MiB`, `3GB`, `1500000`.
pub(crate) fn parse_size(text: &str) -> std::result::Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 4GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    Ok((number * scale) as usize)
}

/// A duration with a unit: `90s`, `15m`, `36h`, `2d` (a bare number is seconds).
pub(crate) fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use s, m, h or d")),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n * scale)),
        _ => Err(format!("{text:?} is not a positive duration such as 36h")),
    }
}

/// The clustering algorithm of the segment job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// k-means with k-means++ initialisation.
    KMeans,
    /// Gaussian mixture (full covariance), initialised by k-means.
    GaussianMixture,
}

/// How the segment job clusters customers (docs/methods/models.md: Learned segments).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentConfig {
    pub algorithm: Algorithm,
    /// A fixed number of clusters; absent means chosen by silhouette over `k_min..=k_max`.
    pub k: Option<usize>,
    pub k_min: usize,
    pub k_max: usize,
    /// The `customer_features` columns clustered on, standardized after `ln(1 + x)` of money
    /// and counts.
    pub features: Vec<String>,
    /// Customers the model is fitted on, drawn by a seeded hash of the customer id; every
    /// customer is then assigned to the nearest centre.
    pub sample_size: usize,
    /// Customers the silhouette (O(n^2)) is computed on, from the fitting sample.
    pub silhouette_sample: usize,
    /// k-means++ restarts per k; the fit with the lowest inertia is kept.
    pub n_runs: usize,
    pub max_iterations: u64,
    pub tolerance: f64,
    pub seed: u64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            algorithm: Algorithm::KMeans,
            k: None,
            k_min: 3,
            k_max: 10,
            features: [
                "recency_days",
                "frequency",
                "monetary_usd",
                "avg_order_value_usd",
                "discount_share",
                "purchases_180d",
                "sessions_90d",
            ]
            .map(String::from)
            .to_vec(),
            sample_size: 100_000,
            silhouette_sample: 2_000,
            n_runs: 3,
            max_iterations: 200,
            tolerance: 1e-4,
            seed: 42,
        }
    }
}

/// How the churn job labels, trains, and tiers customers (docs/methods/models.md: Churn prediction).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChurnConfig {
    /// A customer churns when they make no purchase in this many days after the cut-off.
    pub horizon_days: u32,
    /// Only customers with a purchase in this many days before the cut-off are labelled or scored.
    pub active_days: u32,
    /// Customers per window the models are trained and validated on, drawn by a seeded hash
    /// of the customer id.
    pub sample_size: usize,
    /// A window with fewer labelled customers than this, or with one class only, cannot train.
    pub min_customers: usize,
    /// Risk tiers: `high` at or above this churn probability.
    pub high_risk: f64,
    /// Risk tiers: `medium` at or above this, else `low`.
    pub medium_risk: f64,
    /// L2 penalty of the logistic regression.
    pub logistic_alpha: f64,
    /// Depth limit of every tree.
    pub tree_max_depth: usize,
    /// Trees in the bagged ensemble.
    pub forest_trees: usize,
    /// The models compared on the validation window; the best by ROC AUC is kept.
    pub candidates: Vec<ChurnCandidate>,
    pub seed: u64,
}

/// A kind of churn model the churn stage can train (`churn.candidates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChurnCandidate {
    LogisticRegression,
    DecisionTree,
    BaggedTrees,
}

impl ChurnCandidate {
    /// Every kind, in the order they are reported.
    pub(crate) const ALL: [ChurnCandidate; 3] = [
        ChurnCandidate::LogisticRegression,
        ChurnCandidate::DecisionTree,
        ChurnCandidate::BaggedTrees,
    ];

    /// The name in config, `model_metrics` and `churn_scores.model`.
    pub fn name(self) -> &'static str {
        match self {
            ChurnCandidate::LogisticRegression => "logistic_regression",
            ChurnCandidate::DecisionTree => "decision_tree",
            ChurnCandidate::BaggedTrees => "bagged_trees",
        }
    }
}

impl Default for ChurnConfig {
    fn default() -> Self {
        ChurnConfig {
            horizon_days: 90,
            active_days: 180,
            sample_size: 100_000,
            min_customers: 200,
            high_risk: 0.6,
            medium_risk: 0.3,
            logistic_alpha: 1.0,
            tree_max_depth: 8,
            forest_trees: 30,
            candidates: ChurnCandidate::ALL.to_vec(),
            seed: 42,
        }
    }
}

/// How the lifetime-value job fits BG/NBD and Gamma-Gamma and values customers (docs/methods/models.md:
/// Lifetime value).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClvConfig {
    /// The models' time unit: `weeks` (as the papers and the CDNOW figures) or `days`. It
    /// changes alpha's scale only; every published expectation is in days or months.
    pub time_unit: TimeUnit,
    /// A market with at least this many buying customers gets its own fit; the others share
    /// the fit on every customer.
    pub min_market_customers: usize,
    /// Fewer customers with a repeat purchase day than this and the stage cannot train (exit 3).
    pub min_repeat_customers: usize,
    /// Monthly discount rate of the 12-month CLV.
    pub monthly_discount_rate: f64,
    /// The holdout check fits on the history up to this many days before the run date and
    /// predicts the purchase days after it (`clv_summary` reads it from `settings`; the stage
    /// takes it from `clv_summary`).
    pub holdout_days: u32,
    /// Calendar months the growth forecast (`growth_forecast`) looks ahead, after the run
    /// date's month.
    pub forecast_months: u32,
    /// The backtest makes the same forecast from the end of the month this many whole months
    /// before the run date's last complete month, and measures it against what happened
    /// (`clv_summary` reads it from `settings`).
    pub backtest_months: u32,
    /// The acquisition trend and the cohort curves come from the last this many complete
    /// months before the forecast's origin.
    pub trend_months: u32,
    /// Each likelihood fit stops after this many passes over the data, or after
    /// `fit_max_seconds`, whichever comes first; a stopped fit is treated as one that failed
    /// (docs/methods/models.md: Lifetime value, when a fit fails).
    pub fit_max_evaluations: u64,
    pub fit_max_seconds: f64,
    /// Where Gamma-Gamma cannot be fitted, a customer's observed mean spend over x repeat days
    /// weighs x against this many days at the scope's mean.
    pub spend_prior_days: f64,
}

/// The time unit of the BG/NBD parameters (`clv.time_unit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Days,
    Weeks,
}

impl TimeUnit {
    /// Days in one unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
        }
    }
}

impl Default for ClvConfig {
    fn default() -> Self {
        ClvConfig {
            time_unit: TimeUnit::Weeks,
            min_market_customers: 2_000,
            min_repeat_customers: 100,
            monthly_discount_rate: 0.01,
            holdout_days: 90,
            forecast_months: 12,
            backtest_months: 6,
            trend_months: 12,
            // Far above what a fit needs (20-40 passes over the data, about three evaluations
            // each, on every input seen): they only stop fits that would not end.
            fit_max_evaluations: 5_000,
            fit_max_seconds: 300.0,
            spend_prior_days: 1.0,
        }
    }
}

fn band(direction: Direction, green: f64, red: f64) -> Threshold {
    Threshold {
        direction,
        green,
        red,
    }
}

impl Default for Config {
    /// The growth plan's targets; yellow bands are the documented defaults.
    fn default() -> Self {
        use Direction::*;
        let kpi_thresholds = [
            ("cac_usd", band(AtMost, 5.0, 10.0)),
            ("ltv_to_cac", band(AtLeast, 4.0, 3.0)),
            ("monthly_churn_rate", band(AtMost, 0.12, 0.18)),
            ("retention_6m", band(AtLeast, 0.65, 0.50)),
            ("repurchase_rate", band(AtLeast, 0.40, 0.30)),
            ("dau_mau", band(AtLeast, 0.30, 0.20)),
            ("invite_share_rate", band(AtLeast, 0.15, 0.10)),
            ("delivered_within_7d_share", band(AtLeast, 0.50, 0.40)),
            ("total_customers_yoy", band(AtLeast, 0.25, 0.15)),
            ("member_repurchase_rate", band(AtLeast, 0.45, 0.35)),
            ("self_growth_ratio", band(AtLeast, 0.10, 0.05)),
            ("organic_session_share", band(AtLeast, 0.25, 0.15)),
            ("cpc_usd", band(AtMost, 0.80, 1.20)),
            ("invite_conversion", band(AtLeast, 0.05, 0.05)),
            ("ltv_12m_growth", band(AtLeast, 0.35, 0.0)),
            ("high_value_share", band(AtLeast, 0.35, 0.25)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let model_thresholds = [
            ("churn_accuracy", band(AtLeast, 0.85, 0.80)),
            ("forecast_accuracy", band(AtLeast, 0.82, 0.75)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Config {
            kpi_thresholds,
            model_thresholds,
            preferred_roi: 4.0,
            cac_cut_share: 0.2,
            cac_red_cut_share: 0.5,
            budget_reserve_share: 0.3,
            repurchase_window_months: 12,
            margin_rate: [(DEFAULT_MARKET_KEY.to_string(), 0.3)].into_iter().collect(),
            region: PLAN_REGIONS
                .iter()
                .flat_map(|(region, markets)| markets.iter().map(|m| (m.to_string(), region.to_string())))
                .chain([(DEFAULT_MARKET_KEY.to_string(), OTHER_REGION.to_string())])
                .collect(),
            time_zone: [(DEFAULT_MARKET_KEY.to_string(), "UTC".to_string())]
                .into_iter()
                .collect(),
            organic_channels: ["organic", "direct", "app"].map(String::from).to_vec(),
            churn_lapse_months: 3,
            segment: SegmentConfig::default(),
            churn: ChurnConfig::default(),
            clv: ClvConfig::default(),
            run: RunConfig::default(),
            quality: QualityConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path` over the defaults; a missing file at the default path means defaults.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// Reads `path` over the defaults, then applies `overrides` (`section.key=value`, the
    /// value in TOML syntax, a bare word taken as text): what `--set` and `GROWTH_SET` give.
    pub(crate) fn load_with(path: Option<&Path>, overrides: &[String]) -> Result<Self> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        let bad = |reason: String| Error::BadConfig {
            file: path.display().to_string(),
            reason,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => String::new(),
            Err(source) => {
                return Err(Error::io(format!("reading the config {}", path.display()))(
                    source,
                ));
            }
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        for assignment in overrides {
            apply_override(&mut table, assignment).map_err(|reason| Error::BadConfig {
                file: format!("--set {assignment}"),
                reason,
            })?;
        }
        let overrides = Config::deserialize(table).map_err(|e| bad(e.to_string()))?;
        let mut config = Self::default();
        // A file naming some KPIs keeps the defaults of the others.
        config.kpi_thresholds.extend(overrides.kpi_thresholds);
        config.model_thresholds.extend(overrides.model_thresholds);
        config.preferred_roi = overrides.preferred_roi;
        config.cac_cut_share = overrides.cac_cut_share;
        config.cac_red_cut_share = overrides.cac_red_cut_share;
        config.budget_reserve_share = overrides.budget_reserve_share;
        config.repurchase_window_months = overrides.repurchase_window_months;
        // A file naming some markets' margins keeps the default of the others.
        config.margin_rate.extend(overrides.margin_rate);
        config.region.extend(overrides.region);
        config.time_zone.extend(overrides.time_zone);
        config.organic_channels = overrides.organic_channels;
        config.churn_lapse_months = overrides.churn_lapse_months;
        config.segment = overrides.segment;
        config.churn = overrides.churn;
        config.clv = overrides.clv;
        config.run = overrides.run;
        // A file naming some rules' policies keeps the defaults of the others.
        let policies = overrides.quality.policy.clone();
        config.quality = QualityConfig {
            policy: config.quality.policy.clone(),
            ..overrides.quality
        };
        config.quality.policy.extend(policies);
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::BadConfig {
            file: path.display().to_string(),
            reason,
        };
        for (kpi, t) in self.kpi_thresholds.iter().chain(&self.model_thresholds) {
            let ordered = match t.direction {
                Direction::AtMost => t.green <= t.red,
                Direction::AtLeast => t.green >= t.red,
            };
            if !ordered {
                return Err(bad(format!(
                    "{kpi}: green {} and red {} are the wrong way round",
                    t.green, t.red
                )));
            }
        }
        if self.churn_lapse_months < 1 {
            return Err(bad("churn_lapse_months must be at least 1".into()));
        }
        let shares = [
            ("cac_cut_share", self.cac_cut_share),
            ("cac_red_cut_share", self.cac_red_cut_share),
            ("budget_reserve_share", self.budget_reserve_share),
        ];
        if let Some((key, value)) = shares.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(bad(format!("{key} is {value}: it must be within 0..=1")));
        }
        if self.cac_red_cut_share < self.cac_cut_share {
            return Err(bad(
                "cac_red_cut_share must be at least cac_cut_share: a red CAC cuts no less than a yellow one"
                    .into(),
            ));
        }
        if self.repurchase_window_months < 1 {
            return Err(bad("repurchase_window_months must be at least 1".into()));
        }
        if let Some((market, rate)) = self.margin_rate.iter().find(|(_, r)| !(0.0..=1.0).contains(*r)) {
            return Err(bad(format!(
                "margin_rate.{market} is {rate}: a gross margin is a share of revenue, within 0..=1"
            )));
        }
        if let Some((market, region)) = self
            .region
            .iter()
            .find(|(_, r)| r.trim().is_empty() || r.as_str() == "(all)")
        {
            return Err(bad(format!(
                "region.{market} is {region:?}: name the market's region (\"(all)\" labels the roll-ups over every region)"
            )));
        }
        for (key, name) in &self.time_zone {
            parse_zone(key, name).map_err(bad)?;
        }
        let segment = &self.segment;
        if segment.k_min < 2 || segment.k_min > segment.k_max || segment.k.is_some_and(|k| k < 2) {
            return Err(bad(
                "segment: k, k_min and k_max must be at least 2, with k_min <= k_max".into(),
            ));
        }
        if segment.features.is_empty() {
            return Err(bad("segment.features must name at least one column".into()));
        }
        self.run
            .memory_limit_bytes()
            .map_err(|e| bad(format!("run.memory_limit: {e}")))?;
        self.run.engine().map_err(|e| bad(format!("run.engine: {e}")))?;
        let quality = &self.quality;
        if !(0.0..=1.0).contains(&quality.max_reject_share)
            || quality
                .earliest
                .is_some_and(|earliest| earliest >= quality.latest_bound())
        {
            return Err(bad(
                "quality: max_reject_share must be within 0..=1 and earliest before latest".into(),
            ));
        }
        quality.max_input_age().map_err(bad)?;
        let churn = &self.churn;
        if churn.horizon_days == 0 || churn.active_days == 0 {
            return Err(bad(
                "churn.horizon_days and churn.active_days must be at least 1".into()
            ));
        }
        if !(0.0 < churn.medium_risk && churn.medium_risk <= churn.high_risk && churn.high_risk < 1.0) {
            return Err(bad(
                "churn risk tiers need 0 < medium_risk <= high_risk < 1".into()
            ));
        }
        let kinds = &churn.candidates;
        let repeated = kinds
            .iter()
            .enumerate()
            .any(|(i, kind)| kinds[..i].contains(kind));
        if kinds.is_empty() || repeated {
            return Err(bad(format!(
                "churn.candidates must name each model once, from {}",
                ChurnCandidate::ALL.map(ChurnCandidate::name).join(", ")
            )));
        }
        let clv = &self.clv;
        if clv.holdout_days == 0
            || clv.min_repeat_customers < 10
            || !(0.0..1.0).contains(&clv.monthly_discount_rate)
            || !(1..=60).contains(&clv.forecast_months)
            || !(1..=clv.forecast_months).contains(&clv.backtest_months)
            || !(3..=120).contains(&clv.trend_months)
            || clv.fit_max_evaluations < 10
            || !clv.fit_max_seconds.is_finite()
            || clv.fit_max_seconds <= 0.0
            || !clv.spend_prior_days.is_finite()
            || clv.spend_prior_days <= 0.0
        {
            return Err(bad(
                "clv: holdout_days must be at least 1, min_repeat_customers at least 10, \
                 monthly_discount_rate within 0..1, forecast_months within 1..=60, \
                 backtest_months within 1..=forecast_months, trend_months within 3..=120, \
                 fit_max_evaluations at least 10, fit_max_seconds and spend_prior_days above 0"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A `[time_zone]` entry's zone; an unknown name is an error naming the key.
pub(crate) fn parse_zone(key: &str, name: &str) -> std::result::Result<chrono_tz::Tz, String> {
    name.parse().map_err(|_| {
        format!("time_zone.{key} is {name:?}: not an IANA time zone name (such as Asia/Tokyo or UTC)")
    })
}

/// Sets `section.key=value` in a parsed config file.
fn apply_override(table: &mut toml::Table, assignment: &str) -> std::result::Result<(), String> {
    let (key, value) = assignment
        .split_once('=')
        .ok_or("an override is section.key=value, such as churn.horizon_days=60")?;
    let value = value.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut parts: Vec<&str> = key.trim().split('.').collect();
    let last = parts.pop().filter(|k| !k.is_empty()).ok_or("the key is empty")?;
    let mut here = table;
    for part in parts {
        here = here
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{part} is a value, not a section"))?;
    }
    here.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_bands_with_the_bounds_inside() {
        let at_least = band(Direction::AtLeast, 4.0, 3.0);
        let statuses = [5.0, 4.0, 3.5, 3.0, 2.9].map(|v| at_least.status(v));
        assert_eq!(statuses, ["green", "green", "yellow", "yellow", "red"]);
        let at_most = band(Direction::AtMost, 5.0, 10.0);
        let statuses = [4.0, 5.0, 7.0, 10.0, 10.1].map(|v| at_most.status(v));
        assert_eq!(statuses, ["green", "green", "yellow", "yellow", "red"]);
    }

    fn load_text(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growth.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path))
    }

    #[test]
    fn the_shipped_file_holds_the_defaults() {
        let shipped = Config::load(Some(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sql/growth.toml"
        ))));
        assert_eq!(shipped.unwrap(), Config::default());
    }

    #[test]
    fn a_file_overrides_one_kpi_and_keeps_the_others() {
        let config =
            load_text("[kpi_thresholds]\ncac_usd = { direction = \"at_most\", green = 6.0, red = 12.0 }\n")
                .unwrap();
        assert_eq!(config.kpi_thresholds["cac_usd"].green, 6.0);
        assert_eq!(
            config.kpi_thresholds["dau_mau"],
            Config::default().kpi_thresholds["dau_mau"]
        );
    }

    #[test]
    fn bands_the_wrong_way_round_and_unknown_keys_are_errors() {
        let err =
            load_text("[kpi_thresholds]\ncac_usd = { direction = \"at_most\", green = 12.0, red = 6.0 }\n");
        assert!(matches!(err, Err(Error::BadConfig { ref reason, .. }) if reason.contains("cac_usd")));
        assert!(matches!(
            load_text("roi_treshold = 1.0\n"),
            Err(Error::BadConfig { .. })
        ));
    }

    #[test]
    fn overrides_set_typed_values_and_text_and_unknown_keys_fail() {
        let config = Config::load_with(
            None,
            &[
                "churn.horizon_days=60".into(),
                "run.memory_limit=3GiB".into(),
                "preferred_roi = 4.5".into(),
                "segment.algorithm=gaussian_mixture".into(),
            ],
        )
        .unwrap();
        assert_eq!(config.churn.horizon_days, 60);
        assert_eq!(config.run.memory_limit_bytes(), Ok(Some(3 << 30)));
        assert_eq!(config.preferred_roi, 4.5);
        assert_eq!(config.segment.algorithm, Algorithm::GaussianMixture);
        assert_eq!(config.segment.k_max, 10);
        let unknown = Config::load_with(None, &["churn.horizon=60".into()]);
        assert!(matches!(unknown, Err(Error::BadConfig { ref reason, .. }) if reason.contains("horizon")));
        assert!(Config::load_with(None, &["run.memory_limit=lots".into()]).is_err());
        assert!(Config::load_with(None, &["no_equals_sign".into()]).is_err());
    }

    #[test]
    fn sizes_read_with_binary_and_decimal_units() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("4TB").is_err());
    }

    #[test]
    fn churn_candidates_are_named_once_each() {
        let only = Config::load_with(None, &[r#"churn.candidates=["bagged_trees"]"#.into()]).unwrap();
        assert_eq!(only.churn.candidates, [ChurnCandidate::BaggedTrees]);
        for bad in [
            "churn.candidates=[]",
            r#"churn.candidates=["decision_tree", "decision_tree"]"#,
            r#"churn.candidates=["random_forest"]"#,
        ] {
            assert!(
                matches!(
                    Config::load_with(None, &[bad.into()]),
                    Err(Error::BadConfig { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_time_range_has_no_lower_bound_and_ends_the_day_after_tomorrow() {
        let quality = Config::default().quality;
        assert_eq!(quality.earliest, None);
        let today = chrono::Utc::now().date_naive();
        assert_eq!(quality.latest_bound(), today + chrono::Days::new(2));
        let set = Config::load_with(
            None,
            &[
                "quality.earliest=1990-01-01".into(),
                "quality.latest=\"1999-01-01\"".into(),
            ],
        )
        .unwrap()
        .quality;
        assert_eq!(set.earliest, chrono::NaiveDate::from_ymd_opt(1990, 1, 1));
        assert_eq!(
            set.latest_bound(),
            chrono::NaiveDate::from_ymd_opt(1999, 1, 1).unwrap()
        );
        let backwards = Config::load_with(
            None,
            &[
                "quality.earliest=1999-01-01".into(),
                "quality.latest=1990-01-01".into(),
            ],
        );
        assert!(matches!(backwards, Err(Error::BadConfig { .. })));
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/growth.toml"))).is_err());
    }
}
