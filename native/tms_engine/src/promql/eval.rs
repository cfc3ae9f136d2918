//! The evaluator: an expression over all steps of a query at once.
//!
//! Each selector reads its series once for the whole query (not once per
//! step); instant-vector selectors then pick, per step, the last sample in
//! the lookback window, and range functions see, per step, the window
//! `[t - range, t]` (both ends included, as in Prometheus 2.42) without
//! staleness markers.

use std::time::Instant;

use super::ast::{Expr, Selector};
use super::source::Source;
use super::value::{assemble, without_name, RangeSeries, Raw, Samples, Series, Steps, Value};
use super::{aggregate, binary, functions, Error, Options};
use crate::error::EngineError;
use crate::parallel;
use crate::types::is_stale;

/// Series times steps from which per-series work runs on every core (a
/// thread costs tens of microseconds to start).
const PARALLEL_STEPS: usize = 20_000;

/// `one` over every input series, on every core when there is enough work
/// (`steps` values each); the series it answers, in order.
pub fn per_series<T: Sync>(
    input: &[T],
    steps: usize,
    one: impl Fn(&T) -> Result<Option<Series>, EngineError> + Sync,
) -> Result<Vec<Series>, Error> {
    let min_parallel = (PARALLEL_STEPS / steps.max(1)).max(16);
    let out = parallel::map(input, parallel::cores(), min_parallel, one)?;
    Ok(out.into_iter().flatten().collect())
}

/// The reference time of a selector evaluated at step time `t`.
pub fn ref_time(at: Option<i64>, offset: i64, t: i64) -> i64 {
    at.unwrap_or(t).saturating_sub(offset)
}

/// Where a range function's windows end and how long they are.
#[derive(Debug, Clone, Copy)]
pub struct Windowing {
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

impl Windowing {
    /// For each step, where the points of `points` in `[ref - range, ref]`
    /// are: `(step, window start, window end, index range)`.
    pub fn windows<'p>(
        &self,
        points: &'p [(i64, f64)],
        steps: Steps,
    ) -> impl Iterator<Item = (usize, i64, i64, std::ops::Range<usize>)> + 'p {
        let this = *self;
        let (mut lo, mut hi) = (0usize, 0usize);
        (0..steps.len()).map(move |i| {
            let end = ref_time(this.at, this.offset, steps.at(i));
            let start = end.saturating_sub(this.range);
            // Reference times never decrease, so both bounds only move on.
            while lo < points.len() && points[lo].0 < start {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < points.len() && points[hi].0 <= end {
                hi += 1;
            }
            (i, start, end, lo..hi)
        })
    }
}

