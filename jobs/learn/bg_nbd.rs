//! BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way"): how many times
//! a customer will buy again, and whether they are still "alive", from three numbers each:
//! `x` repeat purchases (days with a purchase after the first), `t_x` the time from the first
//! to the last purchase, and `T` the time from the first purchase to the end of the run date.
//!
//! While alive, a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); after
//! each purchase they drop out with probability p ~ Beta(a, b). The parameters are fitted by
//! maximum likelihood ([`crate::learn::likelihood`]); `x` is a whole number, so every gamma
//! function ratio in the likelihood and its gradient is a finite product (no special functions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::learn::likelihood::{self, Bounds, Maximum};

/// One customer's purchase history, in the model's time unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct History {
    /// Repeat purchases: purchase days after the first.
    pub x: u32,
    /// Time from the first purchase to the last.
    pub t_x: f64,
    /// Time from the first purchase to the end of the observation.
    pub t: f64,
}

/// The fitted parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

/// Histories to fit on, identical ones counted once with their number as a weight (528,537
/// distinct (x, t_x, T) in days among 987,391 customers at 1M).
#[derive(Clone, Debug, Default)]
pub struct Histories {
    counts: HashMap<(u32, u64, u64), f64>,
    customers: u64,
}

impl Histories {
    pub fn add(&mut self, h: History) {
        *self
            .counts
            .entry((h.x, h.t_x.to_bits(), h.t.to_bits()))
            .or_default() += 1.0;
        self.customers += 1;
    }

    /// How many histories were added.
    pub fn customers(&self) -> u64 {
        self.customers
    }

    /// The distinct histories with their counts, in a fixed order, so the sums (and the fit)
    /// are the same bytes on every run.
    fn weighted(&self) -> Vec<(History, f64)> {
        let mut weighted: Vec<(History, f64)> = self
            .counts
            .iter()
            .map(|(&(x, t_x, t), &w)| {
                let h = History {
                    x,
                    t_x: f64::from_bits(t_x),
                    t: f64::from_bits(t),
                };
                (h, w)
            })
            .collect();
        weighted.sort_by(|(p, _), (q, _)| {
            p.x.cmp(&q.x)
                .then(p.t_x.total_cmp(&q.t_x))
                .then(p.t.total_cmp(&q.t))
        });
        weighted
    }
}

impl FromIterator<History> for Histories {
    fn from_iter<I: IntoIterator<Item = History>>(iter: I) -> Self {
        let mut histories = Histories::default();
        for h in iter {
            histories.add(h);
        }
        histories
    }
}

/// `sums[k] = sum over i < k of ln(c + i)` and `inverses[k] = sum over i < k of 1 / (c + i)`:
/// ln(Gamma(c + k) / Gamma(c)) and its derivative in c, for every whole k up to `max`.
fn rising(c: f64, max: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut sums, mut inverses) = (vec![0.0; max + 1], vec![0.0; max + 1]);
    for k in 1..=max {
        let v = c + (k - 1) as f64;
        sums[k] = sums[k - 1] + v.ln();
        inverses[k] = inverses[k - 1] + 1.0 / v;
    }
    (sums, inverses)
}

/// Histories prepared for the likelihood: times are indexed into their distinct values, so an
/// evaluation takes ln(alpha + t) once per distinct time and then one exp and one ln per
/// history (at 1M customers the 528,537 distinct histories share 731 distinct times).
struct Prepared {
    times: Vec<f64>,
    /// (x, index of T, index of t_x, weight)
    rows: Vec<(u32, usize, usize, f64)>,
    max_x: usize,
}

impl Prepared {
    fn new(weighted: &[(History, f64)]) -> Self {
        let mut times: Vec<f64> = weighted.iter().flat_map(|(h, _)| [h.t, h.t_x]).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let index = |t: f64| {
            times
                .binary_search_by(|v| v.total_cmp(&t))
                .expect("every time is listed")
        };
        let rows = weighted
            .iter()
            .map(|&(h, w)| (h.x, index(h.t), index(h.t_x), w))
            .collect();
        let max_x = weighted.iter().map(|(h, _)| h.x as usize).max().unwrap_or(0);
        Prepared { times, rows, max_x }
    }
}

