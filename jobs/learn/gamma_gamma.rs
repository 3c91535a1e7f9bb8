//! Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV"; Colombo and Jiang
//! 1999): each repeat customer's purchase values are Gamma(p, nu) with nu ~ Gamma(q, v) across
//! customers. Fitted on customers with at least one repeat purchase day, from `x` (repeat
//! purchase days) and `m` (their mean value per day); it assumes spend does not depend on
//! how often a customer buys, which [`frequency_spend_correlation`] lets the night report.
//!
//! Spend must be positive (ln m enters the likelihood): repeat customers whose mean is zero or
//! less (free or fully refunded purchases) are left out of the fit, as lifetimes refuses them,
//! and scored like everyone else. Where the fit fails (a bound reached, no convergence, or
//! q <= 1: a tail of spend so heavy that the population's mean is infinite under the model),
//! [`fit_spend`] falls back to each customer's observed mean shrunk toward the scope's.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::learn::likelihood::{self, Bounds, Maximum};

/// The fitted parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

/// Repeat customers prepared for the likelihood: what depends only on the data is summed once,
/// and the gamma functions are evaluated once per distinct `x`, so an evaluation costs one
/// logarithm per customer rather than several gamma functions.
struct Prepared {
    /// Each distinct x with the number of customers who have it.
    by_x: Vec<(f64, f64)>,
    /// x_i and x_i * m_i per customer.
    x: Vec<f64>,
    spent: Vec<f64>,
    /// sum of ln m_i and of x_i ln m_i.
    sum_ln_m: f64,
    sum_x_ln_m: f64,
}

impl Prepared {
    fn new(repeat: &[(u32, f64)]) -> Self {
        let mut counts = std::collections::BTreeMap::<u32, f64>::new();
        let (mut sum_ln_m, mut sum_x_ln_m) = (0.0, 0.0);
        for &(x, m) in repeat {
            *counts.entry(x).or_default() += 1.0;
            sum_ln_m += m.ln();
            sum_x_ln_m += f64::from(x) * m.ln();
        }
        Prepared {
            by_x: counts.into_iter().map(|(x, n)| (f64::from(x), n)).collect(),
            x: repeat.iter().map(|(x, _)| f64::from(*x)).collect(),
            spent: repeat.iter().map(|(x, m)| f64::from(*x) * m).collect(),
            sum_ln_m,
            sum_x_ln_m,
        }
    }
}

impl GammaGamma {
    /// The mean log-likelihood of the repeat customers and its gradient in (ln p, ln q, ln v).
    /// Per customer: ln Gamma(px + q) - ln Gamma(px) - ln Gamma(q) + q ln v + (px - 1) ln m
    /// + px ln x - (px + q) ln(x m + v).
    fn mean_log_likelihood(&self, data: &Prepared) -> (f64, Vec<f64>) {
        let GammaGamma { p, q, v } = *self;
        let n = data.x.len() as f64;
        let (mut total, mut g) = (0.0, [0.0; 3]);
        for &(x, count) in &data.by_x {
            let px = p * x;
            total += count * (ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q) + px * x.ln());
            g[0] += count * x * (digamma(px + q) - digamma(px) + x.ln());
            g[1] += count * (digamma(px + q) - digamma(q));
        }
        let (mut sum_ln_s, mut sum_x_ln_s, mut sum_inv, mut sum_x_inv) = (0.0, 0.0, 0.0, 0.0);
        for (&x, &spent) in data.x.iter().zip(&data.spent) {
            let s = spent + v;
            let ln_s = s.ln();
            sum_ln_s += ln_s;
            sum_x_ln_s += x * ln_s;
            sum_inv += 1.0 / s;
            sum_x_inv += x / s;
        }
        total += n * q * v.ln() + p * data.sum_x_ln_m - data.sum_ln_m - p * sum_x_ln_s - q * sum_ln_s;
        g[0] += data.sum_x_ln_m - sum_x_ln_s;
        g[1] += n * v.ln() - sum_ln_s;
        g[2] = n * q / v - p * sum_x_inv - q * sum_inv;
        let gradient = g.iter().zip([p, q, v]).map(|(g, s)| g * s / n).collect();
        (total / n, gradient)
    }

    /// Fits the parameters by maximum likelihood on (repeat purchase days, mean value per day),
    /// every mean positive.
    pub fn fit(repeat: &[(u32, f64)], bounds: &Bounds) -> Result<(GammaGamma, Maximum), String> {
        let data = Prepared::new(repeat);
        let log_likelihood = |p: &[f64]| {
            GammaGamma {
                p: p[0].exp(),
                q: p[1].exp(),
                v: p[2].exp(),
            }
            .mean_log_likelihood(&data)
        };
        let found = likelihood::maximize(&[0.0; 3], &log_likelihood, bounds)?;
        let p = &found.parameters;
        let model = GammaGamma {
            p: p[0],
            q: p[1],
            v: p[2],
        };
        if model.q <= 1.0 {
            return Err(format!(
                "q = {:.3} is at most 1: the population's mean spend is infinite under the fitted model",
                model.q
            ));
        }
        Ok((model, found))
    }

    /// The population's mean spend per purchase day: E(Z) = p v / (q - 1).
    pub(crate) fn population_mean(&self) -> f64 {
        self.p * self.v / (self.q - 1.0)
    }

    /// The expected value of a customer's future purchase days given `x` repeat days with mean
    /// `m`: a weighted mean of the population's and theirs (x = 0 gives the population's).
    pub(crate) fn expected_spend(&self, x: u32, m: f64) -> f64 {
        let px = self.p * f64::from(x);
        let weight = px / (px + self.q - 1.0);
        (1.0 - weight) * self.population_mean() + weight * if x > 0 { m } else { 0.0 }
    }
}