/// One evaluation: the source, the options and what has been loaded so far.
pub struct Evaluator<'a> {
    pub source: &'a dyn Source,
    pub options: &'a Options,
    started: Instant,
    loaded: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(source: &'a dyn Source, options: &'a Options) -> Evaluator<'a> {
        Evaluator {
            source,
            options,
            started: Instant::now(),
            loaded: 0,
        }
    }

    /// Fails once the query has run past its timeout.
    pub fn check_time(&self) -> Result<(), Error> {
        match self.options.timeout {
            Some(limit) if self.started.elapsed() > limit => {
                Err(Error::timeout("query timed out in expression evaluation"))
            }
            _ => Ok(()),
        }
    }

    /// How many more samples the query may hold.
    pub fn budget(&self) -> usize {
        self.options.max_samples.saturating_sub(self.loaded)
    }

    /// Counts `n` samples held in memory; past `max_samples` the query fails.
    pub fn charge(&mut self, n: usize) -> Result<(), Error> {
        self.loaded = self.loaded.saturating_add(n);
        if self.loaded > self.options.max_samples {
            return Err(Error::too_many_samples());
        }
        Ok(())
    }

    /// Evaluates `expr` at every step of `steps`.
    pub fn eval(&mut self, expr: &Expr, steps: Steps) -> Result<Value, Error> {
        self.check_time()?;
        let n = steps.len();
        Ok(match expr {
            Expr::Number(v) => Value::Scalar(vec![*v; n]),
            Expr::String(s) => Value::String(s.clone()),
            Expr::Selector(sel) => Value::Vector(self.instant_selector(sel, steps, false)?),
            Expr::Range { .. } | Expr::Subquery { .. } => {
                // Only an instant query's result can be a range vector.
                let (series, windowing) = self.range_input(expr, steps)?;
                let matrix = series
                    .iter()
                    .filter_map(|s| {
                        let (_, _, _, window) = windowing.windows(&s.points, steps).next()?;
                        (!window.is_empty()).then(|| RangeSeries {
                            labels: s.labels.clone(),
                            points: s.points[window].to_vec(),
                        })
                    })
                    .collect();
                Value::Matrix(matrix)
            }
            Expr::Call { func, args, .. } => functions::call(self, func, args, steps)?,
            Expr::Aggregate {
                op,
                expr,
                param,
                grouping,
                without,
            } => aggregate::eval(self, *op, expr, param.as_deref(), grouping, *without, steps)?,
            Expr::Negate(inner) => match self.eval(inner, steps)? {
                Value::Scalar(values) => Value::Scalar(values.into_iter().map(|v| -v).collect()),
                Value::Vector(series) => {
                    let negated = series
                        .into_iter()
                        .map(|s| Series {
                            labels: without_name(&s.labels),
                            values: s.values.into_iter().map(|v| v.map(|v| -v)).collect(),
                        })
                        .collect();
                    Value::Vector(assemble(n, negated)?)
                }
                other => other,
            },
            Expr::Binary {
                op,
                lhs,
                rhs,
                return_bool,
                matching,
            } => binary::eval(self, *op, lhs, rhs, *return_bool, matching, steps)?,
        })
    }

    /// Evaluates an expression that must be an instant vector.
    pub fn vector(&mut self, expr: &Expr, steps: Steps) -> Result<Vec<Series>, Error> {
        match self.eval(expr, steps)? {
            Value::Vector(series) => Ok(series),
            other => Err(Error::internal(format!(
                "expected an instant vector, got {}",
                kind_name(&other)
            ))),
        }
    }

    /// Evaluates an expression that must be a scalar: one value per step.
    pub fn scalar(&mut self, expr: &Expr, steps: Steps) -> Result<Vec<f64>, Error> {
        match self.eval(expr, steps)? {
            Value::Scalar(values) => Ok(values),
            other => Err(Error::internal(format!(
                "expected a scalar, got {}",
                kind_name(&other)
            ))),
        }
    }

    /// An instant-vector selector: per step, the last sample at or before
    /// the reference time and at most the lookback delta older, unless it
    /// is a staleness marker. With `timestamps`, the sample's time in
    /// seconds instead of its value (what `timestamp()` returns).
    pub fn instant_selector(
        &mut self,
        sel: &Selector,
        steps: Steps,
        timestamps: bool,
    ) -> Result<Vec<Series>, Error> {
        let lookback = self.options.lookback_delta;
        let series = self.fetch(sel, steps, lookback)?;
        let n = steps.len();
        self.check_time()?;
        let one = |s: &Raw| -> Result<Option<Series>, EngineError> {
            let mut values = vec![None; n];
            let mut next = 0usize;
            let mut present = false;
            let points: &[(i64, f64)] = &s.points;
            for (i, value) in values.iter_mut().enumerate() {
                let reference = ref_time(sel.at, sel.offset, steps.at(i));
                // Reference times never decrease: move on from the last one.
                while next < points.len() && points[next].0 <= reference {
                    next += 1;
                }
                let Some(&(t, v)) = next.checked_sub(1).map(|i| &points[i]) else {
                    continue;
                };
                if t < reference.saturating_sub(lookback) || is_stale(v) {
                    continue;
                }
                *value = Some(if timestamps { t as f64 / 1000.0 } else { v });
                present = true;
            }
            Ok(present.then(|| Series {
                labels: s.labels.clone(),
                values,
            }))
        };
        let out = per_series(&series, n, one)?;
        self.charge(out.len() * n)?;
        Ok(out)
    }

    /// The series a range function reads: a range selector's points without
    /// staleness markers, or a subquery's values at its own steps; with the
    /// windows to cut from them at each step of `steps`.
    pub fn range_input(
        &mut self,
        expr: &Expr,
        steps: Steps,
    ) -> Result<(Vec<Raw>, Windowing), Error> {
        match expr {
            Expr::Range { selector, range } => {
                let mut series = self.fetch(selector, steps, *range)?;
                for s in &mut series {
                    s.points.remove_stale();
                }
                series.retain(|s| !s.points.is_empty());
                Ok((
                    series,
                    Windowing {
                        range: *range,
                        offset: selector.offset,
                        at: selector.at,
                    },
                ))
            }
            Expr::Subquery {
                expr,
                range,
                step,
                offset,
                at,
            } => {
                let windowing = Windowing {
                    range: *range,
                    offset: *offset,
                    at: *at,
                };
                let step = step.unwrap_or(self.options.subquery_step).max(1);
                let first = ref_time(*at, *offset, steps.start).saturating_sub(*range);
                let last = ref_time(*at, *offset, steps.end);
                // Inner steps are multiples of the step, from the first one
                // inside the earliest window.
                let start =
                    first.div_euclid(step) * step + i64::from(first.rem_euclid(step) != 0) * step;
                if start > last {
                    return Ok((Vec::new(), windowing));
                }
                let inner = Steps {
                    start,
                    end: last,
                    step,
                };
                let series = self
                    .vector(expr, inner)?
                    .into_iter()
                    .map(|s| Raw {
                        labels: s.labels,
                        points: Samples::Owned(
                            s.values
                                .iter()
                                .enumerate()
                                .filter_map(|(i, v)| v.map(|v| (inner.at(i), v)))
                                .collect(),
                        ),
                    })
                    .collect();
                Ok((series, windowing))
            }
            _ => Err(Error::internal("expected a range vector")),
        }
    }

    /// Reads the series of a selector over every step's window of `window`
    /// milliseconds before its reference time.
    fn fetch(&mut self, sel: &Selector, steps: Steps, window: i64) -> Result<Vec<Raw>, Error> {
        let maxt = ref_time(sel.at, sel.offset, steps.end);
        let mint = ref_time(sel.at, sel.offset, steps.start).saturating_sub(window);
        let budget = self.budget();
        let first_ref = ref_time(sel.at, sel.offset, steps.start);
        let series = self
            .source
            .select(&sel.matchers, (mint, maxt), first_ref, budget)?;
        self.charge(series.iter().map(|s| s.points.len()).sum())?;
        Ok(series)
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Scalar(_) => "scalar",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
        Value::String(_) => "string",
    }
}