impl BgNbd {
    /// The weighted mean log-likelihood of the histories and its gradient in
    /// (ln r, ln alpha, ln a, ln b).
    fn mean_log_likelihood(&self, data: &Prepared) -> (f64, Vec<f64>) {
        let BgNbd { r, alpha, a, b } = *self;
        let (ln_r, d_r) = rising(r, data.max_x);
        let (ln_b, d_b) = rising(b, data.max_x);
        let (ln_ab, d_ab) = rising(a + b, data.max_x);
        // ln(b + x - 1) and its derivative, for x >= 1
        let ln_bx: Vec<f64> = (0..=data.max_x).map(|x| (b + x as f64 - 1.0).ln()).collect();
        let ln_times: Vec<f64> = data.times.iter().map(|t| (alpha + t).ln()).collect();
        let (ln_alpha, ln_a) = (alpha.ln(), a.ln());
        let (mut total, mut weights) = (0.0, 0.0);
        let mut g = [0.0; 4];
        for &(x, t, t_x, w) in &data.rows {
            let xi = x as usize;
            let rx = r + f64::from(x);
            let (lt, ltx) = (ln_times[t], ln_times[t_x]);
            let a3 = -rx * lt;
            // The second term: dropped out right after the last purchase (only with x > 0).
            // ln(e^a3 + e^a4) and the two terms' shares, with one exp and one ln.
            let (lse, w4) = if x > 0 {
                let a4 = ln_a - ln_bx[xi] - rx * ltx;
                let e = (-(a4 - a3).abs()).exp();
                let share_of_larger = 1.0 / (1.0 + e);
                let w4 = if a4 > a3 {
                    share_of_larger
                } else {
                    1.0 - share_of_larger
                };
                (a3.max(a4) + e.ln_1p(), w4)
            } else {
                (a3, 0.0)
            };
            let w3 = 1.0 - w4;
            total += w * (ln_r[xi] + r * ln_alpha + ln_b[xi] - ln_ab[xi] + lse);
            weights += w;
            g[0] += w * (d_r[xi] + ln_alpha - w3 * lt - w4 * ltx);
            g[1] += w * (r / alpha - rx * (w3 / (alpha + data.times[t]) + w4 / (alpha + data.times[t_x])));
            g[2] += w * (-d_ab[xi] + w4 / a);
            g[3] += w * (d_b[xi] - d_ab[xi] - if x > 0 { w4 / (b + f64::from(x) - 1.0) } else { 0.0 });
        }
        let scale = [r, alpha, a, b];
        let gradient = g.iter().zip(scale).map(|(g, s)| g * s / weights).collect();
        (total / weights, gradient)
    }

    /// Fits the parameters by maximum likelihood.
    pub fn fit(histories: &Histories, bounds: &Bounds) -> Result<(BgNbd, Maximum), String> {
        let data = Prepared::new(&histories.weighted());
        let log_likelihood = |p: &[f64]| {
            let model = BgNbd {
                r: p[0].exp(),
                alpha: p[1].exp(),
                a: p[2].exp(),
                b: p[3].exp(),
            };
            model.mean_log_likelihood(&data)
        };
        let found = likelihood::maximize(&[0.0; 4], &log_likelihood, bounds)?;
        let p = &found.parameters;
        Ok((
            BgNbd {
                r: p[0],
                alpha: p[1],
                a: p[2],
                b: p[3],
            },
            found,
        ))
    }

    /// The log-likelihood of one history (for checks against the closed form).
    #[cfg(test)]
    pub(crate) fn log_likelihood(&self, h: History) -> f64 {
        self.mean_log_likelihood(&Prepared::new(&[(h, 1.0)])).0
    }

    /// `a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x)` for x > 0, else 0: the odds of
    /// having dropped out against being alive.
    fn dropout_odds(&self, h: History) -> f64 {
        if h.x == 0 {
            return 0.0;
        }
        let x = f64::from(h.x);
        self.a / (self.b + x - 1.0) * ((self.alpha + h.t) / (self.alpha + h.t_x)).powf(self.r + x)
    }

    /// P(alive at the end of the observation | history).
    pub fn p_alive(&self, h: History) -> f64 {
        1.0 / (1.0 + self.dropout_odds(h))
    }

