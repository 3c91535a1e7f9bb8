//! Market-local time: each market's days and months are read in its own time zone (`[time_zone]`
//! in the config, IANA names, `default` for markets not named).
//!
//! Two things follow from a market's zone. The run date's cut-off: a run for D sees each
//! market's events up to the end of D in that market's time, so every market's day D is whole
//! (the night must run after the last market's midnight). And the buckets: the SQL models call
//! `market_time(ts, market, settings.time_zones)` for the wall-clock time of a UTC timestamp in
//! its market, and take days and months from that.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{NaiveDate, Offset, TimeZone};
use chrono_tz::Tz;
use datafusion::arrow::array::{Array, AsArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarUDF, Volatility, create_udf, lit, when};
use datafusion::prelude::col;

use crate::config::{DEFAULT_MARKET_KEY, parse_zone};

/// The name the SQL models call the function by.
pub(crate) const MARKET_TIME: &str = "market_time";

/// Market time zones, parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Zones {
    default: Tz,
    markets: BTreeMap<String, Tz>,
}

impl Zones {
    /// From the config's `[time_zone]` map; an unknown zone name is an error naming it.
    pub(crate) fn from_config(map: &BTreeMap<String, String>) -> Result<Zones, String> {
        let default = match map.get(DEFAULT_MARKET_KEY) {
            Some(name) => parse_zone(DEFAULT_MARKET_KEY, name)?,
            None => Tz::UTC,
        };
        let mut markets = BTreeMap::new();
        for (market, name) in map.iter().filter(|(m, _)| m.as_str() != DEFAULT_MARKET_KEY) {
            markets.insert(market.clone(), parse_zone(market, name)?);
        }
        Ok(Zones { default, markets })
    }

    /// The form the SQL function reads (`settings.time_zones`): `default=Zone;MARKET=Zone;...`,
    /// or empty when every market keeps UTC, which the function passes through untouched.
    pub fn spec(&self) -> String {
        if self.all_utc() {
            return String::new();
        }
        std::iter::once(format!("{DEFAULT_MARKET_KEY}={}", self.default.name()))
            .chain(self.markets.iter().map(|(m, tz)| format!("{m}={}", tz.name())))
            .collect::<Vec<_>>()
            .join(";")
    }

    fn all_utc(&self) -> bool {
        is_utc(self.default) && self.markets.values().all(|tz| is_utc(*tz))
    }

    fn parse_spec(spec: &str) -> Result<Zones, String> {
        let map = spec
            .split(';')
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("{MARKET_TIME}: {part:?} is not MARKET=Zone"))
            })
            .collect::<Result<_, _>>()?;
        Zones::from_config(&map)
    }

    fn zone(&self, market: Option<&str>) -> Tz {
        market
            .and_then(|m| self.markets.get(m))
            .copied()
            .unwrap_or(self.default)
    }

    /// The first microsecond after `date` in `tz`, UTC.
    fn end_of(tz: Tz, date: NaiveDate) -> i64 {
        let midnight = (date + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists");
        // A zone that skips midnight (a DST change at 00:00) starts the day at the next instant.
        tz.from_local_datetime(&midnight)
            .earliest()
            .unwrap_or_else(|| tz.from_utc_datetime(&midnight))
            .timestamp_micros()
    }

    /// The latest end of `date` over every market: a table without a market column is cut there.
    pub(crate) fn latest_end(&self, date: NaiveDate) -> i64 {
        self.markets
            .values()
            .chain(std::iter::once(&self.default))
            .map(|tz| Zones::end_of(*tz, date))
            .max()
            .expect("the default zone is always there")
    }

    /// The end of `date` for each row by its market column, or the default zone's where the
    /// table's market column is absent: the expression a view filters with.
    pub(crate) fn end_by_market(
        &self,
        market: Option<&str>,
        date: NaiveDate,
    ) -> datafusion::error::Result<Expr> {
        let at = utc_timestamp;
        let default = at(Zones::end_of(self.default, date));
        let Some(market) = market else {
            return Ok(default);
        };
        let markets: Vec<_> = self
            .markets
            .iter()
            .filter(|(_, tz)| Zones::end_of(**tz, date) != Zones::end_of(self.default, date))
            .collect();
        if markets.is_empty() {
            return Ok(default);
        }
        let (first, rest) = markets.split_first().expect("not empty");
        let mut case = when(
            col(market).eq(lit(first.0.as_str())),
            at(Zones::end_of(*first.1, date)),
        );
        for (m, tz) in rest {
            case.when(col(market).eq(lit(m.as_str())), at(Zones::end_of(**tz, date)));
        }
        case.otherwise(default)
    }
}