/// How a scope's customers' future spend per purchase day is expected.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum SpendModel {
    /// Gamma-Gamma, fitted on the repeat customers with a positive mean.
    GammaGamma {
        #[serde(flatten)]
        parameters: GammaGamma,
        mean_log_likelihood: f64,
    },
    /// The fallback where Gamma-Gamma cannot be fitted: a customer's mean over x repeat days
    /// weighs x against `prior_days` days at the scope's mean spend per repeat day, the same
    /// shrinkage Gamma-Gamma makes with a weight of (q - 1) / p days.
    ObservedMean {
        mean_usd: f64,
        prior_days: f64,
        /// Why Gamma-Gamma was not used, as the fit said it.
        reason: String,
    },
}

impl SpendModel {
    /// The expected spend of a customer's future purchase days, given `x` repeat days with
    /// mean `m` (x = 0 gives the scope's).
    pub(crate) fn expected_spend(&self, x: u32, m: f64) -> f64 {
        match self {
            SpendModel::GammaGamma { parameters, .. } => parameters.expected_spend(x, m),
            SpendModel::ObservedMean {
                mean_usd, prior_days, ..
            } => {
                let x = f64::from(x);
                let own = if x > 0.0 { x * m } else { 0.0 };
                (own + prior_days * mean_usd) / (x + prior_days)
            }
        }
    }

    /// The Gamma-Gamma parameters, where the model is Gamma-Gamma.
    pub fn gamma_gamma(&self) -> Option<&GammaGamma> {
        match self {
            SpendModel::GammaGamma { parameters, .. } => Some(parameters),
            SpendModel::ObservedMean { .. } => None,
        }
    }
}

/// The spend model of one scope from its repeat customers' (repeat purchase days, mean value
/// per day): Gamma-Gamma on those with a positive mean, else the observed-mean fallback with
/// `prior_days`.
pub(crate) fn fit_spend(repeat: &[(u32, f64)], bounds: &Bounds, prior_days: f64) -> SpendModel {
    let positive: Vec<(u32, f64)> = repeat.iter().copied().filter(|&(_, m)| m > 0.0).collect();
    match GammaGamma::fit(&positive, bounds) {
        Ok((parameters, found)) => SpendModel::GammaGamma {
            parameters,
            mean_log_likelihood: found.mean_log_likelihood,
        },
        Err(reason) => SpendModel::ObservedMean {
            mean_usd: mean_per_repeat_day(repeat),
            prior_days,
            reason,
        },
    }
}

