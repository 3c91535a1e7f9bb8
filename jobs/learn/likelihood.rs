//! Maximum likelihood for the lifetime-value models: L-BFGS (argmin, More-Thuente line search)
//! over the logs of strictly positive parameters, so the search is unconstrained and every
//! step stays in the model's domain. The caller gives the mean log-likelihood and its gradient
//! in the log-parameters; the fit is refused unless the gradient has vanished at the end (under
//! 1e-6, or under 1e-4 where no step improves on the point any more: the likelihood's own
//! precision).
//!
//! Every fit is bounded ([`Bounds`]): in iterations per run, in evaluations the optimizer asks
//! for (argmin does not cap the line search's, and More-Thuente can ask without end where the
//! likelihood is not finite) and in wall time. A fit that reaches a bound is refused with
//! the bound named, like any other fit that does not converge; the callers decide what a
//! refused fit means for the night.

use std::collections::VecDeque;
use std::sync::Mutex;

use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use ndarray::Array1;

/// The largest gradient entry (of the mean log-likelihood, in log-parameters) a fit may end
/// with: far below what moves a parameter's third significant digit.
const GRADIENT_TOLERANCE: f64 = 1e-6;

/// A mean log-likelihood with its gradient, both in the log-parameters.
pub(crate) type LogLikelihood<'a> = dyn Fn(&[f64]) -> (f64, Vec<f64>) + Sync + 'a;

/// The negated log-likelihood argmin minimizes. argmin asks for the cost and the gradient
/// separately, and L-BFGS asks for the gradient again at the point its line search accepted:
/// three passes over every customer for one point. Both come from one pass, so the last points'
/// results are kept and reused (the same numbers, a third of the work).
struct Negated<'a> {
    log_likelihood: &'a LogLikelihood<'a>,
    progress: &'a Mutex<Progress>,
    budget: &'a Budget,
}

/// How far a fit may go before it is stopped (see the module's documentation); each L-BFGS
/// run also stops after [`MAX_ITERATIONS`].
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Bounds {
    /// Evaluations the optimizer asks for over the whole fit (about three per pass over the
    /// data: the cost, the gradient, the gradient again where a step is accepted).
    pub evaluations: u64,
    /// Wall time of the whole fit.
    pub seconds: f64,
}

/// Iterations of one L-BFGS run (a fit makes at most [`RESTARTS`] runs).
const MAX_ITERATIONS: u64 = 500;

/// What is left of a fit's [`Bounds`]: its evaluations so far (over every run) and its
/// deadline.
struct Budget {
    bounds: Bounds,
    evaluations: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

impl Budget {
    fn new(bounds: Bounds) -> Self {
        Budget {
            bounds,
            evaluations: Default::default(),
            started: std::time::Instant::now(),
        }
    }

    /// Counts one evaluation; the bound reached, if any, in words.
    fn spend(&self) -> Result<(), Bounded> {
        let evaluations = self
            .evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if evaluations > self.bounds.evaluations {
            return Err(Bounded(format!("{} evaluations", self.bounds.evaluations)));
        }
        if self.started.elapsed().as_secs_f64() > self.bounds.seconds {
            return Err(Bounded(format!("{} seconds", self.bounds.seconds)));
        }
        Ok(())
    }

