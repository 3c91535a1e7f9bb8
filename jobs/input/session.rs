//! The session every model runs in: the catalog's tables as of the run date, the config's
//! thresholds and settings as tables, and the row rules applied.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::lit;
use datafusion::prelude::SessionContext;

use crate::config::Engine;
use crate::config::{Config, DEFAULT_MARKET_KEY, Direction};
use crate::error::{Error, Result};
use crate::input::catalog::{self, RunDate};
use crate::input::contract::Input;
use crate::input::quality;
use crate::input::time_zones::{self, Zones};
use crate::storage::Root;

/// A session with the inputs registered as of the run date, and the config's tables: what
/// every model runs in. `later` is a report of the same input at a later date, whose clean
/// results spare checks here (see [`crate::input::quality::apply`]). `engine` runs the
/// session's queries: the SQL stage's `[run] engine`, or local for a model stage.
pub(crate) async fn session_for(
    root: &Root,
    input: &Input,
    run_date: RunDate,
    config: &Config,
    later: Option<&quality::Report>,
    engine: &Engine,
) -> Result<(SessionContext, quality::Report)> {
    let ctx = engine.session().await?;
    catalog::register_raw(&ctx, root, input).await?;
    let zones = Zones::from_config(&config.time_zone).map_err(|reason| Error::BadConfig {
        file: "[time_zone]".into(),
        reason,
    })?;
    ctx.register_udf(time_zones::market_time());
    catalog::register_views(&ctx, input, run_date, &zones).await?;
    register_config(&ctx, config, &zones).await?;
    let quality = quality::apply(&ctx, root, input, run_date, &config.quality, later).await?;
    Ok((ctx, quality))
}

/// Registers the config's `kpi_thresholds`, `settings`, `organic_channels`, `margin_rates` and
/// `market_regions` with a session, as plain views over values, for the models to read. The lists
/// may be empty: a null row, filtered out, gives the values list its type.
async fn register_config(ctx: &SessionContext, config: &Config, zones: &Zones) -> Result<()> {
    let rows: Vec<String> = config
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
                lit(ScalarValue::Float64(Some(config.preferred_roi))).alias("preferred_roi"),
                lit(ScalarValue::Float64(Some(config.cac_cut_share))).alias("cac_cut_share"),
                lit(ScalarValue::Float64(Some(config.cac_red_cut_share))).alias("cac_red_cut_share"),
                lit(ScalarValue::Float64(Some(config.budget_reserve_share))).alias("budget_reserve_share"),
                lit(ScalarValue::Int32(Some(config.repurchase_window_months)))
                    .alias("repurchase_window_months"),
                lit(ScalarValue::Float64(Some(
                    config.margin_rate.get(DEFAULT_MARKET_KEY).copied().unwrap_or(1.0),
                )))
                .alias("margin_rate"),
                lit(config.region.get(DEFAULT_MARKET_KEY).cloned().unwrap_or_default())
                    .alias("default_region"),
                lit(zones.spec()).alias("time_zones"),
                lit(ScalarValue::Int32(Some(config.churn_lapse_months))).alias("churn_lapse_months"),
                lit(ScalarValue::Int32(Some(
                    i32::try_from(config.clv.holdout_days).unwrap_or(i32::MAX),
                )))
                .alias("clv_holdout_days"),
                lit(ScalarValue::Int32(Some(
                    i32::try_from(config.clv.backtest_months).unwrap_or(i32::MAX),
                )))
                .alias("clv_backtest_months"),
            ])
        })
        .map_err(Error::engine("building settings"))?;
    ctx.register_table("settings", settings.into_view())
        .map_err(Error::engine("registering settings"))?;
    ctx.sql(&thresholds)
        .await
        .and_then(|df| ctx.register_table("kpi_thresholds", df.into_view()))
        .map_err(Error::engine("registering kpi_thresholds"))?;
    let organic: Vec<String> = config
        .organic_channels
        .iter()
        .map(|channel| format!("({})", text_literal(channel)))
        .collect();
    register_values(
        ctx,
        "organic_channels",
        "cast(column1 as varchar) as channel",
        &organic,
        "(null)",
    )
    .await?;
    let margins: Vec<String> = config
        .margin_rate
        .iter()
        .filter(|(market, _)| market.as_str() != DEFAULT_MARKET_KEY)
        .map(|(market, rate)| format!("({}, {rate:?})", text_literal(market)))
        .collect();
    register_values(
        ctx,
        "margin_rates",
        "cast(column1 as varchar) as market, cast(column2 as double) as margin_rate",
        &margins,
        "(null, null)",
    )
    .await?;
    let regions: Vec<String> = config
        .region
        .iter()
        .filter(|(market, _)| market.as_str() != DEFAULT_MARKET_KEY)
        .map(|(market, region)| format!("({}, {})", text_literal(market), text_literal(region)))
        .collect();
    register_values(
        ctx,
        "market_regions",
        "cast(column1 as varchar) as market, cast(column2 as varchar) as region",
        &regions,
        "(null, null)",
    )
    .await?;
    Ok(())
}

/// A SQL text literal.
fn text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Registers `name` as a view over `rows` (SQL value tuples), which may be empty: the row of
/// nulls `typing_row`, filtered out, gives the values list its type.
async fn register_values(
    ctx: &SessionContext,
    name: &str,
    columns: &str,
    rows: &[String],
    typing_row: &str,
) -> Result<()> {
    let values = rows
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(typing_row))
        .collect::<Vec<_>>()
        .join(", ");
    ctx.sql(&format!(
        "select {columns} from (values {values}) where column1 is not null"
    ))
    .await
    .and_then(|df| ctx.register_table(name, df.into_view()))
    .map_err(Error::engine(format!("registering {name}")))?;
    Ok(())
}