    /// P(no purchase in the `t` after the end of the observation | history): dead already, or
    /// alive and, at the rate the history implies (Gamma(r + x, alpha + T) after it), buying
    /// nothing in `t`: 1 - P(alive) + P(alive) ((alpha + T) / (alpha + T + t))^(r + x). A
    /// customer drops out only right after a purchase, so one alive without a purchase in `t`
    /// is alive throughout.
    pub(crate) fn p_no_purchase(&self, h: History, t: f64) -> f64 {
        let alive = self.p_alive(h);
        let silent = ((self.alpha + h.t) / (self.alpha + h.t + t)).powf(self.r + f64::from(h.x));
        1.0 - alive + alive * silent
    }

    /// Expected purchases in the `t` after the end of the observation, given the history
    /// (the paper's equation 10).
    #[cfg(test)]
    pub(crate) fn expected_purchases(&self, h: History, t: f64) -> f64 {
        self.expected_purchases_at(h, &[t], &SeriesMemo::default())[0]
    }

    /// [`BgNbd::expected_purchases`] at each of `horizons`, the same bits, with what the
    /// horizons share computed once: the dropout odds, and the hypergeometric series'
    /// coefficients, which depend on the history alone ([`hypergeometric_2f1_at`]). Scoring
    /// asks some forty horizons of each customer (twelve months of CLV, the forecast's months);
    /// the series depend on x and T but not t_x, so `memo` hands one customer's series to the
    /// next with the same x and T.
    pub(crate) fn expected_purchases_at(&self, h: History, horizons: &[f64], memo: &SeriesMemo) -> Vec<f64> {
        let BgNbd { r, alpha, a, b } = *self;
        let x = f64::from(h.x);
        let (pa, pb, pc) = (r + x, b + x, a + b + x - 1.0);
        let zs: Vec<f64> = horizons
            .iter()
            .map(|&t| if t <= 0.0 { 0.0 } else { t / (alpha + h.t + t) })
            .collect();
        let first = (a + b + x - 1.0) / (a - 1.0);
        let alive = 1.0 + self.dropout_odds(h);
        horizons
            .iter()
            .zip(memo.hypergeometric_2f1_at(pa, pb, pc, &zs).iter())
            .map(|(&t, &hyp)| {
                if t <= 0.0 {
                    return 0.0;
                }
                let second = 1.0 - ((alpha + h.t) / (alpha + h.t + t)).powf(r + x) * hyp;
                first * second / alive
            })
            .collect()
    }

    /// Expected purchases of a new customer in their first `t` (the paper's equation 9): what
    /// a cohort acquired now is expected to buy, for the forecast.
    #[cfg(test)]
    pub(crate) fn expected_purchases_new(&self, t: f64) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let hyp = hypergeometric_2f1(r, b, a + b - 1.0, t / (alpha + t));
        (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * hyp)
    }
}

/// Series of [`hypergeometric_2f1_at`] already summed, by their arguments' bits: scoring asks
/// the same series of every customer with the same x and T (at 1M customers some forty series
/// each, for a few tens of thousands of distinct (x, T) per model), and a series near z = 1
/// takes hundreds of terms. Shared by the threads of one scoring pass, and dropped with it.
#[derive(Debug, Default)]
pub(crate) struct SeriesMemo {
    sums: Mutex<Series>,
}

/// Summed series by the bits of their arguments (a, b, c, then each z).
type Series = datafusion::common::HashMap<Box<[u64]>, Arc<[f64]>>;

impl SeriesMemo {
    /// [`hypergeometric_2f1_at`], the same bits, summed once per distinct arguments.
    pub(crate) fn hypergeometric_2f1_at(&self, a: f64, b: f64, c: f64, zs: &[f64]) -> Arc<[f64]> {
        let key: Vec<u64> = [a, b, c].iter().chain(zs).map(|v| v.to_bits()).collect();
        let known = self
            .sums
            .lock()
            .expect("no thread panics holding the memo")
            .get(key.as_slice())
            .cloned();
        if let Some(sums) = known {
            return sums;
        }
        let sums: Arc<[f64]> = hypergeometric_2f1_at(a, b, c, zs).into();
        self.sums
            .lock()
            .expect("no thread panics holding the memo")
            .insert(key.into_boxed_slice(), sums.clone());
        sums
    }

