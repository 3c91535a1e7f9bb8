//! The analytics settings the SQL models read: KPI thresholds for the red/yellow/green
//! statuses, the channel ROI threshold for budget recommendations, and the churn lapse.
//!
//! Defaults live here; `sql/growth.toml` (or the file `--config` names) overrides any of them.
//! The models see them as two tables, registered with the inputs: `kpi_thresholds` (one row
//! per KPI) and `settings` (one row of named values), so no number is repeated across files.

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::common::ScalarValue;
use datafusion::logical_expr::lit;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The config file read when present, relative to the repository root.
pub const DEFAULT_CONFIG: &str = "sql/growth.toml";

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

/// Everything the models read from config.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// KPI name (the `kpi_monthly` column it applies to) to its bands.
    pub kpi_thresholds: BTreeMap<String, Threshold>,
    /// Channels whose ROI is under this are told to give budget to those above it.
    pub roi_threshold: f64,
    /// A customer with no purchase for this many months has churned.
    pub churn_lapse_months: i32,
    /// The clustering job's parameters.
    pub segment: SegmentConfig,
    /// The churn job's parameters.
    pub churn: ChurnConfig,
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

/// How the segment job clusters customers (README: Learned segments).
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

/// How the churn job labels, trains, and tiers customers (README: Churn prediction).
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
    pub seed: u64,
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
            seed: 42,
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
            ("repeat_purchase_rate", band(AtLeast, 0.40, 0.30)),
            ("dau_mau", band(AtLeast, 0.30, 0.20)),
            ("invite_share_rate", band(AtLeast, 0.15, 0.10)),
            ("delivered_within_7d_share", band(AtLeast, 0.50, 0.40)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Config {
            kpi_thresholds,
            roi_threshold: 0.0,
            churn_lapse_months: 3,
            segment: SegmentConfig::default(),
            churn: ChurnConfig::default(),
        }
    }
}

impl Config {
    /// Reads `path` over the defaults; a missing file at the default path means defaults.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (path, required) = match path {
            Some(path) => (path, true),
            None => (Path::new(DEFAULT_CONFIG), false),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Self::default()),
            Err(source) => {
                return Err(Error::io(format!("reading the config {}", path.display()))(
                    source,
                ));
            }
        };
        let mut config = Self::default();
        let overrides: Config = toml::from_str(&text).map_err(|e| Error::BadConfig {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        // A file naming some KPIs keeps the defaults of the others.
        config.kpi_thresholds.extend(overrides.kpi_thresholds);
        config.roi_threshold = overrides.roi_threshold;
        config.churn_lapse_months = overrides.churn_lapse_months;
        config.segment = overrides.segment;
        config.churn = overrides.churn;
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::BadConfig {
            file: path.display().to_string(),
            reason,
        };
        for (kpi, t) in &self.kpi_thresholds {
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
        let segment = &self.segment;
        if segment.k_min < 2 || segment.k_min > segment.k_max || segment.k.is_some_and(|k| k < 2) {
            return Err(bad(
                "segment: k, k_min and k_max must be at least 2, with k_min <= k_max".into(),
            ));
        }
        if segment.features.is_empty() {
            return Err(bad("segment.features must name at least one column".into()));
        }
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
        Ok(())
    }

    /// Registers `kpi_thresholds` and `settings` with a session, as plain views over values.
    pub async fn register(&self, ctx: &SessionContext) -> Result<()> {
        let rows: Vec<String> = self
            .kpi_thresholds
            .iter()
            .map(|(kpi, t)| {
                let direction = match t.direction {
                    Direction::AtMost => "at_most",
                    Direction::AtLeast => "at_least",
                };
                format!(
                    "('{}', '{direction}', {:?}, {:?})",
                    kpi.replace('\'', "''"),
                    t.green,
                    t.red
                )
            })
            .collect();
        let thresholds = format!(
            "select column1 as kpi, column2 as direction, cast(column3 as double) as green, \
             cast(column4 as double) as red from (values {})",
            rows.join(", ")
        );
        let settings = ctx
            .read_empty()
            .and_then(|df| {
                df.select(vec![
                    lit(ScalarValue::Float64(Some(self.roi_threshold))).alias("roi_threshold"),
                    lit(ScalarValue::Int32(Some(self.churn_lapse_months))).alias("churn_lapse_months"),
                ])
            })
            .map_err(Error::engine("building settings"))?;
        ctx.register_table("settings", settings.into_view())
            .map_err(Error::engine("registering settings"))?;
        ctx.sql(&thresholds)
            .await
            .and_then(|df| ctx.register_table("kpi_thresholds", df.into_view()))
            .map_err(Error::engine("registering kpi_thresholds"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_missing_named_file_is_an_error() {
        assert!(Config::load(Some(Path::new("/nonexistent/growth.toml"))).is_err());
    }
}
