//! Functions over range vectors: each series' window at each step becomes
//! one value (`rate`, `*_over_time`, `deriv`, ...), with Prometheus 2.42's
//! arithmetic (extrapolation, Kahan sums, resets).

use super::ast::Expr;
use super::eval::{per_series, Evaluator};
use super::functions::absent_labels;
use super::numeric::{holt_winters, kahan, linear_regression, quantile, running_mean, variance};
use super::value::{without_name, Raw, Series, Steps, Value};
use super::{tiered, Error};
use crate::error::EngineError;
use crate::query::never_falls;

/// One window: its points, its bounds and the step's evaluation time.
struct Window<'a> {
    points: &'a [(i64, f64)],
    /// `[start, end]`: the window's bounds (reference time minus range,
    /// reference time), in milliseconds.
    start: i64,
    end: i64,
    range: i64,
    /// The step's evaluation time (what `predict_linear` predicts from).
    time: i64,
    /// What was worked out once for the whole series.
    series: &'a SeriesFacts,
    /// Where the window starts in the series' points.
    first: usize,
}

/// What a function may work out once per series instead of per window.
#[derive(Default)]
struct SeriesFacts {
    /// The series never falls anywhere: no window needs a scan for
    /// counter resets.
    monotonic: bool,
    /// For `sum_over_time` and `avg_over_time`: window sums by lookup.
    prefix: Option<PrefixSums>,
}

impl SeriesFacts {
    /// `known_never_falls`: the storage knows the points never fall, so
    /// there is no need to look.
    fn of(func: &str, points: &[(i64, f64)], known_never_falls: bool) -> SeriesFacts {
        SeriesFacts {
            monotonic: matches!(func, "rate" | "increase")
                && (known_never_falls || never_falls(points)),
            prefix: matches!(func, "sum_over_time" | "avg_over_time")
                .then(|| PrefixSums::new(points))
                .flatten(),
        }
    }
}

impl Window<'_> {
    /// The sum of the window's values, compensated.
    fn sum(&self) -> f64 {
        let last = self.first + self.points.len();
        match self
            .series
            .prefix
            .as_ref()
            .and_then(|p| p.sum(self.first, last))
        {
            Some(sum) => sum,
            None => kahan(self.values()),
        }
    }
}

/// Prefix sums of a series' values in double-double (a sum and its
/// rounding error, about 106 bits), so that a window's sum costs two
/// lookups instead of a pass over the window.
struct PrefixSums(Vec<(f64, f64)>);

impl PrefixSums {
    /// None when a value is not finite or the running sum overflows: those
    /// series' windows are summed one by one.
    fn new(points: &[(i64, f64)]) -> Option<PrefixSums> {
        let mut sums = Vec::with_capacity(points.len() + 1);
        let (mut hi, mut lo) = (0.0f64, 0.0f64);
        sums.push((hi, lo));
        for &(_, v) in points {
            let (s, e) = two_sum(hi, v);
            (hi, lo) = two_sum(s, e + lo);
            if !v.is_finite() || !hi.is_finite() {
                return None;
            }
            sums.push((hi, lo));
        }
        Some(PrefixSums(sums))
    }

    /// The sum of values `first..last`; None where it is so much smaller
    /// than the prefixes that their difference may have lost digits an f64
    /// keeps (2^-45 of the larger leaves 60 good bits).
    fn sum(&self, first: usize, last: usize) -> Option<f64> {
        let (a, b) = (self.0[last], self.0[first]);
        let (d, e) = two_sum(a.0, -b.0);
        let sum = d + (e + (a.1 - b.1));
        (sum.abs() >= a.0.abs().max(b.0.abs()) * 2f64.powi(-45)).then_some(sum)
    }
}

/// Knuth's TwoSum: `a + b` and its exact rounding error.
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

impl Window<'_> {
    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.points.iter().map(|p| p.1)
    }
}

/// Evaluates a function whose argument `at` is a range vector.
pub fn call(
    ev: &mut Evaluator<'_>,
    func: &str,
    args: &[Expr],
    at: usize,
    steps: Steps,
) -> Result<Value, Error> {
    let n = steps.len();
    // The other arguments are scalars, one value per step.
    let mut params: Vec<Vec<f64>> = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        if i != at {
            params.push(ev.scalar(arg, steps)?);
        }
    }
    let f = lookup(func)?;
    let keep_name = func == "last_over_time";
    let out = match tiered::call(ev, func, &args[at], steps, keep_name)? {
        Some(out) => out,
        None => raw(ev, f, func, &args[at], steps, &params, keep_name)?,
    };
    ev.check_time()?;
    ev.charge(out.len() * n)?;
    finish(func, args, at, n, out)
}