    /// How many distinct series were summed.
    pub fn summed(&self) -> usize {
        self.sums.lock().expect("no thread panics holding the memo").len()
    }
}

/// [`hypergeometric_2f1`] at each of `zs`, the same bits: the series' k-th term is the one
/// before times (a + k)(b + k) / ((c + k)(k + 1)) times z, so that ratio (and its division) is
/// computed once for every z, and each z's sum stops where its own series would. A z whose
/// series does not settle (rare: z near 1) goes through [`hypergeometric_2f1`] alone.
pub(crate) fn hypergeometric_2f1_at(a: f64, b: f64, c: f64, zs: &[f64]) -> Vec<f64> {
    let (mut terms, mut sums) = (vec![1.0; zs.len()], vec![1.0; zs.len()]);
    let mut open: Vec<usize> = (0..zs.len()).collect();
    for k in 0..100_000 {
        if open.is_empty() {
            break;
        }
        let k = f64::from(k);
        let ratio = (a + k) * (b + k) / ((c + k) * (k + 1.0));
        open.retain(|&i| {
            terms[i] *= ratio * zs[i];
            sums[i] += terms[i];
            terms[i].abs() > 1e-16 * sums[i].abs() || terms[i].is_nan()
        });
    }
    zs.iter()
        .zip(sums)
        .enumerate()
        .map(|(i, (&z, sum))| {
            if open.contains(&i) || !sum.is_finite() {
                hypergeometric_2f1(a, b, c, z)
            } else {
                sum
            }
        })
        .collect()
}

