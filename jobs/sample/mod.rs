//! The sample generator: a seeded synthetic marketplace written in the input contract.
//!
//! Customers are simulated one at a time, each from its own random stream (`seed`, customer
//! index), so the output does not depend on chunking and any scale from a thousand to ten
//! million customers streams through bounded memory. Each customer has a planted group
//! (purchase rate, basket, dropout) and a dropout time; purchases follow a seasonal Poisson
//! process until dropout, so recency and frequency really do predict churn. The planted truth
//! is written to `_truth/customers/`, beside (not among) the input tables.

mod tables;
pub mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use rand::SeedableRng;
use rand::distr::weighted::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Exp, LogNormal, Poisson};

use crate::error::{Error, Result};
use tables::{Customers, Invites, Orders, RollingWriter, Sessions, Shipments, Spend, Truth};
use world::{CHANNELS, GROUPS, MARKETS, MAX_SEASON, Region, season};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    pub customers: u64,
    pub seed: u64,
    /// First day of the simulated history.
    pub start: NaiveDate,
    /// Days of history; nothing happens on or after `start + days`.
    pub days: u32,
    /// A table's file is closed and the next begun after this many rows.
    pub rows_per_file: usize,
    /// The folder to write; replaced only as a whole, once complete.
    pub output: PathBuf,
    /// Replace an existing output folder.
    pub force: bool,
    /// Worker threads; 0 means one per core. The files do not depend on it.
    pub threads: usize,
}

impl SampleOptions {
    /// The embedded sample: 10,000 customers over two years ending 2026-06-30.
    pub fn embedded(output: PathBuf) -> Self {
        SampleOptions {
            customers: 10_000,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2024, 7, 1).expect("valid date"),
            days: 730,
            rows_per_file: 2_000_000,
            output,
            force: false,
            threads: 0,
        }
    }
}

/// Rows written per table.
pub(crate) type SampleReport = BTreeMap<String, u64>;

const MICROS_PER_DAY: f64 = 86_400_000_000.0;
const CUSTOMERS_PER_CHUNK: u64 = 4_096;

/// When new customers arrive: growing over the period, with campaign spikes.
struct Calendar {
    start: NaiveDate,
    start_micros: i64,
    days: u32,
    /// Share of all acquisitions on each day.
    share: Vec<f64>,
    /// Cumulative share up to and including each day.
    cdf: Vec<f64>,
}

impl Calendar {
    fn new(start: NaiveDate, days: u32) -> Self {
        let weights: Vec<f64> = (0..days)
            .map(|d| {
                let date = start + chrono::Days::new(d as u64);
                let growth = 0.6 + 0.8 * d as f64 / days as f64;
                let seasonal: f64 = MARKETS.iter().map(|m| m.weight * season(date, m.region)).sum();
                growth * seasonal
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let share: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let mut cdf = Vec::with_capacity(share.len());
        let mut running = 0.0;
        for s in &share {
            running += s;
            cdf.push(running);
        }
        Calendar {
            start,
            start_micros: start
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp_micros(),
            days,
            share,
            cdf,
        }
    }

    fn day_of(&self, quantile: f64) -> u32 {
        (self.cdf.partition_point(|c| *c <= quantile) as u32).min(self.days - 1)
    }

    fn share_before(&self, day: u32) -> f64 {
        if day == 0 { 0.0 } else { self.cdf[day as usize - 1] }
    }

    fn date(&self, days: f64) -> NaiveDate {
        self.start + chrono::Days::new(days.max(0.0) as u64)
    }

    fn micros(&self, days: f64) -> i64 {
        self.start_micros + (days * MICROS_PER_DAY) as i64
    }
}

/// Precomputed samplers shared by every customer.
struct Samplers {
    market: WeightedIndex<f64>,
    channel: WeightedIndex<f64>,
    /// Group mix for each acquisition channel (better channels bring more valuable groups).
    group_by_channel: Vec<WeightedIndex<f64>>,
    later_channel: WeightedIndex<f64>,
}

const LATER_CHANNELS: &[(&str, f64)] = &[
    ("app", 0.5),
    ("direct", 0.2),
    ("search", 0.12),
    ("social_ads", 0.08),
    ("email", 0.1),
];
const COUPONS: &[&str] = &["SAVE10", "FLASH20", "MEMBER15", "BUNDLE5"];
const HUBS: &[(&str, f64)] = &[("CN", 0.6), ("KR", 0.15), ("US", 0.15), ("JP", 0.1)];
const CARRIERS: &[&str] = &["cainiao", "dhl", "jnt_express", "fedex"];

impl Samplers {
    fn new() -> Self {
        let weights = |w: Vec<f64>| WeightedIndex::new(w).expect("positive weights");
        Samplers {
            market: weights(MARKETS.iter().map(|m| m.weight).collect()),
            channel: weights(CHANNELS.iter().map(|c| c.weight).collect()),
            group_by_channel: CHANNELS
                .iter()
                .map(|c| {
                    weights(
                        GROUPS
                            .iter()
                            .map(|g| match g.name {
                                "vip" | "regular" => g.weight * c.quality,
                                "one_timer" => g.weight / c.quality,
                                _ => g.weight,
                            })
                            .collect(),
                    )
                })
                .collect(),
            later_channel: weights(LATER_CHANNELS.iter().map(|c| c.1).collect()),
        }
    }
}

/// The builders of one chunk of customers.
struct Chunk {
    customers: Customers,
    orders: Orders,
    sessions: Sessions,
    invites: Invites,
    shipments: Shipments,
    truth: Truth,
    /// The (day, market, channel) slot of each customer acquired in this chunk.
    acquired: Vec<usize>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            acquired: Vec::new(),
            customers: Customers::new(),
            orders: Orders::new(),
            sessions: Sessions::new(),
            invites: Invites::new(),
            shipments: Shipments::new(),
            truth: Truth::new(),
        }
    }
}