/// The range function `f` from the raw points of each series.
fn raw(
    ev: &mut Evaluator<'_>,
    f: RangeFn,
    func: &str,
    arg: &Expr,
    steps: Steps,
    params: &[Vec<f64>],
    keep_name: bool,
) -> Result<Vec<Series>, Error> {
    let n = steps.len();
    let (input, windowing) = ev.range_input(arg, steps)?;
    ev.check_time()?;
    // One series' values at every step; None when it has none.
    let one = |series: &Raw| -> Result<Option<Series>, EngineError> {
        let mut values = vec![None; n];
        let mut present = false;
        let facts = SeriesFacts::of(func, &series.points, series.points.known_never_falls());
        for (step, start, end, range) in windowing.windows(&series.points, steps) {
            if range.is_empty() {
                continue;
            }
            let window = Window {
                first: range.start,
                points: &series.points[range],
                start,
                end,
                range: windowing.range,
                time: steps.at(step),
                series: &facts,
            };
            let p = |k: usize| params.get(k).map_or(0.0, |p| p[step]);
            values[step] = f(&window, [p(0), p(1)])?;
            present |= values[step].is_some();
        }
        Ok(present.then(|| Series {
            labels: if keep_name {
                series.labels.clone()
            } else {
                without_name(&series.labels)
            },
            values,
        }))
    };
    per_series(&input, n, one)
}

/// Finishes a range function's series: `absent_over_time`'s one series, or
/// the series after Prometheus' check that no two share labels.
fn finish(
    func: &str,
    args: &[Expr],
    at: usize,
    n: usize,
    out: Vec<Series>,
) -> Result<Value, Error> {
    if func == "absent_over_time" {
        let values = (0..n)
            .map(|i| out.iter().all(|s| s.values[i].is_none()).then_some(1.0))
            .collect();
        let absent = Series {
            labels: absent_labels(&args[at]),
            values,
        };
        let any = absent.values.iter().any(Option::is_some);
        return Ok(Value::Vector(if any { vec![absent] } else { Vec::new() }));
    }
    // Unlike per-step results, a range function's series may not share
    // labels even at different steps (Prometheus checks the whole matrix).
    let mut seen = std::collections::HashSet::with_capacity(out.len());
    if !out.iter().all(|s| seen.insert(&s.labels)) {
        return Err(Error::execution(
            "vector cannot contain metrics with the same labelset",
        ));
    }
    Ok(Value::Vector(out))
}

