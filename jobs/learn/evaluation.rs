//! How good a model is, in the figures a growth team reads: ROC and PR AUC, log loss, Brier
//! score, accuracy next to the base rate, top-decile lift and capture, a calibration table,
//! and for clusters the Davies-Bouldin index.
//!
//! ROC AUC comes from linfa; the rest are not in linfa 0.8 and are small functions here, each
//! tested against a hand-worked example. `churned[i]` is the truth and `probability[i]` the
//! model's churn probability for customer `i`.

use linfa::metrics::BinaryClassification;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// The area under the ROC curve: the chance a random churner scores above a random stayer.
pub fn roc_auc(probability: &[f64], churned: &[bool]) -> f64 {
    let scores: Vec<linfa::dataset::Pr> = probability
        .iter()
        .map(|&p| linfa::dataset::Pr::new(p as f32))
        .collect();
    scores
        .as_slice()
        .roc(churned)
        .map(|roc| roc.area_under_curve() as f64)
        .unwrap_or(f64::NAN)
}

/// Average precision (the area under the precision-recall curve, step-wise as scikit-learn
/// computes it): tied scores enter together.
pub(crate) fn pr_auc(probability: &[f64], churned: &[bool]) -> f64 {
    let positives = churned.iter().filter(|&&c| c).count();
    if positives == 0 {
        return f64::NAN;
    }
    let order = descending(probability);
    let (mut true_positives, mut seen, mut area, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let score = probability[order[i]];
        while i < order.len() && probability[order[i]] == score {
            true_positives += usize::from(churned[order[i]]);
            seen += 1;
            i += 1;
        }
        let recall = true_positives as f64 / positives as f64;
        area += (recall - last_recall) * true_positives as f64 / seen as f64;
        last_recall = recall;
    }
    area
}

/// Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15].
pub(crate) fn log_loss(probability: &[f64], churned: &[bool]) -> f64 {
    let total: f64 = probability
        .iter()
        .zip(churned)
        .map(|(&p, &c)| {
            let p = p.clamp(1e-15, 1.0 - 1e-15);
            if c { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / probability.len() as f64
}

/// Mean squared error of the probabilities.
pub(crate) fn brier(probability: &[f64], churned: &[bool]) -> f64 {
    let total: f64 = probability
        .iter()
        .zip(churned)
        .map(|(&p, &c)| (p - f64::from(u8::from(c))).powi(2))
        .sum();
    total / probability.len() as f64
}

/// Share predicted right when churn is predicted at or above `threshold`.
pub fn accuracy(probability: &[f64], churned: &[bool], threshold: f64) -> f64 {
    let right = probability
        .iter()
        .zip(churned)
        .filter(|&(&p, &c)| (p >= threshold) == c)
        .count();
    right as f64 / probability.len() as f64
}

/// The churn rate: what always predicting the majority class is measured against.
pub fn base_rate(churned: &[bool]) -> f64 {
    churned.iter().filter(|&&c| c).count() as f64 / churned.len() as f64
}

/// The threshold in a grid of 0.01 steps with the best accuracy, found on training data.
pub(crate) fn best_threshold(probability: &[f64], churned: &[bool]) -> f64 {
    (1..100)
        .map(|step| step as f64 / 100.0)
        .map(|t| (t, accuracy(probability, churned, t)))
        .fold(
            (0.5, f64::MIN),
            |best, (t, a)| if a > best.1 { (t, a) } else { best },
        )
        .0
}

/// The top-scored tenth of customers (rounded up; ties broken by position): its churn rate
/// over the base rate (lift), and its share of all churners (capture rate).
pub(crate) fn top_decile(probability: &[f64], churned: &[bool]) -> (f64, f64) {
    let order = descending(probability);
    let top = order.len().div_ceil(10);
    let caught = order[..top].iter().filter(|&&i| churned[i]).count() as f64;
    let churners = churned.iter().filter(|&&c| c).count() as f64;
    let lift = (caught / top as f64) / base_rate(churned);
    (lift, caught / churners)
}

/// The customers ranked by score, top first, cut after each tenth: the points of the ROC curve
/// and the cumulative gains (lift) chart a model card draws.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decile {
    /// Share of the customers, top-scored first: 0.1 to 1.0.
    pub share: f64,
    /// Stayers among them over all stayers (the ROC curve's x).
    pub false_positive_rate: f64,
    /// Churners among them over all churners (the ROC curve's y, and the capture rate).
    pub true_positive_rate: f64,
    /// Their churn rate over the base rate.
    pub cumulative_lift: f64,
}

/// The ten [`Decile`] cuts of the ranking (each cut rounded up; ties broken by position).
pub(crate) fn deciles(probability: &[f64], churned: &[bool]) -> Vec<Decile> {
    let order = descending(probability);
    let churners = churned.iter().filter(|&&c| c).count() as f64;
    let stayers = churned.len() as f64 - churners;
    let base = base_rate(churned);
    (1..=10)
        .map(|k| {
            let top = (order.len() * k).div_ceil(10);
            let caught = order[..top].iter().filter(|&&i| churned[i]).count() as f64;
            Decile {
                share: k as f64 / 10.0,
                false_positive_rate: (top as f64 - caught) / stayers,
                true_positive_rate: caught / churners,
                cumulative_lift: (caught / top.max(1) as f64) / base,
            }
        })
        .collect()
}

/// One row of a calibration table: customers whose probability fell in `[lower, upper)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub lower: f64,
    pub upper: f64,
    pub customers: u64,
    pub mean_probability: f64,
    pub observed_churn_rate: f64,
}

/// Ten equal-width probability bins (the last one closed), empty bins left out.
pub fn calibration(probability: &[f64], churned: &[bool]) -> Vec<CalibrationBin> {
    let mut sums = [(0u64, 0.0f64, 0u64); 10];
    for (&p, &c) in probability.iter().zip(churned) {
        let bin = ((p * 10.0) as usize).min(9);
        sums[bin].0 += 1;
        sums[bin].1 += p;
        sums[bin].2 += u64::from(c);
    }
    sums.iter()
        .enumerate()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(bin, &(n, p, c))| CalibrationBin {
            lower: bin as f64 / 10.0,
            upper: (bin + 1) as f64 / 10.0,
            customers: n,
            mean_probability: p / n as f64,
            observed_churn_rate: c as f64 / n as f64,
        })
        .collect()
}

/// The Davies-Bouldin index of a clustering (lower is better): the mean over clusters of the
/// worst ratio of summed spreads to the distance between centres.
pub(crate) fn davies_bouldin(points: ArrayView2<f64>, cluster: &[usize], centres: &Array2<f64>) -> f64 {
    let k = centres.nrows();
    let mut spread = vec![0.0; k];
    let mut count = vec![0usize; k];
    for (point, &c) in points.axis_iter(Axis(0)).zip(cluster) {
        spread[c] += distance(point, centres.row(c));
        count[c] += 1;
    }
    let used: Vec<usize> = (0..k).filter(|&c| count[c] > 0).collect();
    for &c in &used {
        spread[c] /= count[c] as f64;
    }
    let worst: f64 = used
        .iter()
        .map(|&i| {
            used.iter()
                .filter(|&&j| j != i)
                .map(|&j| {
                    let apart = distance(centres.row(i), centres.row(j));
                    (spread[i] + spread[j]) / apart
                })
                .fold(0.0, f64::max)
        })
        .sum();
    worst / used.len() as f64
}

/// Euclidean distance between two rows (no copies: it runs once per customer and cluster).
pub(crate) fn distance(a: ArrayView1<f64>, b: ArrayView1<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt()
}