struct Writers {
    customers: RollingWriter,
    orders: RollingWriter,
    sessions: RollingWriter,
    invites: RollingWriter,
    shipments: RollingWriter,
    spend: RollingWriter,
    truth: RollingWriter,
}

impl Writers {
    fn new(root: &Path, rows_per_file: usize) -> Result<Self> {
        let w = |table: &str, schema| RollingWriter::new(&root.join(table), schema, rows_per_file);
        Ok(Writers {
            customers: w("customers", Customers::schema())?,
            orders: w("orders", Orders::schema())?,
            sessions: w("sessions", Sessions::schema())?,
            invites: w("invites", Invites::schema())?,
            shipments: w("shipments", Shipments::schema())?,
            spend: w("marketing_spend", Spend::schema())?,
            truth: w("_truth/customers", Truth::schema())?,
        })
    }

    fn write(&mut self, chunk: &mut Chunk) -> Result<()> {
        let batch = chunk.customers.batch(self.customers.schema());
        self.customers.write(&batch)?;
        let batch = chunk.orders.batch(self.orders.schema());
        self.orders.write(&batch)?;
        let batch = chunk.sessions.batch(self.sessions.schema());
        self.sessions.write(&batch)?;
        let batch = chunk.invites.batch(self.invites.schema());
        self.invites.write(&batch)?;
        let batch = chunk.shipments.batch(self.shipments.schema());
        self.shipments.write(&batch)?;
        let batch = chunk.truth.batch(self.truth.schema());
        self.truth.write(&batch)
    }

    fn finish(self) -> Result<SampleReport> {
        let mut report = SampleReport::new();
        report.insert("customers".into(), self.customers.finish()?);
        report.insert("orders".into(), self.orders.finish()?);
        report.insert("sessions".into(), self.sessions.finish()?);
        report.insert("invites".into(), self.invites.finish()?);
        report.insert("shipments".into(), self.shipments.finish()?);
        report.insert("marketing_spend".into(), self.spend.finish()?);
        self.truth.finish()?;
        Ok(report)
    }
}

/// The simulation of every customer.
struct Simulation<'a> {
    options: &'a SampleOptions,
    calendar: Calendar,
    samplers: Samplers,
}

fn customer_id(index: u64) -> String {
    format!("C{index:09}")
}

fn cents(usd: f64) -> f64 {
    (usd * 100.0).round() / 100.0
}

