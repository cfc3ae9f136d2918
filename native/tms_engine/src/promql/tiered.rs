//! Range functions answered from rollup tiers: where a tier's resolution
//! divides a selector's range, the step and the evaluation times, each
//! window `[t - range, t]` is whole tier intervals plus the sample at `t`
//! itself, so the functions that only need a window's totals (its count,
//! sum, variance, extremes, first and last samples, counter resets) read a
//! few rows per window instead of every sample. Raw points answer where
//! no tier does (see `Engine::tier_runs`).

use super::ast::Expr;
use super::eval::{per_series, ref_time, Evaluator};
use super::range::{extrapolate, Change};
use super::source::RunSeries;
use super::value::{without_name, Series, Steps};
use super::Error;
use crate::error::EngineError;
use crate::summary::Summary;

/// The functions a window's [`Summary`] answers.
const ANSWERED: [&str; 13] = [
    "rate",
    "increase",
    "delta",
    "avg_over_time",
    "count_over_time",
    "sum_over_time",
    "min_over_time",
    "max_over_time",
    "last_over_time",
    "present_over_time",
    "absent_over_time",
    "stddev_over_time",
    "stdvar_over_time",
];

/// `func` of the range selector `arg` at every step, from a rollup tier;
/// `None` when no tier serves these windows (or `func` needs samples).
pub fn call(
    ev: &mut Evaluator<'_>,
    func: &str,
    arg: &Expr,
    steps: Steps,
    keep_name: bool,
) -> Result<Option<Vec<Series>>, Error> {
    let Expr::Range { selector, range } = arg else {
        return Ok(None);
    };
    if !ANSWERED.contains(&func) {
        return Ok(None);
    }
    let refs = |i: usize| ref_time(selector.at, selector.offset, steps.at(i));
    let n = steps.len();
    let step = if selector.at.is_some() || n == 1 {
        0
    } else {
        steps.step
    };
    let budget = ev.budget();
    let Some((_, input)) = ev.source.runs(
        &selector.matchers,
        (refs(0), refs(n - 1)),
        *range,
        step,
        budget,
    )?
    else {
        return Ok(None);
    };
    ev.charge(input.iter().map(|s| s.runs.len()).sum())?;
    ev.check_time()?;
    let one = |series: &RunSeries| -> Result<Option<Series>, EngineError> {
        let runs = &series.runs;
        let mut values = vec![None; n];
        let mut present = false;
        let (mut lo, mut hi) = (0usize, 0usize);
        for (i, value) in values.iter_mut().enumerate() {
            let end = refs(i);
            let start = end.saturating_sub(*range);
            // Runs start at or after the window's start and no later than
            // its end; every one but a row starting at the end lies wholly
            // inside (rows and windows align to the resolution).
            while lo < runs.len() && runs[lo].first.0 < start {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < runs.len() && runs[hi].first.0 <= end {
                hi += 1;
            }
            let mut window: Option<Summary> = None;
            for run in &runs[lo..hi] {
                // A row starting at the window's end: only its first sample,
                // at the end itself, is in the window.
                let part = if run.first.0 == end {
                    Summary::of(run.first)
                } else {
                    *run
                };
                match &mut window {
                    Some(w) => w.append(&part),
                    None => window = Some(part),
                }
            }
            if let Some(w) = window {
                *value = answer(func, &w, (start, end, *range));
                present |= value.is_some();
            }
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
    per_series(&input, n, one).map(Some)
}

/// `func` of a window's samples, from their summary.
fn answer(func: &str, w: &Summary, bounds: (i64, i64, i64)) -> Option<f64> {
    let change = |counter: bool, per_second: bool| {
        let rise = w.last.1 - w.first.1;
        let change = Change {
            first: w.first,
            last: w.last,
            count: w.count as usize,
            result: if counter { rise + w.resets } else { rise },
        };
        (w.count >= 2)
            .then(|| extrapolate(&change, bounds, counter, per_second))
            .flatten()
    };
    match func {
        "rate" => change(true, true),
        "increase" => change(true, false),
        "delta" => change(false, false),
        "avg_over_time" => Some(w.sum / w.count as f64),
        "count_over_time" => Some(w.count as f64),
        "sum_over_time" => Some(w.sum),
        "min_over_time" => Some(w.min),
        "max_over_time" => Some(w.max),
        "last_over_time" => Some(w.last.1),
        "stddev_over_time" => Some(w.variance().sqrt()),
        "stdvar_over_time" => Some(w.variance()),
        // present_over_time, absent_over_time
        _ => Some(1.0),
    }
}