/// The scope's mean spend per repeat purchase day: sum of x m over sum of x.
fn mean_per_repeat_day(repeat: &[(u32, f64)]) -> f64 {
    let (spent, days) = repeat.iter().fold((0.0, 0.0), |(spent, days), &(x, m)| {
        (spent + f64::from(x) * m, days + f64::from(x))
    });
    if days > 0.0 { spent / days } else { 0.0 }
}

/// How many repeat customers' means are zero or less, which the fit leaves out.
pub(crate) fn non_positive_spend(repeat: &[(u32, f64)]) -> usize {
    repeat.iter().filter(|&&(_, m)| m <= 0.0).count()
}

/// Pearson correlation of repeat purchase days and mean value: the model assumes these are
/// independent, and a value far from 0 (lifetimes' docs suggest |r| > 0.3) warns that it is not.
pub(crate) fn frequency_spend_correlation(repeat: &[(u32, f64)]) -> f64 {
    let n = repeat.len() as f64;
    let mean_x = repeat.iter().map(|(x, _)| f64::from(*x)).sum::<f64>() / n;
    let mean_m = repeat.iter().map(|(_, m)| m).sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, m) in repeat {
        let (dx, dm) = (f64::from(x) - mean_x, m - mean_m);
        sxy += dx * dm;
        sxx += dx * dx;
        syy += dm * dm;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_is_the_likelihoods_slope() {
        let repeat = [(1, 11.77), (2, 22.35), (5, 40.0), (3, 9.5)];
        let at = |p: &[f64]| {
            GammaGamma {
                p: p[0].exp(),
                q: p[1].exp(),
                v: p[2].exp(),
            }
            .mean_log_likelihood(&Prepared::new(&repeat))
        };
        let p = [6.25_f64.ln(), 3.74_f64.ln(), 15.44_f64.ln()];
        crate::learn::likelihood::assert_gradient_is_slope(&at, &p, 1e-6);
    }

    #[test]
    fn the_likelihood_is_the_closed_form_per_customer() {
        // The sums by x and by customer against the per-customer formula, term by term.
        let repeat: [(u32, f64); 4] = [(1, 11.77), (2, 22.35), (5, 40.0), (2, 9.5)];
        let m = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        let by_hand: f64 = repeat
            .iter()
            .map(|&(x, z)| {
                let (x, px) = (f64::from(x), m.p * f64::from(x));
                ln_gamma(px + m.q) - ln_gamma(px) - ln_gamma(m.q)
                    + m.q * m.v.ln()
                    + (px - 1.0) * z.ln()
                    + px * x.ln()
                    - (px + m.q) * (x * z + m.v).ln()
            })
            .sum::<f64>()
            / 4.0;
        assert!((m.mean_log_likelihood(&Prepared::new(&repeat)).0 - by_hand).abs() < 1e-12);
    }

    #[test]
    fn expected_spend_shrinks_a_customers_mean_toward_the_population() {
        let m = GammaGamma {
            p: 6.25,
            q: 3.74,
            v: 15.44,
        };
        // p v / (q - 1) = 6.25 * 15.44 / 2.74
        assert!((m.population_mean() - 35.2190).abs() < 1e-4);
        // one repeat day at $100: weight p / (p + q - 1) = 6.25 / 8.99
        let w = 6.25 / 8.99;
        assert!((m.expected_spend(1, 100.0) - ((1.0 - w) * 35.2190 + w * 100.0)).abs() < 1e-3);
        // more repeat days pull it closer to their own mean
        assert!(m.expected_spend(10, 100.0) > m.expected_spend(1, 100.0));
        assert_eq!(m.expected_spend(0, 0.0), m.population_mean());
    }

    /// Generous bounds for the fits below.
    const BOUNDS: Bounds = Bounds {
        evaluations: 5_000,
        seconds: 600.0,
    };

    /// Repeat customers whose spend per day is Gamma(p, nu) with nu ~ Gamma(q, v): x from 1 to
    /// 6, a fixed seed.
    fn drawn(p: f64, q: f64, v: f64, customers: usize) -> Vec<(u32, f64)> {
        use rand::SeedableRng;
        use rand_distr::{Distribution, Gamma};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let rates = Gamma::new(q, 1.0 / v).unwrap();
        (0..customers)
            .map(|i| {
                let x = 1 + (i % 6) as u32;
                let nu: f64 = rates.sample(&mut rng);
                let day = Gamma::new(p, 1.0 / nu).unwrap();
                let total: f64 = (0..x).map(|_| day.sample(&mut rng)).sum();
                (x, total / f64::from(x))
            })
            .collect()
    }

    #[test]
    fn a_zero_mean_spend_is_left_out_of_the_fit() {
        // ln 0 makes the likelihood -inf everywhere: the fit on such data is refused at once
        // (it hung the night on CDNOW master, whose every month-end has one such customer) ...
        let mut repeat = drawn(6.0, 4.0, 15.0, 3_000);
        let without = fit_spend(&repeat, &BOUNDS, 1.0);
        repeat.push((2, 0.0));
        let error = GammaGamma::fit(&repeat, &BOUNDS).unwrap_err();
        assert!(error.contains("not finite where the fit starts"), "{error}");
        // ... and the spend model leaves the customer out: the same fit as without them.
        assert_eq!(non_positive_spend(&repeat), 1);
        let with = fit_spend(&repeat, &BOUNDS, 1.0);
        assert!(with.gamma_gamma().is_some(), "{with:?}");
        assert_eq!(with, without);
    }

    #[test]
    fn the_fit_recovers_the_parameters_it_was_drawn_from() {
        let model = fit_spend(&drawn(6.0, 4.0, 15.0, 20_000), &BOUNDS, 1.0);
        let fitted = model.gamma_gamma().expect("a fit");
        // p v / (q - 1) is what the data pin down best: the population's mean, 30.
        assert!((fitted.population_mean() - 30.0).abs() < 1.5, "{fitted:?}");
        assert!((fitted.q - 4.0).abs() < 1.0, "{fitted:?}");
    }

    #[test]
    fn spend_too_heavy_tailed_for_a_finite_mean_falls_back_to_the_observed_mean() {
        // q = 0.7: under the model the population's mean spend is infinite.
        let repeat = drawn(6.0, 0.7, 15.0, 5_000);
        let model = fit_spend(&repeat, &BOUNDS, 1.0);
        let SpendModel::ObservedMean {
            mean_usd,
            prior_days,
            reason,
        } = &model
        else {
            panic!("{model:?}");
        };
        assert!(reason.contains("is at most 1"), "{reason}");
        assert_eq!(*prior_days, 1.0);
        let by_hand = repeat.iter().map(|(x, m)| f64::from(*x) * m).sum::<f64>()
            / repeat.iter().map(|(x, _)| f64::from(*x)).sum::<f64>();
        assert!((mean_usd - by_hand).abs() < 1e-9 * by_hand);
        // Three repeat days at $100 against one day at the scope's mean.
        let expected = (3.0 * 100.0 + by_hand) / 4.0;
        assert!((model.expected_spend(3, 100.0) - expected).abs() < 1e-9);
        assert_eq!(model.expected_spend(0, 0.0), *mean_usd);
    }

    #[test]
    fn a_fit_stopped_at_its_bound_falls_back_to_the_observed_mean() {
        let repeat = drawn(6.0, 4.0, 15.0, 3_000);
        let tight = Bounds {
            evaluations: 3,
            seconds: 600.0,
        };
        let model = fit_spend(&repeat, &tight, 2.0);
        let SpendModel::ObservedMean {
            reason, prior_days, ..
        } = &model
        else {
            panic!("{model:?}");
        };
        assert!(
            reason.starts_with("stopped at its bound of 3 evaluations"),
            "{reason}"
        );
        assert_eq!(*prior_days, 2.0);
    }

    #[test]
    fn the_correlation_sees_spend_that_grows_with_frequency() {
        let dependent: Vec<(u32, f64)> = (1..50).map(|x| (x, 10.0 + f64::from(x))).collect();
        assert!(frequency_spend_correlation(&dependent) > 0.99);
        let flat: Vec<(u32, f64)> = (1..50)
            .map(|x| (x, if x % 2 == 0 { 10.0 } else { 20.0 }))
            .collect();
        assert!(frequency_spend_correlation(&flat).abs() < 0.1);
    }
}
