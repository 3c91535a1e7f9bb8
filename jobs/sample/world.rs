//! The synthetic marketplace's fixed facts: markets, channels, customer groups, the calendar.
//!
//! Numbers are chosen to look like a cross-border marketplace, not fitted to any real one:
//! markets of very different sizes, channels whose cheap customers are worth less, groups
//! whose purchase rates and dropout differ enough for churn and lifetime value to be learnable.

use chrono::{Datelike, NaiveDate, Weekday};

/// A market the marketplace sells in.
pub struct Market {
    pub code: &'static str,
    pub region: Region,
    /// Share of new customers.
    pub weight: f64,
    /// Multiplier on order values (purchasing power).
    pub basket: f64,
    /// Multiplier on acquisition cost.
    pub cost: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Region {
    SouthEastAsia,
    LatinAmerica,
    NorthAmerica,
    Europe,
    JapanKorea,
}

pub(crate) const MARKETS: &[Market] = &[
    Market {
        code: "ID",
        region: Region::SouthEastAsia,
        weight: 0.13,
        basket: 0.55,
        cost: 0.45,
    },
    Market {
        code: "PH",
        region: Region::SouthEastAsia,
        weight: 0.08,
        basket: 0.55,
        cost: 0.45,
    },
    Market {
        code: "VN",
        region: Region::SouthEastAsia,
        weight: 0.08,
        basket: 0.55,
        cost: 0.45,
    },
    Market {
        code: "TH",
        region: Region::SouthEastAsia,
        weight: 0.08,
        basket: 0.65,
        cost: 0.55,
    },
    Market {
        code: "MY",
        region: Region::SouthEastAsia,
        weight: 0.06,
        basket: 0.75,
        cost: 0.6,
    },
    Market {
        code: "SG",
        region: Region::SouthEastAsia,
        weight: 0.03,
        basket: 1.3,
        cost: 1.4,
    },
    Market {
        code: "BR",
        region: Region::LatinAmerica,
        weight: 0.11,
        basket: 0.7,
        cost: 0.6,
    },
    Market {
        code: "MX",
        region: Region::LatinAmerica,
        weight: 0.09,
        basket: 0.7,
        cost: 0.6,
    },
    Market {
        code: "CO",
        region: Region::LatinAmerica,
        weight: 0.03,
        basket: 0.6,
        cost: 0.5,
    },
    Market {
        code: "CL",
        region: Region::LatinAmerica,
        weight: 0.02,
        basket: 0.8,
        cost: 0.7,
    },
    Market {
        code: "US",
        region: Region::NorthAmerica,
        weight: 0.12,
        basket: 1.5,
        cost: 2.0,
    },
    Market {
        code: "CA",
        region: Region::NorthAmerica,
        weight: 0.03,
        basket: 1.4,
        cost: 1.8,
    },
    Market {
        code: "DE",
        region: Region::Europe,
        weight: 0.03,
        basket: 1.3,
        cost: 1.7,
    },
    Market {
        code: "GB",
        region: Region::Europe,
        weight: 0.03,
        basket: 1.3,
        cost: 1.7,
    },
    Market {
        code: "FR",
        region: Region::Europe,
        weight: 0.02,
        basket: 1.2,
        cost: 1.6,
    },
    Market {
        code: "ES",
        region: Region::Europe,
        weight: 0.02,
        basket: 1.1,
        cost: 1.4,
    },
    Market {
        code: "JP",
        region: Region::JapanKorea,
        weight: 0.02,
        basket: 1.4,
        cost: 1.9,
    },
    Market {
        code: "KR",
        region: Region::JapanKorea,
        weight: 0.02,
        basket: 1.2,
        cost: 1.6,
    },
];

/// An acquisition channel.
pub(crate) struct Channel {
    pub name: &'static str,
    /// Share of new customers.
    pub weight: f64,
    /// Cost of one new customer in a market of cost 1, USD (0: unpaid).
    pub cac_usd: f64,
    /// Cost per thousand impressions, USD (0: no impressions).
    pub cpm_usd: f64,
    /// Click-through rate of its ads.
    pub ctr: f64,
    /// Multiplier on the chance of a high-value group.
    pub quality: f64,
}

pub(crate) const CHANNELS: &[Channel] = &[
    Channel {
        name: "search",
        weight: 0.24,
        cac_usd: 7.0,
        cpm_usd: 9.0,
        ctr: 0.035,
        quality: 1.2,
    },
    Channel {
        name: "social_ads",
        weight: 0.30,
        cac_usd: 4.5,
        cpm_usd: 5.0,
        ctr: 0.012,
        quality: 0.75,
    },
    Channel {
        name: "influencer",
        weight: 0.11,
        cac_usd: 8.0,
        cpm_usd: 12.0,
        ctr: 0.02,
        quality: 1.0,
    },
    Channel {
        name: "referral",
        weight: 0.15,
        cac_usd: 2.5,
        cpm_usd: 0.0,
        ctr: 0.0,
        quality: 1.4,
    },
    Channel {
        name: "marketplace",
        weight: 0.12,
        cac_usd: 3.5,
        cpm_usd: 3.0,
        ctr: 0.015,
        quality: 0.6,
    },
    Channel {
        name: "organic",
        weight: 0.08,
        cac_usd: 0.0,
        cpm_usd: 0.0,
        ctr: 0.0,
        quality: 1.1,
    },
];

/// A customer's planted behaviour: what the models are meant to find again.
pub(crate) struct Group {
    pub name: &'static str,
    /// Share among customers acquired by a channel of quality 1.
    pub weight: f64,
    /// Purchases per 30 days while active.
    pub purchases_per_month: f64,
    /// Mean order value in a market of basket 1, USD.
    pub order_usd: f64,
    /// Chance of leaving for good, per 30 days.
    pub dropout_per_month: f64,
    /// Chance an order uses a discount.
    pub discount_rate: f64,
    /// Visits per 30 days while active, besides those that end in a purchase.
    pub visits_per_month: f64,
    /// Invites sent per 30 days while active.
    pub invites_per_month: f64,
    /// Chance of a paid membership.
    pub member_rate: f64,
}

pub(crate) const GROUPS: &[Group] = &[
    Group {
        name: "vip",
        weight: 0.06,
        purchases_per_month: 2.2,
        order_usd: 85.0,
        dropout_per_month: 0.03,
        discount_rate: 0.1,
        visits_per_month: 14.0,
        invites_per_month: 0.4,
        member_rate: 0.6,
    },
    Group {
        name: "regular",
        weight: 0.24,
        purchases_per_month: 0.9,
        order_usd: 42.0,
        dropout_per_month: 0.07,
        discount_rate: 0.15,
        visits_per_month: 6.0,
        invites_per_month: 0.15,
        member_rate: 0.2,
    },
    Group {
        name: "bargain",
        weight: 0.30,
        purchases_per_month: 0.7,
        order_usd: 19.0,
        dropout_per_month: 0.12,
        discount_rate: 0.6,
        visits_per_month: 5.0,
        invites_per_month: 0.25,
        member_rate: 0.05,
    },
    Group {
        name: "one_timer",
        weight: 0.40,
        purchases_per_month: 0.25,
        order_usd: 28.0,
        dropout_per_month: 0.6,
        discount_rate: 0.3,
        visits_per_month: 1.5,
        invites_per_month: 0.02,
        member_rate: 0.01,
    },
];

/// Black Friday: the day after Thanksgiving (the 4th Thursday of November).
fn black_friday(year: i32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Thu, 4).expect("November has four Thursdays")
        + chrono::Days::new(1)
}

