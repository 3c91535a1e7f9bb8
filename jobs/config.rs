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
