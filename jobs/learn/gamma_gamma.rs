//! Gamma-Gamma spend model (Fader, Hardie and Lee 2005, "RFM and CLV"; Colombo and Jiang
//! 1999): each repeat customer's purchase values are Gamma(p, nu) with nu ~ Gamma(q, v) across
//! customers. Fitted on customers with at least one repeat purchase day, from `x` (repeat
//! purchase days) and `m` (their mean value per day); it assumes spend does not depend on
//! how often a customer buys, which [`frequency_spend_correlation`] lets the night report.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use crate::learn::likelihood::{self, Maximum};

/// The fitted parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
}

impl GammaGamma {
    /// The mean log-likelihood of (x, m) pairs (x > 0, m > 0) and its gradient in
    /// (ln p, ln q, ln v).
    fn mean_log_likelihood(&self, repeat: &[(u32, f64)]) -> (f64, Vec<f64>) {
        let GammaGamma { p, q, v } = *self;
        let (mut total, mut g) = (0.0, [0.0; 3]);
        for &(x, m) in repeat {
            let x = f64::from(x);
            let px = p * x;
            let spent = x * m + v;
            total += ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
                + q * v.ln()
                + (px - 1.0) * m.ln()
                + px * x.ln()
                - (px + q) * spent.ln();
            g[0] += x * (digamma(px + q) - digamma(px) + m.ln() + x.ln() - spent.ln());
            g[1] += digamma(px + q) - digamma(q) + v.ln() - spent.ln();
            g[2] += q / v - (px + q) / spent;
        }
        let n = repeat.len() as f64;
        let gradient = g.iter().zip([p, q, v]).map(|(g, s)| g * s / n).collect();
        (total / n, gradient)
    }

    /// Fits the parameters by maximum likelihood on (repeat purchase days, mean value per day).
    pub fn fit(repeat: &[(u32, f64)]) -> Result<(GammaGamma, Maximum), String> {
        let log_likelihood = |p: &[f64]| {
            GammaGamma {
                p: p[0].exp(),
                q: p[1].exp(),
                v: p[2].exp(),
            }
            .mean_log_likelihood(repeat)
        };
        let found = likelihood::maximize(&[0.0; 3], &log_likelihood)?;
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
    pub fn population_mean(&self) -> f64 {
        self.p * self.v / (self.q - 1.0)
    }

    /// The expected value of a customer's future purchase days given `x` repeat days with mean
    /// `m`: a weighted mean of the population's and theirs (x = 0 gives the population's).
    pub fn expected_spend(&self, x: u32, m: f64) -> f64 {
        let px = self.p * f64::from(x);
        let weight = px / (px + self.q - 1.0);
        (1.0 - weight) * self.population_mean() + weight * if x > 0 { m } else { 0.0 }
    }
}

/// Pearson correlation of repeat purchase days and mean value: the model assumes these are
/// independent, and a value far from 0 (lifetimes' docs suggest |r| > 0.3) warns that it is not.
pub fn frequency_spend_correlation(repeat: &[(u32, f64)]) -> f64 {
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
            .mean_log_likelihood(&repeat)
        };
        let p = [6.25_f64.ln(), 3.74_f64.ln(), 15.44_f64.ln()];
        crate::learn::likelihood::assert_gradient_is_slope(&at, &p, 1e-6);
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