fn utc_timestamp(micros: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(micros),
        Some("UTC".into()),
    ))
}

fn is_utc(tz: Tz) -> bool {
    matches!(
        tz,
        Tz::UTC | Tz::Etc__UTC | Tz::Etc__UCT | Tz::UCT | Tz::Etc__Universal | Tz::Universal | Tz::Zulu
    )
}

/// `market_time(ts, market, zones)`: the wall-clock time in the market's zone of a UTC
/// timestamp, without a zone (days and months are then its calendar parts). `zones` is
/// `settings.time_zones`; when it is empty every market is UTC and the values pass unchanged.
///
/// Not a built-in: a Ballista scheduler and its executors know it through `cluster.rs`.
pub(crate) fn market_time() -> ScalarUDF {
    let local = |args: &[ColumnarValue]| -> datafusion::error::Result<ColumnarValue> {
        let spec = match &args[2] {
            ColumnarValue::Scalar(value) => value.to_string(),
            ColumnarValue::Array(array) => {
                let text = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
                let text = text.as_string::<i32>();
                (0..text.len())
                    .find(|&i| text.is_valid(i))
                    .map(|i| text.value(i).to_string())
                    .unwrap_or_default()
            }
        };
        let arrays = ColumnarValue::values_to_arrays(&args[..2])?;
        let stamps = arrays[0].as_primitive::<TimestampMicrosecondType>();
        if spec.is_empty() || spec == "NULL" {
            return Ok(ColumnarValue::Array(Arc::new(
                stamps.clone().with_timezone_opt(None::<String>),
            )));
        }
        let zones = Zones::parse_spec(&spec).map_err(DataFusionError::Execution)?;
        let markets = datafusion::arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
        let markets = markets.as_string::<i32>();
        let mut last: Option<(&str, Tz)> = None;
        let local: TimestampMicrosecondArray = stamps
            .iter()
            .enumerate()
            .map(|(i, micros)| {
                let micros = micros?;
                let market = markets.is_valid(i).then(|| markets.value(i));
                let tz = match (last, market) {
                    (Some((seen, tz)), Some(m)) if seen == m => tz,
                    _ => {
                        let tz = zones.zone(market);
                        last = market.map(|m| (m, tz));
                        tz
                    }
                };
                let utc = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
                let offset = tz.offset_from_utc_datetime(&utc).fix().local_minus_utc();
                Some(micros + i64::from(offset) * 1_000_000)
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(local)))
    };
    create_udf(
        MARKET_TIME,
        vec![
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Utf8,
            DataType::Utf8,
        ],
        DataType::Timestamp(TimeUnit::Microsecond, None),
        Volatility::Immutable,
        Arc::new(local),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(pairs: &[(&str, &str)]) -> Zones {
        Zones::from_config(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_day_ends_at_its_markets_midnight() {
        let zones = zones(&[("JP", "Asia/Tokyo"), ("MX", "America/Mexico_City")]);
        let date = NaiveDate::from_ymd_opt(2025, 3, 31).unwrap();
        let utc_end = date.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros() + 86_400_000_000;
        assert_eq!(Zones::end_of(Tz::Asia__Tokyo, date), utc_end - 9 * 3_600_000_000);
        assert_eq!(zones.latest_end(date), utc_end + 6 * 3_600_000_000);
        assert!(
            zones
                .spec()
                .starts_with("default=UTC;JP=Asia/Tokyo;MX=America/Mexico_City")
        );
        assert_eq!(self::zones(&[("SG", "UTC")]).spec(), "");
    }

    #[test]
    fn an_unknown_zone_is_named() {
        let map = [("JP".to_string(), "Asia/Tokio".to_string())]
            .into_iter()
            .collect();
        let error = Zones::from_config(&map).unwrap_err();
        assert!(
            error.contains("time_zone.JP") && error.contains("Asia/Tokio"),
            "{error}"
        );
    }
}