    #[cfg(test)]
    fn evaluations(&self) -> u64 {
        self.evaluations.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The error that stops a run at one of its [`Bounds`].
#[derive(Clone, Debug, thiserror::Error)]
#[error("stopped at its bound of {0}")]
struct Bounded(String);

/// A point with the log-likelihood and its gradient there.
type Evaluated = (Vec<f64>, f64, Vec<f64>);

/// How many evaluated points [`Progress`] keeps.
const RECENT_POINTS: usize = 2;

/// What one L-BFGS run has seen: its last points, its passes over the data and its highest
/// point.
#[derive(Default)]
struct Progress {
    recent: VecDeque<Evaluated>,
    passes: u64,
    /// The highest point evaluated, its log-likelihood and its largest gradient entry.
    best: Option<(Vec<f64>, f64, f64)>,
    /// Passes since `best` last rose.
    since_best: u64,
    /// The bound that stopped the run, if one did.
    bounded: Option<Bounded>,
}

impl Progress {
    /// Whether the run has stalled: its highest point is within the likelihood's precision of
    /// the top (gradient at most [`FLOAT_PRECISION_GRADIENT`]) and has not been topped for
    /// [`STALLED_PASSES`] passes.
    fn stalled(&self) -> bool {
        let near = matches!(self.best, Some((_, _, g)) if g <= FLOAT_PRECISION_GRADIENT);
        near && self.since_best >= STALLED_PASSES
    }
}

/// Passes without a higher point after which a run near the top stops. There the
/// likelihood's changes fall below its own rounding (a mean over every customer), and
/// More-Thuente, which argmin does not cap, then halves its step some 30 times per iteration
/// looking for a decrease that is not there, for thousands of passes where a fit otherwise
/// needs 20-30, and a gain in the mean log-likelihood below its rounding. An ordinary line
/// search needs one to three passes.
const STALLED_PASSES: u64 = 10;

/// The error that stops a stalled run (see [`STALLED_PASSES`]).
#[derive(Debug, thiserror::Error)]
#[error("no higher point in {STALLED_PASSES} passes near the top")]
struct Stalled;

impl Negated<'_> {
    /// The log-likelihood and its gradient at `p`, from the recent points when `p` is one; an
    /// error once the run has stalled at a point that meets the tolerance.
    fn at(&self, p: &Array1<f64>) -> Result<(f64, Vec<f64>), argmin::core::Error> {
        let p = p.as_slice().expect("a contiguous parameter vector");
        let mut progress = self.progress.lock().expect("the progress' lock");
        // Counted before the recent points are looked up: a line search stuck on one point
        // asks for it again and again without a pass over the data.
        if let Err(bounded) = self.budget.spend() {
            progress.bounded = Some(bounded.clone());
            return Err(bounded.into());
        }
        if let Some((_, value, gradient)) = progress.recent.iter().find(|(q, _, _)| q.as_slice() == p) {
            return Ok((*value, gradient.clone()));
        }
        let (value, gradient) = (self.log_likelihood)(p);
        progress.passes += 1;
        let higher = match &progress.best {
            Some((_, best, _)) => value > *best,
            None => value.is_finite(),
        };
        if higher {
            progress.best = Some((p.to_vec(), value, steepest(&gradient)));
            progress.since_best = 0;
        } else {
            progress.since_best += 1;
            if progress.stalled() {
                return Err(Stalled.into());
            }
        }
        if progress.recent.len() == RECENT_POINTS {
            progress.recent.pop_front();
        }
        progress.recent.push_back((p.to_vec(), value, gradient.clone()));
        Ok((value, gradient))
    }
}

/// The largest entry of a gradient, in absolute value.
fn steepest(gradient: &[f64]) -> f64 {
    gradient.iter().fold(0.0_f64, |m, g| m.max(g.abs()))
}

impl CostFunction for Negated<'_> {
    type Param = Array1<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> Result<f64, argmin::core::Error> {
        let (value, _) = self.at(p)?;
        Ok(if value.is_finite() { -value } else { f64::INFINITY })
    }
}

impl Gradient for Negated<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;

    fn gradient(&self, p: &Self::Param) -> Result<Array1<f64>, argmin::core::Error> {
        let (_, gradient) = self.at(p)?;
        Ok(gradient.into_iter().map(|g| -g).collect())
    }
}

/// A maximum: the parameters (back from logs), the mean log-likelihood there, the iterations.
#[derive(Clone, Debug, PartialEq)]
pub struct Maximum {
    pub parameters: Vec<f64>,
    pub mean_log_likelihood: f64,
    pub iterations: u64,
}