/// Indices by descending score, ties by ascending index (deterministic).
fn descending(probability: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probability.len()).collect();
    order.sort_by(|&a, &b| probability[b].total_cmp(&probability[a]).then(a.cmp(&b)));
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    const P: [f64; 6] = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2];
    const Y: [bool; 6] = [true, true, false, true, false, false];

    #[test]
    fn roc_auc_counts_ordered_pairs() {
        // Churners score 0.9, 0.8, 0.6; stayers 0.7, 0.4, 0.2: 8 of 9 pairs are in order.
        assert!((roc_auc(&P, &Y) - 8.0 / 9.0).abs() < 1e-6, "{}", roc_auc(&P, &Y));
        assert!((roc_auc(&[0.1, 0.9], &[false, true]) - 1.0).abs() < 1e-6);
        assert!(roc_auc(&[0.9, 0.1], &[false, true]).abs() < 1e-6);
    }

    #[test]
    fn pr_auc_is_average_precision() {
        // Churners found at ranks 1, 2, 4: precision 1, 1, 3/4, each a third of recall.
        assert!((pr_auc(&P, &Y) - (1.0 + 1.0 + 0.75) / 3.0).abs() < 1e-12);
        // Tied scores enter together: all tied means precision = base rate.
        assert!((pr_auc(&[0.5; 4], &[true, false, false, false]) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn log_loss_and_brier_by_hand() {
        let p = [0.8, 0.3];
        let y = [true, false];
        assert!((log_loss(&p, &y) - (-(0.8f64.ln()) - 0.7f64.ln()) / 2.0).abs() < 1e-12);
        assert!((brier(&p, &y) - (0.04 + 0.09) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn accuracy_threshold_and_base_rate() {
        assert!((accuracy(&P, &Y, 0.5) - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(base_rate(&Y), 0.5);
        // Any threshold in (0.4, 0.6] gives 5/6; the first such step is 0.41.
        assert!((best_threshold(&P, &Y) - 0.41).abs() < 1e-12);
    }

    #[test]
    fn top_decile_of_six_is_one_customer() {
        let (lift, capture) = top_decile(&P, &Y);
        assert!((lift - 2.0).abs() < 1e-12);
        assert!((capture - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn deciles_walk_the_roc_curve_to_its_corner() {
        // Ten customers, the top three churners, then one more at the bottom.
        let probability: Vec<f64> = (0..10).map(|i| 1.0 - i as f64 / 10.0).collect();
        let churned = [true, true, true, false, false, false, false, false, false, true];
        let d = deciles(&probability, &churned);
        assert_eq!(d.len(), 10);
        assert_eq!((d[0].true_positive_rate, d[0].false_positive_rate), (0.25, 0.0));
        assert_eq!((d[2].true_positive_rate, d[2].false_positive_rate), (0.75, 0.0));
        assert_eq!(
            (d[3].true_positive_rate, d[3].false_positive_rate),
            (0.75, 1.0 / 6.0)
        );
        assert_eq!((d[9].true_positive_rate, d[9].false_positive_rate), (1.0, 1.0));
        // Lift: the top tenth churns at 100% against a 40% base rate; everyone, at the base.
        assert!((d[0].cumulative_lift - 2.5).abs() < 1e-12);
        assert!((d[9].cumulative_lift - 1.0).abs() < 1e-12);
    }

    #[test]
    fn calibration_bins_by_tenths() {
        let bins = calibration(&[0.05, 0.15, 0.12, 1.0], &[false, true, false, true]);
        assert_eq!(bins.len(), 3);
        assert_eq!((bins[1].lower, bins[1].customers), (0.1, 2));
        assert!((bins[1].mean_probability - 0.135).abs() < 1e-12);
        assert_eq!(bins[1].observed_churn_rate, 0.5);
        assert_eq!((bins[2].lower, bins[2].customers), (0.9, 1));
    }

    #[test]
    fn davies_bouldin_by_hand() {
        // Two clusters of two points at distance 1 from their centres, centres 10 apart.
        let points = array![[0.0, 1.0], [0.0, -1.0], [10.0, 1.0], [10.0, -1.0]];
        let centres = array![[0.0, 0.0], [10.0, 0.0]];
        assert!((davies_bouldin(points.view(), &[0, 0, 1, 1], &centres) - 0.2).abs() < 1e-12);
    }
}