/// How much busier a day is than usual in a region: 11.11, Black Friday to Cyber Monday,
/// the weeks before Christmas, a January lull, and weekends.
pub(crate) fn season(day: NaiveDate, region: Region) -> f64 {
    let (month, dom) = (day.month(), day.day());
    let mut factor = 1.0;
    if month == 11 && (10..=12).contains(&dom) {
        factor = if region == Region::SouthEastAsia { 3.0 } else { 1.6 };
    }
    let bf = black_friday(day.year());
    let since_bf = (day - bf).num_days();
    if (0..=3).contains(&since_bf) {
        factor = if matches!(region, Region::NorthAmerica | Region::Europe) {
            2.8
        } else {
            1.6
        };
    }
    if month == 12 && (8..=23).contains(&dom) {
        factor = 1.6;
    }
    if month == 1 {
        factor *= 0.8;
    }
    if matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        factor *= 1.15;
    }
    factor
}

/// The largest value [`season`] takes: the bound for thinning.
pub(crate) const MAX_SEASON: f64 = 3.0 * 1.15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_friday_is_the_fourth_friday_of_november() {
        assert_eq!(black_friday(2024), NaiveDate::from_ymd_opt(2024, 11, 29).unwrap());
        assert_eq!(black_friday(2025), NaiveDate::from_ymd_opt(2025, 11, 28).unwrap());
    }

    #[test]
    fn singles_day_is_biggest_in_south_east_asia() {
        let day = NaiveDate::from_ymd_opt(2025, 11, 11).unwrap();
        assert!(season(day, Region::SouthEastAsia) > season(day, Region::Europe));
        assert!(season(day, Region::SouthEastAsia) <= MAX_SEASON);
    }

    #[test]
    fn weights_are_shares() {
        let sum = |w: &mut dyn Iterator<Item = f64>| w.sum::<f64>();
        assert!((sum(&mut GROUPS.iter().map(|g| g.weight)) - 1.0).abs() < 1e-9);
        assert!((sum(&mut CHANNELS.iter().map(|c| c.weight)) - 1.0).abs() < 1e-9);
        assert!((sum(&mut MARKETS.iter().map(|m| m.weight)) - 1.0).abs() < 1e-9);
    }
}