/// Maximizes `log_likelihood` over log-parameters from `start` (the logs of the parameters),
/// within `bounds`. The error says why, in words a model card can carry: stopped at a bound,
/// did not converge, or left the domain.
pub(crate) fn maximize(
    start: &[f64],
    log_likelihood: &LogLikelihood<'_>,
    bounds: &Bounds,
) -> Result<Maximum, String> {
    let budget = Budget::new(*bounds);
    let (value, gradient) = log_likelihood(start);
    if !value.is_finite() || gradient.iter().any(|g| !g.is_finite()) {
        return Err(format!(
            "the log-likelihood is not finite where the fit starts (mean log-likelihood {value}): a value outside the model's domain in the data"
        ));
    }
    let mut from = start.to_vec();
    let mut iterations = 0;
    // L-BFGS can stop short of the tolerance when its curvature memory goes stale near the top
    // (seen at 1M and 100k on the peer's input: Gamma-Gamma ending with gradients of 1e-6 to
    // 2e-5); a fresh start from where it stopped finishes the climb. A fit that converges on
    // the first run is not touched.
    for _ in 0..RESTARTS {
        let started = std::time::Instant::now();
        let Run {
            best,
            iterations: used,
            passes,
            stalled,
            bounded,
        } = run_lbfgs(&from, log_likelihood, &budget)?;
        iterations += used;
        if let Some(bounded) = bounded {
            return Err(format!("{bounded} after {iterations} iterations"));
        }
        let (value, gradient) = log_likelihood(&best);
        let steepest = steepest(&gradient);
        let seconds = started.elapsed().as_secs_f64();
        tracing::debug!(
            iterations = used,
            passes,
            seconds,
            steepest,
            value,
            stalled,
            "an L-BFGS run ended"
        );
        if !value.is_finite() || gradient.iter().any(|g| !g.is_finite()) {
            return Err(format!(
                "left the model's domain after {iterations} iterations (mean log-likelihood {value})"
            ));
        }
        // No step improves on the point (a fresh start's first one, or the run's last ten):
        // the top to the likelihood's own precision (its special functions and float sums over
        // every customer), which a gradient of up to FLOAT_PRECISION_GRADIENT shows (MX and PH
        // on the peer's 100k input: 6.8e-6 and 1.3e-6, restart after restart).
        let at_precision = (best == from || stalled) && steepest <= FLOAT_PRECISION_GRADIENT;
        if steepest <= GRADIENT_TOLERANCE || at_precision {
            return Ok(Maximum {
                parameters: best.iter().map(|p| p.exp()).collect(),
                mean_log_likelihood: value,
                iterations,
            });
        }
        if best == from {
            return Err(format!(
                "did not converge after {iterations} iterations (mean log-likelihood {value}, largest gradient {steepest:e}; no progress from a restart)"
            ));
        }
        from = best;
    }
    let (value, gradient) = log_likelihood(&from);
    let steepest = steepest(&gradient);
    Err(format!(
        "did not converge after {iterations} iterations in {RESTARTS} runs (mean log-likelihood {value}, largest gradient {steepest:e})"
    ))
}

/// The largest gradient accepted where L-BFGS, restarted, cannot move at all: the likelihood's
/// own numerical noise, far below what moves a parameter's fourth significant digit.
const FLOAT_PRECISION_GRADIENT: f64 = 1e-4;

/// How many times L-BFGS may start again from where it stopped.
const RESTARTS: usize = 4;

/// What one L-BFGS run ended with.
struct Run {
    /// The best log-parameters it found.
    best: Vec<f64>,
    iterations: u64,
    /// Its passes over the data.
    passes: u64,
    /// Whether it stalled near the top (see [`STALLED_PASSES`]).
    stalled: bool,
    /// The bound that stopped it, if one did.
    bounded: Option<Bounded>,
}