/// A function over one non-empty window, given the step's scalar
/// parameters.
type RangeFn = fn(&Window<'_>, [f64; 2]) -> Result<Option<f64>, Error>;

/// The function `func` names, looked up once per query, not per window.
fn lookup(func: &str) -> Result<RangeFn, Error> {
    Ok(match func {
        "rate" => |w, _| Ok(extrapolated_rate(w, true, true)),
        "increase" => |w, _| Ok(extrapolated_rate(w, true, false)),
        "delta" => |w, _| Ok(extrapolated_rate(w, false, false)),
        "irate" => |w, _| Ok(instant_value(w.points, true)),
        "idelta" => |w, _| Ok(instant_value(w.points, false)),
        "deriv" => {
            |w, _| Ok((w.points.len() >= 2).then(|| linear_regression(w.points, w.points[0].0).0))
        }
        "predict_linear" => |w, p| {
            Ok((w.points.len() >= 2).then(|| {
                let (slope, intercept) = linear_regression(w.points, w.time);
                slope * p[0] + intercept
            }))
        },
        "holt_winters" => |w, p| holt_winters(w.points, p[0], p[1]),
        "changes" => |w, _| {
            let changed = |pair: &&[(i64, f64)]| {
                let (a, b) = (pair[0].1, pair[1].1);
                a != b && !(a.is_nan() && b.is_nan())
            };
            Ok(Some(w.points.windows(2).filter(changed).count() as f64))
        },
        "resets" => |w, _| {
            let reset = |pair: &&[(i64, f64)]| pair[1].1 < pair[0].1;
            Ok(Some(w.points.windows(2).filter(reset).count() as f64))
        },
        "avg_over_time" => |w, _| Ok(Some(avg(w))),
        "count_over_time" => |w, _| Ok(Some(w.points.len() as f64)),
        "last_over_time" => |w, _| Ok(w.points.last().map(|p| p.1)),
        "present_over_time" | "absent_over_time" => |_, _| Ok(Some(1.0)),
        "max_over_time" => |w, _| {
            let max = |max: f64, v: f64| if v > max || max.is_nan() { v } else { max };
            Ok(Some(w.values().fold(w.points[0].1, max)))
        },
        "min_over_time" => |w, _| {
            let min = |min: f64, v: f64| if v < min || min.is_nan() { v } else { min };
            Ok(Some(w.values().fold(w.points[0].1, min)))
        },
        "sum_over_time" => |w, _| Ok(Some(w.sum())),
        "quantile_over_time" => |w, p| {
            let mut all: Vec<f64> = w.values().collect();
            Ok(Some(quantile(p[0], &mut all)))
        },
        "stddev_over_time" => |w, _| Ok(Some(variance(w.values()).sqrt())),
        "stdvar_over_time" => |w, _| Ok(Some(variance(w.values()))),
        other => {
            return Err(Error::bad_data(format!(
                "function {other} does not take a range vector"
            )))
        }
    })
}

/// `rate`, `increase` and `delta` of a window of raw points.
fn extrapolated_rate(w: &Window<'_>, counter: bool, per_second: bool) -> Option<f64> {
    let points = w.points;
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    if counter && !w.series.monotonic {
        for pair in points.windows(2) {
            if pair[1].1 < pair[0].1 {
                result += pair[0].1;
            }
        }
    }
    let change = Change {
        first,
        last,
        count: points.len(),
        result,
    };
    extrapolate(&change, (w.start, w.end, w.range), counter, per_second)
}

/// What `rate`, `increase` and `delta` need of a window's samples: the
/// first and last, how many, and the change between them (with counter
/// resets added back for `rate` and `increase`).
pub struct Change {
    pub first: (i64, f64),
    pub last: (i64, f64),
    pub count: usize,
    pub result: f64,
}

/// The change over a window `(start, end, range)` of at least two samples,
/// extrapolated towards the window's edges (not past where a counter would
/// reach zero, nor more than half an average interval past the samples
/// when they stop short of an edge), as Prometheus 2.42 does.
pub fn extrapolate(
    c: &Change,
    (start, end, range): (i64, i64, i64),
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    let (first, last, result) = (c.first, c.last, c.result);
    let mut to_start = (first.0 - start) as f64 / 1000.0;
    let to_end = (end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (c.count - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    let mut factor = interval / sampled;
    if per_second {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the window's last two samples.
fn instant_value(points: &[(i64, f64)], per_second: bool) -> Option<f64> {
    let [.., previous, last] = points else {
        return None;
    };
    let mut result = if per_second && last.1 < previous.1 {
        last.1
    } else {
        last.1 - previous.1
    };
    let interval = last.0 - previous.0;
    if interval == 0 {
        return None;
    }
    if per_second {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// `avg_over_time`: the compensated sum over the count (as Prometheus 3
/// computes it; 2.42's running mean gives the same value to within
/// rounding, at two divisions a sample), or the running mean where finite
/// samples would overflow the sum.
fn avg(w: &Window<'_>) -> f64 {
    let sum = w.sum();
    if sum.is_finite() || w.values().any(|v| !v.is_finite()) {
        return sum / w.points.len() as f64;
    }
    running_mean(w.values())
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A window's sum by prefix lookup is the compensated sum of the
        /// window to within an ulp (or falls back to it).
        #[test]
        fn prefix_sums_agree_with_summing_the_window(
            values in proptest::collection::vec(-1e6f64..1e6, 1..200),
            spike in proptest::prelude::any::<bool>(),
            cut in proptest::prelude::any::<(usize, usize)>(),
        ) {
            let mut values = values;
            if spike {
                values[0] = 1e300;
            }
            let points: Vec<(i64, f64)> = values.iter().enumerate().map(|(i, v)| (i as i64, *v)).collect();
            let prefix = PrefixSums::new(&points).unwrap();
            let (a, b) = (cut.0 % points.len(), cut.1 % points.len());
            let (first, last) = (a.min(b), a.max(b) + 1);
            if let Some(sum) = prefix.sum(first, last) {
                let direct = kahan(values[first..last].iter().copied());
                proptest::prop_assert!((sum - direct).abs() <= direct.abs() * 1e-15, "{} vs {}", sum, direct);
            }
        }
    }

    fn points(values: &[f64]) -> Vec<(i64, f64)> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, *v))
            .collect()
    }

    #[test]
    fn avg_over_time_matches_the_running_mean_to_rounding_and_exactly_in_special_cases() {
        let inf = f64::INFINITY;
        for values in [
            vec![1.0, 2.0, 4.0],
            vec![inf, 1.0],
            vec![inf, -inf],
            vec![f64::NAN, 1.0],
            // Finite samples whose sum overflows: the running mean's answer.
            vec![f64::MAX, f64::MAX, f64::MAX],
        ] {
            let points = points(&values);
            let facts = SeriesFacts::of("avg_over_time", &points, false);
            let w = Window {
                points: &points,
                start: 0,
                end: 0,
                range: 0,
                time: 0,
                series: &facts,
                first: 0,
            };
            let (fast, slow) = (avg(&w), running_mean(values.iter().copied()));
            let close = (fast - slow).abs() <= 1e-15 * slow.abs();
            assert!(
                fast == slow || close || (fast.is_nan() && slow.is_nan()),
                "{values:?}: {fast} != {slow}"
            );
        }
    }
}