/// The Gauss hypergeometric function 2F1(a, b; c; z) for 0 <= z < 1, by its series; when the
/// series is slow (z near 1), through Euler's transformation
/// 2F1(a, b; c; z) = (1 - z)^(c - a - b) 2F1(c - a, c - b; c; z), whose terms shrink faster
/// when c - a - b < 0.
pub(crate) fn hypergeometric_2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    fn series(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
        let (mut term, mut sum) = (1.0, 1.0);
        for k in 0..100_000 {
            let k = f64::from(k);
            term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
            sum += term;
            if term.abs() <= 1e-16 * sum.abs() {
                return Some(sum);
            }
        }
        None
    }
    series(a, b, c, z)
        .filter(|s| s.is_finite())
        .or_else(|| series(c - a, c - b, c, z).map(|s| (1.0 - z).powf(c - a - b) * s))
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fader, Hardie and Lee's (2005) CDNOW estimates, in weeks.
    pub(crate) const CDNOW: BgNbd = BgNbd {
        r: 0.243,
        alpha: 4.414,
        a: 0.793,
        b: 2.426,
    };

    fn ln_beta(a: f64, b: f64) -> f64 {
        statrs::function::gamma::ln_gamma(a) + statrs::function::gamma::ln_gamma(b)
            - statrs::function::gamma::ln_gamma(a + b)
    }

    #[test]
    fn the_likelihood_is_the_papers_closed_form() {
        // Equation 6 of the paper, with gamma and beta functions, against the products above.
        use statrs::function::gamma::ln_gamma;
        let m = CDNOW;
        for (x, t_x, t) in [
            (0, 0.0, 38.86),
            (2, 30.43, 38.86),
            (1, 1.71, 38.86),
            (7, 29.0, 32.0),
        ] {
            let h = History { x, t_x, t };
            let xf = f64::from(x);
            let common = ln_gamma(m.r + xf) - ln_gamma(m.r) + m.r * m.alpha.ln();
            let alive = (ln_beta(m.a, m.b + xf) - ln_beta(m.a, m.b) - (m.r + xf) * (m.alpha + t).ln()).exp();
            let gone = if x > 0 {
                (ln_beta(m.a + 1.0, m.b + xf - 1.0) - ln_beta(m.a, m.b) - (m.r + xf) * (m.alpha + t_x).ln())
                    .exp()
            } else {
                0.0
            };
            let expected = common + (alive + gone).ln();
            assert!((m.log_likelihood(h) - expected).abs() < 1e-10, "{h:?}");
        }
    }

    #[test]
    fn the_gradient_is_the_likelihoods_slope() {
        let histories = [
            (
                History {
                    x: 0,
                    t_x: 0.0,
                    t: 38.86,
                },
                3.0,
            ),
            (
                History {
                    x: 2,
                    t_x: 30.43,
                    t: 38.86,
                },
                1.0,
            ),
            (
                History {
                    x: 5,
                    t_x: 12.0,
                    t: 35.0,
                },
                2.0,
            ),
        ];
        let at = |p: &[f64]| {
            BgNbd {
                r: p[0].exp(),
                alpha: p[1].exp(),
                a: p[2].exp(),
                b: p[3].exp(),
            }
            .mean_log_likelihood(&Prepared::new(&histories))
        };
        let p = [CDNOW.r.ln(), CDNOW.alpha.ln(), CDNOW.a.ln(), CDNOW.b.ln()];
        crate::learn::likelihood::assert_gradient_is_slope(&at, &p, 1e-7);
    }

    #[test]
    fn p_alive_and_expectations_follow_the_closed_forms() {
        // Worked by hand from the paper's equations 11 and 10 with the CDNOW parameters.
        let m = CDNOW;
        // No repeat purchase: alive for sure (the model only drops out after a purchase).
        assert_eq!(
            m.p_alive(History {
                x: 0,
                t_x: 0.0,
                t: 38.86
            }),
            1.0
        );
        // x = 2, t_x = 30.43, T = 38.86: odds = 0.793 / 3.426 * (43.274 / 34.844)^2.243
        let h = History {
            x: 2,
            t_x: 30.43,
            t: 38.86,
        };
        let odds = 0.793 / 3.426 * (43.274_f64 / 34.844).powf(2.243);
        assert!((m.p_alive(h) - 1.0 / (1.0 + odds)).abs() < 1e-12);
        // ... and to scipy: 1 / (1 + odds) = 0.726579
        assert!((m.p_alive(h) - 0.726579).abs() < 1e-6, "{}", m.p_alive(h));
        // Bought often and recently: more expected purchases than one who stopped long ago.
        let busy = History {
            x: 10,
            t_x: 37.0,
            t: 38.86,
        };
        let lapsed = History {
            x: 10,
            t_x: 5.0,
            t: 38.86,
        };
        assert!(m.expected_purchases(busy, 39.0) > 5.0 * m.expected_purchases(lapsed, 39.0));
        // Equation 10 by its series, summed here independently for x = 2 over 39 weeks.
        let (t, x) = (39.0, 2.0);
        let z = t / (m.alpha + h.t + t);
        let (pa, pb, pc) = (m.r + x, m.b + x, m.a + m.b + x - 1.0);
        let mut hyp = 0.0;
        let mut term = 1.0;
        for k in 0..2000 {
            hyp += term;
            let k = f64::from(k);
            term *= (pa + k) * (pb + k) / ((pc + k) * (k + 1.0)) * z;
        }
        let by_hand = (m.a + m.b + x - 1.0) / (m.a - 1.0)
            * (1.0 - ((m.alpha + h.t) / (m.alpha + h.t + t)).powf(m.r + x) * hyp)
            / (1.0 + odds);
        assert!((m.expected_purchases(h, t) - by_hand).abs() < 1e-10);
        // scipy.special.hyp2f1 in the same formula gives 1.226028
        assert!((m.expected_purchases(h, t) - 1.226028).abs() < 1e-6);
        // Over no time, nothing; over more time, more.
        assert_eq!(m.expected_purchases(h, 0.0), 0.0);
        assert!(m.expected_purchases(h, 78.0) > m.expected_purchases(h, 39.0));
    }

    #[test]
    fn the_chance_of_no_purchase_runs_from_certainty_to_the_chance_of_being_dead() {
        let m = CDNOW;
        let h = History {
            x: 2,
            t_x: 30.43,
            t: 38.86,
        };
        // Over no time nothing is bought; over ever more time only the dead buy nothing.
        assert_eq!(m.p_no_purchase(h, 0.0), 1.0);
        assert!((m.p_no_purchase(h, 1e9) - (1.0 - m.p_alive(h))).abs() < 1e-6);
        // Over a short time the chance of a purchase is the expected purchases (at most one).
        let t = 1e-6;
        let bought = 1.0 - m.p_no_purchase(h, t);
        let expected = m.expected_purchases(h, t);
        assert!(
            (bought - expected).abs() < 1e-5 * expected,
            "{bought} against {expected}"
        );
        // Longer is less likely silent; a lapsed buyer more likely than a busy one.
        assert!(m.p_no_purchase(h, 13.0) > m.p_no_purchase(h, 26.0));
        let busy = History { t_x: 38.0, ..h };
        assert!(m.p_no_purchase(h, 13.0) > m.p_no_purchase(busy, 13.0));
    }

    #[test]
    fn a_new_customer_buys_what_the_population_does() {
        // Equation 9 with the CDNOW parameters; scipy.special.hyp2f1 in the same formula gives
        // 1.860519 repeat purchases in a new customer's first 78 weeks.
        let m = CDNOW;
        let e78 = m.expected_purchases_new(78.0);
        assert!((e78 - 1.860519).abs() < 1e-6, "{e78}");
        // And it is the expectation of a history with x = 0 observed for no time.
        let h = History {
            x: 0,
            t_x: 0.0,
            t: 0.0,
        };
        assert!((m.expected_purchases(h, 78.0) - e78).abs() < 1e-9);
    }

    #[test]
    fn the_hypergeometric_function_matches_known_values() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z; 2F1(a, b; b; z) = (1 - z)^-a
        for z in [0.1, 0.5, 0.9, 0.99] {
            assert!(
                (hypergeometric_2f1(1.0, 1.0, 2.0, z) + (1.0 - z).ln() / z).abs() < 1e-9,
                "{z}"
            );
            assert!(
                (hypergeometric_2f1(0.7, 2.5, 2.5, z) - (1.0 - z).powf(-0.7)).abs() < 1e-8,
                "{z}"
            );
        }
    }

    #[test]
    fn the_hypergeometric_function_at_many_points_is_the_same_bits_as_at_each() {
        // Points whose series stop at different terms, z = 0, and z near 1 where the plain
        // series runs out of terms and Euler's transformation takes over (c - a - b < 0).
        let zs = [0.0, 0.999_999_9, 0.02, 0.5, 0.3, 0.9, 0.99, 0.75];
        for (a, b, c) in [
            (0.243, 2.426, 0.219),
            (3.2, 5.4, 4.1),
            (1.0, 1.0, 2.0),
            (12.2, 14.4, 14.2),
        ] {
            let many = hypergeometric_2f1_at(a, b, c, &zs);
            for (z, value) in zs.iter().zip(many) {
                assert_eq!(
                    value.to_bits(),
                    hypergeometric_2f1(a, b, c, *z).to_bits(),
                    "{a} {b} {c} {z}"
                );
            }
        }
        // A customer's twelve months in one call are each month's expectation in its own.
        let h = History {
            x: 4,
            t_x: 20.0,
            t: 30.0,
        };
        let months: Vec<f64> = (0..=12).map(|m| f64::from(m) * 4.35).collect();
        let expected = CDNOW.expected_purchases_at(h, &months, &SeriesMemo::default());
        assert_eq!(expected[0], 0.0);
        for (t, value) in months.iter().zip(&expected) {
            assert_eq!(value.to_bits(), CDNOW.expected_purchases(h, *t).to_bits(), "{t}");
        }
        assert!(expected.windows(2).all(|w| w[0] < w[1]), "{expected:?}");
    }

    #[test]
    fn a_memo_gives_every_history_its_own_expectations_bit_for_bit() {
        let months: Vec<f64> = (1..=12).map(|m| f64::from(m) * 4.35).collect();
        let memo = SeriesMemo::default();
        // The same x and T with other t_x share the series; another x or T must not.
        let histories = [
            (4, 20.0, 30.0),
            (4, 5.0, 30.0),
            (4, 20.0, 31.0),
            (5, 20.0, 30.0),
            (4, 29.0, 30.0),
        ];
        for _ in 0..2 {
            for (x, t_x, t) in histories {
                let h = History { x, t_x, t };
                let shared = CDNOW.expected_purchases_at(h, &months, &memo);
                let alone = CDNOW.expected_purchases_at(h, &months, &SeriesMemo::default());
                let bits = |v: &[f64]| v.iter().map(|e| e.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&shared), bits(&alone), "{h:?}");
            }
        }
        // One series per distinct (x, T): t_x does not enter it.
        assert_eq!(memo.summed(), 3);
    }
}