/// One L-BFGS run from `start`, within what is left of `budget`.
fn run_lbfgs(start: &[f64], log_likelihood: &LogLikelihood<'_>, budget: &Budget) -> Result<Run, String> {
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(GRADIENT_TOLERANCE / 10.0)
        .and_then(|s| s.with_tolerance_cost(0.0))
        .map_err(|e| e.to_string())?;
    let progress = Mutex::new(Progress::default());
    let problem = Negated {
        log_likelihood,
        progress: &progress,
        budget,
    };
    let result = Executor::new(problem, solver)
        .configure(|state| {
            state
                .param(Array1::from(start.to_vec()))
                .max_iters(MAX_ITERATIONS)
        })
        .run();
    let result = match result {
        Ok(result) => result,
        Err(error) => {
            let progress = progress.lock().expect("the progress' lock");
            return match &progress.bounded {
                Some(bounded) => Ok(Run {
                    best: start.to_vec(),
                    iterations: 0,
                    passes: progress.passes,
                    stalled: false,
                    bounded: Some(bounded.clone()),
                }),
                None => Err(format!("the optimizer failed: {error}")),
            };
        }
    };
    let state = result.state();
    let progress = std::mem::take(&mut *progress.lock().expect("the progress' lock"));
    // A stalled run ends (argmin reports the error as the solver's exit) at the highest point
    // seen, which is near the top.
    let stalled = progress.stalled();
    let best = match (stalled, progress.best) {
        (true, Some((point, _, _))) => point,
        _ => state
            .get_best_param()
            .ok_or("the optimizer returned no parameters")?
            .to_vec(),
    };
    Ok(Run {
        best,
        iterations: state.get_iter(),
        passes: progress.passes,
        stalled,
        bounded: progress.bounded,
    })
}