impl<'a> Simulation<'a> {
    fn new(options: &'a SampleOptions) -> Self {
        Simulation {
            options,
            calendar: Calendar::new(options.start, options.days),
            samplers: Samplers::new(),
        }
    }

    fn rng(&self, index: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.options.seed);
        rng.set_stream(index);
        rng
    }

    /// A customer's signup, in days since the start: the first draws of their stream, so a
    /// referral can find its referrer's signup without simulating the referrer.
    fn signup(&self, index: u64, rng: &mut ChaCha8Rng) -> f64 {
        let quantile = (index as f64 + rng.random::<f64>()) / self.options.customers as f64;
        self.calendar.day_of(quantile) as f64 + rng.random::<f64>()
    }

    fn simulate(&self, index: u64, chunk: &mut Chunk) {
        let end = self.options.days as f64;
        let mut rng = self.rng(index);
        let signup = self.signup(index, &mut rng);
        let signup_day = signup as u32;
        let market_index = self.samplers.market.sample(&mut rng);
        let market = &MARKETS[market_index];
        let mut channel_index = self.samplers.channel.sample(&mut rng);
        let id = customer_id(index);

        // A referral needs a referrer who signed up on an earlier day.
        let mut referrer = None;
        if CHANNELS[channel_index].name == "referral" {
            let earlier = (self.calendar.share_before(signup_day) * self.options.customers as f64) as u64;
            if earlier == 0 {
                channel_index = CHANNELS
                    .iter()
                    .position(|c| c.name == "organic")
                    .expect("organic exists");
            } else {
                let j = rng.random_range(0..earlier);
                let j_signup = self.signup(j, &mut self.rng(j));
                referrer = Some((j, j_signup));
            }
        }
        let channel = &CHANNELS[channel_index];
        let group = &GROUPS[self.samplers.group_by_channel[channel_index].sample(&mut rng)];
        let is_member = rng.random_bool(group.member_rate);
        let slot = (signup_day as usize * MARKETS.len() + market_index) * CHANNELS.len() + channel_index;
        chunk.acquired.push(slot);

        chunk.customers.customer_id.append_value(&id);
        chunk
            .customers
            .signup_ts
            .append_value(self.calendar.micros(signup));
        chunk.customers.market.append_value(market.code);
        chunk.customers.acquisition_channel.append_value(channel.name);
        chunk
            .customers
            .referrer_customer_id
            .append_option(referrer.map(|(j, _)| customer_id(j)));
        chunk.customers.is_member.append_value(is_member);

        if let Some((j, j_signup)) = referrer {
            let sent = signup - (signup - j_signup).min(10.0) * rng.random_range(0.05..1.0);
            let invites = &mut chunk.invites;
            invites.invite_id.append_value(format!("{id}-R"));
            invites.inviter_customer_id.append_value(customer_id(j));
            invites.sent_ts.append_value(self.calendar.micros(sent));
            invites
                .share_channel
                .append_value(share_channel(market.code, &mut rng));
            invites.invitee_customer_id.append_value(&id);
            invites.accepted_ts.append_value(self.calendar.micros(signup));
            invites.coupon_code.append_value("REF5");
        }

        // Purchases: most sign-ups buy within a day; dropout is counted from the first purchase.
        let dropout_rate = -(1.0 - group.dropout_per_month).ln() / 30.0;
        let buys = rng.random_bool(0.88);
        let first = signup + Exp::new(2.0).expect("positive rate").sample(&mut rng);
        let dropout = if buys {
            first + Exp::new(dropout_rate).expect("positive rate").sample(&mut rng)
        } else {
            signup
        };
        chunk.truth.customer_id.append_value(&id);
        chunk.truth.true_group.append_value(group.name);
        chunk
            .truth
            .dropout_ts
            .append_value(self.calendar.micros(dropout.min(end * 2.0)));

        let active_until = dropout.min(end);
        let mut purchases = 0u32;
        if buys && first < end {
            self.order(
                &id,
                purchases,
                first,
                market_index,
                channel_index,
                group,
                referrer.is_some(),
                &mut rng,
                chunk,
            );
            purchases += 1;
            let rate = group.purchases_per_month / 30.0;
            let mut t = first;
            loop {
                t += Exp::new(rate * MAX_SEASON)
                    .expect("positive rate")
                    .sample(&mut rng);
                if t >= active_until {
                    break;
                }
                if rng.random::<f64>() < season(self.calendar.date(t), market.region) / MAX_SEASON {
                    self.order(
                        &id,
                        purchases,
                        t,
                        market_index,
                        channel_index,
                        group,
                        false,
                        &mut rng,
                        chunk,
                    );
                    purchases += 1;
                }
            }
        }

        // Visits while active, then a trickle after dropout; anonymous visits from the same market.
        let mut visit = 0u32;
        let mut t = signup;
        let visit_rate = group.visits_per_month / 30.0;
        loop {
            let rate = if t < active_until { visit_rate } else { 0.2 / 30.0 };
            t += Exp::new(rate).expect("positive rate").sample(&mut rng);
            if t >= end {
                break;
            }
            let session_id = format!("{id}-V{visit}");
            self.session(&session_id, Some(&id), t, market, &mut rng, chunk);
            visit += 1;
        }
        let anonymous = Poisson::new(1.5).expect("positive mean").sample(&mut rng) as u32;
        for n in 0..anonymous {
            let t = rng.random_range(0.0..end);
            self.session(&format!("A{index:09}-{n}"), None, t, market, &mut rng, chunk);
        }

        // Invites sent while active; acceptances are written by the invitee (above).
        let invite_rate = group.invites_per_month / 30.0;
        let mut t = signup;
        let mut n = 0u32;
        loop {
            t += Exp::new(invite_rate).expect("positive rate").sample(&mut rng);
            if t >= active_until {
                break;
            }
            let invites = &mut chunk.invites;
            invites.invite_id.append_value(format!("{id}-I{n}"));
            invites.inviter_customer_id.append_value(&id);
            invites.sent_ts.append_value(self.calendar.micros(t));
            invites
                .share_channel
                .append_value(share_channel(market.code, &mut rng));
            invites.invitee_customer_id.append_null();
            invites.accepted_ts.append_null();
            invites.coupon_code.append_value("REF5");
            n += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn order(
        &self,
        id: &str,
        n: u32,
        t: f64,
        market_index: usize,
        channel_index: usize,
        group: &world::Group,
        referred: bool,
        rng: &mut ChaCha8Rng,
        chunk: &mut Chunk,
    ) {
        let market = &MARKETS[market_index];
        let basket = group.order_usd * market.basket * LogNormal::new(0.0, 0.45).expect("valid").sample(rng);
        let (discount, coupon) = if referred {
            (basket.min(10.0) * 0.5, Some("REF5"))
        } else if rng.random_bool(group.discount_rate) {
            (
                basket * rng.random_range(0.05..0.3),
                Some(COUPONS[rng.random_range(0..COUPONS.len())]),
            )
        } else {
            (0.0, None)
        };
        let cancel_rate = if group.name == "bargain" { 0.05 } else { 0.03 };
        let roll = rng.random::<f64>();
        let status = if roll < cancel_rate {
            "cancelled"
        } else if roll < cancel_rate + 0.025 {
            "refunded"
        } else {
            "completed"
        };
        let items = 1 + Poisson::new(basket / 35.0 + 0.01)
            .expect("positive mean")
            .sample(rng) as i32;
        let channel = if n == 0 {
            CHANNELS[channel_index].name
        } else {
            LATER_CHANNELS[self.samplers.later_channel.sample(rng)].0
        };
        let order_id = format!("{id}-{n:04}");
        let orders = &mut chunk.orders;
        orders.order_id.append_value(&order_id);
        orders.customer_id.append_value(id);
        orders.order_ts.append_value(self.calendar.micros(t));
        orders.amount_usd.append_value(cents(basket - discount));
        orders.status.append_value(status);
        orders.market.append_value(market.code);
        orders.channel.append_value(channel);
        orders.items.append_value(items);
        orders.discount_usd.append_value(cents(discount));
        orders.coupon_code.append_option(coupon);

        let session_start = t - rng.random_range(1.0..45.0) / 1440.0;
        self.session(
            &format!("{order_id}-S"),
            Some(id),
            session_start.max(0.0),
            market,
            rng,
            chunk,
        );

        if status != "cancelled" {
            self.shipment(&order_id, t, market, rng, chunk);
        }
    }

    fn session(
        &self,
        session_id: &str,
        customer: Option<&str>,
        t: f64,
        market: &world::Market,
        rng: &mut ChaCha8Rng,
        chunk: &mut Chunk,
    ) {
        let mobile_first = matches!(market.region, Region::SouthEastAsia | Region::LatinAmerica);
        let roll = rng.random::<f64>();
        let device = match (mobile_first, roll) {
            (true, r) if r < 0.65 => "android",
            (true, r) if r < 0.8 => "ios",
            (false, r) if r < 0.45 => "ios",
            (false, r) if r < 0.8 => "android",
            _ => "web",
        };
        let channel = ["app", "direct", "search", "social_ads"][rng.random_range(0..4)];
        let sessions = &mut chunk.sessions;
        sessions.session_id.append_value(session_id);
        sessions.customer_id.append_option(customer);
        sessions.session_start_ts.append_value(self.calendar.micros(t));
        sessions.market.append_value(market.code);
        sessions.device.append_value(device);
        sessions.channel.append_value(channel);
    }

    fn shipment(
        &self,
        order_id: &str,
        ordered: f64,
        market: &world::Market,
        rng: &mut ChaCha8Rng,
        chunk: &mut Chunk,
    ) {
        let end = self.options.days as f64;
        let shipped = ordered + rng.random_range(0.1..2.5);
        if shipped >= end {
            return;
        }
        let hub = HUBS[WeightedIndex::new(HUBS.iter().map(|h| h.1))
            .expect("positive")
            .sample(rng)]
        .0;
        let domestic = rng.random_bool(0.3) || hub == market.code;
        let (origin, carrier, median_days) = if domestic {
            (market.code, "local_post", 2.5)
        } else {
            let median = match market.region {
                Region::SouthEastAsia => 6.0,
                Region::LatinAmerica => 11.0,
                Region::NorthAmerica => 7.0,
                Region::Europe => 8.0,
                Region::JapanKorea => 4.0,
            };
            (hub, CARRIERS[rng.random_range(0..CARRIERS.len())], median)
        };
        let transit = LogNormal::new(f64::ln(median_days), 0.35)
            .expect("valid")
            .sample(rng);
        let delivered = shipped + transit;
        let shipments = &mut chunk.shipments;
        shipments.order_id.append_value(order_id);
        shipments.shipped_ts.append_value(self.calendar.micros(shipped));
        shipments
            .delivered_ts
            .append_option((delivered < end).then(|| self.calendar.micros(delivered)));
        shipments.carrier.append_value(carrier);
        shipments.origin_market.append_value(origin);
        shipments.dest_market.append_value(market.code);
    }

    /// Daily spend per market and paid channel: what bought the customers that arrived,
    /// half from the plan (expected arrivals) and half from what happened, with noise.
    fn spend(&self, acquisitions: &[u32], writer: &mut RollingWriter) -> Result<()> {
        let mut rng = self.rng(u64::MAX);
        let noise = LogNormal::new(0.0, 0.25).expect("valid");
        let mut spend = Spend::new();
        for day in 0..self.options.days {
            let date = self.calendar.start + chrono::Days::new(day as u64);
            let days_since_epoch =
                (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32;
            for (m, market) in MARKETS.iter().enumerate() {
                for (c, channel) in CHANNELS.iter().enumerate() {
                    if channel.cac_usd == 0.0 {
                        continue;
                    }
                    let expected = self.options.customers as f64
                        * self.calendar.share[day as usize]
                        * market.weight
                        * channel.weight;
                    let observed =
                        acquisitions[(day as usize * MARKETS.len() + m) * CHANNELS.len() + c] as f64;
                    let usd = cents(
                        (0.5 * expected + 0.5 * observed)
                            * channel.cac_usd
                            * market.cost
                            * noise.sample(&mut rng),
                    );
                    if usd <= 0.0 {
                        continue;
                    }
                    let impressions =
                        (channel.cpm_usd > 0.0).then(|| (usd / channel.cpm_usd * 1000.0).round() as i64);
                    spend.spend_date.append_value(days_since_epoch);
                    spend.market.append_value(market.code);
                    spend.channel.append_value(channel.name);
                    spend.campaign_id.append_value(format!(
                        "{}-{}-{}q{}",
                        market.code,
                        channel.name,
                        date.year(),
                        (date.month() - 1) / 3 + 1
                    ));
                    spend.spend_usd.append_value(usd);
                    spend.impressions.append_option(impressions);
                    spend.clicks.append_option(
                        impressions.map(|i| (i as f64 * channel.ctr * noise.sample(&mut rng)).round() as i64),
                    );
                }
            }
            let batch = spend.batch(writer.schema());
            writer.write(&batch)?;
        }
        Ok(())
    }
}

/// The messaging app people share invites through, by market.
fn share_channel(market: &str, rng: &mut ChaCha8Rng) -> &'static str {
    let primary = match market {
        "JP" | "TH" => "line",
        "KR" => "kakaotalk",
        "US" | "CA" | "GB" | "DE" | "FR" => "messenger",
        _ => "whatsapp",
    };
    match rng.random_range(0..10) {
        0..=5 => primary,
        6 | 7 => "instagram",
        _ => "link",
    }
}

/// Simulates every customer on one worker thread per core and writes the chunks in customer
/// order, so the files are the same whatever the number of threads.
fn simulate_all(simulation: &Simulation, writers: &mut Writers, acquisitions: &mut [u32]) -> Result<()> {
    let customers = simulation.options.customers;
    let chunks = customers.div_ceil(CUSTOMERS_PER_CHUNK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8) as u64;
    std::thread::scope(|scope| {
        let receivers: Vec<_> = (0..workers)
            .map(|worker| {
                let (sender, receiver) = std::sync::mpsc::sync_channel::<Chunk>(1);
                scope.spawn(move || {
                    for k in (worker..chunks).step_by(workers as usize) {
                        let first = k * CUSTOMERS_PER_CHUNK;
                        let last = (first + CUSTOMERS_PER_CHUNK).min(customers);
                        let mut chunk = Chunk::new();
                        for index in first..last {
                            simulation.simulate(index, &mut chunk);
                        }
                        if sender.send(chunk).is_err() {
                            return; // the writer stopped on an error
                        }
                    }
                });
                receiver
            })
            .collect();
        for k in 0..chunks {
            let mut chunk = receivers[(k % workers) as usize]
                .recv()
                .map_err(|_| Error::Internal("a sample worker thread died".into()))?;
            for slot in &chunk.acquired {
                acquisitions[*slot] += 1;
            }
            writers.write(&mut chunk)?;
            if (k + 1) % 256 == 0 {
                tracing::info!(customers = (k + 1) * CUSTOMERS_PER_CHUNK, "generating");
            }
        }
        Ok(())
    })
}

/// Generates the sample into `options.output`, atomically: the tables are written into a
/// temporary folder beside it, which is renamed into place once complete.
pub fn generate(options: &SampleOptions) -> Result<SampleReport> {
    if options.customers == 0 || options.days == 0 {
        return Err(Error::Internal(
            "the sample needs at least one customer and one day".into(),
        ));
    }
    let output = &options.output;
    if output.exists() && !options.force {
        return Err(Error::Io {
            context: format!("generating the sample into {}", output.display()),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the folder exists; pass --force to replace it",
            ),
        });
    }
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(Error::io(format!("creating {}", parent.display())))?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sample".into());
    let draft = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&draft);

    let mut writers = Writers::new(&draft, options.rows_per_file)?;
    let simulation = Simulation::new(options);
    let mut acquisitions = vec![0u32; options.days as usize * MARKETS.len() * CHANNELS.len()];
    simulate_all(&simulation, &mut writers, &mut acquisitions)?;
    simulation.spend(&acquisitions, &mut writers.spend)?;
    let report = writers.finish()?;

    if output.exists() {
        std::fs::remove_dir_all(output).map_err(Error::io(format!("replacing {}", output.display())))?;
    }
    std::fs::rename(&draft, output)
        .map_err(Error::io(format!("moving the sample into {}", output.display())))?;
    Ok(report)
}