/// Asserts that a log-likelihood's gradient at `at` is its slope, by central differences.
#[cfg(test)]
pub(crate) fn assert_gradient_is_slope(log_likelihood: &LogLikelihood<'_>, at: &[f64], tolerance: f64) {
    let (_, gradient) = log_likelihood(at);
    for i in 0..at.len() {
        let h = 1e-6;
        let (mut up, mut down) = (at.to_vec(), at.to_vec());
        up[i] += h;
        down[i] -= h;
        let slope = (log_likelihood(&up).0 - log_likelihood(&down).0) / (2.0 * h);
        assert!(
            (gradient[i] - slope).abs() < tolerance,
            "parameter {i}: gradient {} against slope {slope}",
            gradient[i]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bounds no test below comes near.
    const GENEROUS: Bounds = Bounds {
        evaluations: 100_000,
        seconds: 600.0,
    };

    #[test]
    fn finds_the_maximum_of_a_known_likelihood() {
        // Exponential waiting times with mean 4: the maximum-likelihood rate is 1 / mean.
        let times = [1.0, 3.0, 4.0, 8.0];
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let log_likelihood = |p: &[f64]| {
            let rate = p[0].exp();
            // mean of ln(rate) - rate * t, and its derivative in ln(rate)
            (rate.ln() - rate * mean, vec![1.0 - rate * mean])
        };
        let found = maximize(&[3.0], &log_likelihood, &GENEROUS).unwrap();
        assert!((found.parameters[0] - 0.25).abs() < 1e-7, "{found:?}");
    }

    #[test]
    fn a_likelihood_without_a_maximum_is_refused() {
        // Increasing without bound in the parameter: no maximum to converge to.
        let log_likelihood = |p: &[f64]| (p[0], vec![1.0]);
        let error = maximize(&[0.0], &log_likelihood, &GENEROUS).unwrap_err();
        assert!(error.contains("converge") || error.contains("failed"), "{error}");
    }

    #[test]
    fn each_point_is_evaluated_once() {
        // A 2-parameter concave bowl; every pass over the data is recorded with its point.
        let points = Mutex::new(Vec::<Vec<f64>>::new());
        let log_likelihood = |p: &[f64]| {
            points.lock().unwrap().push(p.to_vec());
            let (x, y) = (p[0] - 1.0, p[1] + 2.0);
            (
                -(x * x + 3.0 * y * y + x * y),
                vec![-(2.0 * x + y), -(6.0 * y + x)],
            )
        };
        let found = maximize(&[4.0, 4.0], &log_likelihood, &GENEROUS).unwrap();
        assert!((found.parameters[0].ln() - 1.0).abs() < 1e-6, "{found:?}");
        let points = points.into_inner().unwrap();
        let evaluations = points.len();
        let mut distinct = points.clone();
        distinct.sort_by(|p, q| p.partial_cmp(q).unwrap());
        distinct.dedup();
        // The final check after a run re-evaluates the best point on purpose: at most one
        // repeat per L-BFGS run.
        assert!(
            evaluations - distinct.len() <= RESTARTS,
            "{evaluations} evaluations of {} distinct points",
            distinct.len()
        );
        assert!(evaluations > 3, "{evaluations}");
    }

    /// A bowl with its top at (1, -2); each pass takes `pause`.
    fn bowl(
        passes: &Mutex<u64>,
        pause: std::time::Duration,
    ) -> impl Fn(&[f64]) -> (f64, Vec<f64>) + Sync + '_ {
        move |p: &[f64]| {
            *passes.lock().unwrap() += 1;
            std::thread::sleep(pause);
            let (x, y) = (p[0] - 1.0, p[1] + 2.0);
            (
                -(x * x + 3.0 * y * y + x * y),
                vec![-(2.0 * x + y), -(6.0 * y + x)],
            )
        }
    }

    #[test]
    fn the_line_search_from_where_the_likelihood_is_not_finite_stops_at_the_bound() {
        // What hung the night on CDNOW (a repeat customer with a zero mean spend makes the
        // Gamma-Gamma likelihood -inf everywhere): argmin's More-Thuente, which has no cap of
        // its own, starting from an infinite cost, evaluates without end. `maximize` refuses
        // such a start; the budget must still stop a run that meets one.
        let passes = Mutex::new(0_u64);
        let nowhere = |p: &[f64]| {
            *passes.lock().unwrap() += 1;
            (f64::NEG_INFINITY, vec![f64::NEG_INFINITY; p.len()])
        };
        let budget = Budget::new(Bounds {
            evaluations: 200,
            seconds: 600.0,
        });
        let run = run_lbfgs(&[0.0, 0.0, 0.0], &nowhere, &budget).unwrap();
        let bounded = run.bounded.expect("the run stopped at its bound");
        assert_eq!(bounded.to_string(), "stopped at its bound of 200 evaluations");
        // It asks for the same point again and again: few passes, all the evaluations.
        assert!(passes.into_inner().unwrap() <= 200);
        assert_eq!(budget.evaluations(), 201);
    }

    #[test]
    fn a_fit_stopped_at_a_bound_is_refused_and_names_it() {
        let passes = Mutex::new(0);
        let few = Bounds {
            evaluations: 4,
            seconds: 600.0,
        };
        let error = maximize(&[4.0, 4.0], &bowl(&passes, Default::default()), &few).unwrap_err();
        assert!(
            error.starts_with("stopped at its bound of 4 evaluations"),
            "{error}"
        );
        // The check where the fit starts, then at most the four the bound allows.
        assert!(passes.into_inner().unwrap() <= 5);
        // The same fit unbounded reaches the top.
        let passes = Mutex::new(0);
        let found = maximize(&[4.0, 4.0], &bowl(&passes, Default::default()), &GENEROUS).unwrap();
        assert!((found.parameters[0].ln() - 1.0).abs() < 1e-6, "{found:?}");
        assert!(passes.into_inner().unwrap() > 5);
    }

    #[test]
    fn a_fit_slower_than_its_bound_of_seconds_is_refused() {
        let passes = Mutex::new(0);
        let brief = Bounds {
            evaluations: 100_000,
            seconds: 0.1,
        };
        let pause = std::time::Duration::from_millis(30);
        let error = maximize(&[4.0, 4.0], &bowl(&passes, pause), &brief).unwrap_err();
        assert!(
            error.starts_with("stopped at its bound of 0.1 seconds"),
            "{error}"
        );
        assert!(passes.into_inner().unwrap() < 21);
    }

    #[test]
    fn a_likelihood_that_is_not_finite_where_the_fit_starts_is_refused_at_once() {
        let passes = Mutex::new(0);
        let nowhere = |p: &[f64]| {
            *passes.lock().unwrap() += 1;
            (f64::NEG_INFINITY, vec![0.0; p.len()])
        };
        let error = maximize(&[0.0], &nowhere, &GENEROUS).unwrap_err();
        assert!(error.contains("not finite where the fit starts"), "{error}");
        assert_eq!(passes.into_inner().unwrap(), 1);
    }

    #[test]
    fn a_run_stalled_below_the_tolerance_stops_at_its_highest_point() {
        // A bowl (not quite quadratic) that is flat within 1e-13 of its top while its gradient
        // there keeps pointing to the top with a length of 5e-7: a mean over a million customers
        // once its changes fall below its rounding. That gradient meets the tolerance (1e-6),
        // not what L-BFGS itself is asked to reach (1e-7), and no step shows a rise.
        let passes = Mutex::new(0_u32);
        let found = maximize(&[4.0, 4.0], &flat_topped(5e-7, &passes), &GENEROUS).unwrap();
        assert!((found.parameters[0].ln() - 1.0).abs() <= 2.5e-7, "{found:?}");
        // 21 passes to the top without the flat; 103 with it and without the stop, 31 with both.
        let passes = passes.into_inner().unwrap();
        assert!(passes <= 40, "{passes} passes: {found:?}");
    }

    /// A bowl flat within 1e-13 of its top whose gradient there keeps a length of `pull`.
    fn flat_topped(pull_length: f64, passes: &Mutex<u32>) -> impl Fn(&[f64]) -> (f64, Vec<f64>) + Sync + '_ {
        const FLAT: f64 = 1e-13;
        move |p: &[f64]| {
            *passes.lock().unwrap() += 1;
            let (x, y) = (p[0] - 1.0, p[1] + 2.0);
            let fall = x * x + 3.0 * y * y + x * y + x.powi(4) + y.powi(4);
            let gradient = vec![-(2.0 * x + y + 4.0 * x.powi(3)), -(6.0 * y + x + 4.0 * y.powi(3))];
            if fall > FLAT {
                return (-fall, gradient);
            }
            let length = gradient.iter().map(|g| g * g).sum::<f64>().sqrt();
            let pull = if length > 0.0 { pull_length / length } else { 0.0 };
            (-FLAT, gradient.iter().map(|g| g * pull).collect())
        }
    }

    #[test]
    fn a_run_stalled_at_the_likelihoods_precision_stops_and_is_accepted() {
        // As above, but the gradient on the flat top is 1e-5 long: over the tolerance, within
        // the likelihood's precision (the 10M backtest's Gamma-Gamma fit), so no run can meet
        // the tolerance; each stops after ten passes without a rise, and the first is accepted.
        let passes = Mutex::new(0_u32);
        let found = maximize(&[4.0, 4.0], &flat_topped(1e-5, &passes), &GENEROUS).unwrap();
        assert!((found.parameters[0].ln() - 1.0).abs() <= 1e-6, "{found:?}");
        let passes = passes.into_inner().unwrap();
        assert!(passes <= 40, "{passes} passes: {found:?}");
        // Farther from the top than the precision allows, a run that stops rising is refused.
        let passes = Mutex::new(0_u32);
        let error = maximize(&[4.0, 4.0], &flat_topped(1e-3, &passes), &GENEROUS).unwrap_err();
        assert!(error.contains("converge"), "{error}");
    }
}
