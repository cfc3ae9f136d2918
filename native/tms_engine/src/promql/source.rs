//! Where the evaluator's samples come from: the engine's series, selected by
//! PromQL matchers (across metrics when `__name__` is not pinned), their
//! timestamps turned into milliseconds; and, for range functions a rollup
//! tier can answer, the tier's rows.

use crate::engine::{Engine, LabelSet, QuerySpec};
use crate::index::{MatchOp, Matcher};
use crate::summary::Summary;

use super::value::{Labels, Raw, Samples, NAME};
use super::Error;

/// One series as runs of samples (see [`Summary`]): rollup tier rows where
/// a tier answers, single samples elsewhere; timestamps in milliseconds.
pub struct RunSeries {
    pub labels: Labels,
    pub runs: Vec<Summary>,
}

/// Series storage as the evaluator sees it.
pub trait Source {
    /// Every series matching all `matchers` (the metric name is the
    /// `__name__` label), with its points in `bounds`, `[mint, maxt]`
    /// milliseconds,
    /// staleness markers included; sorted by labels. Series without points
    /// there may be left out. Fails with [`Error::too_many_samples`] rather
    /// than hold much more than `budget` points, and with an execution
    /// error when evaluation starts at `first_ref`, before the raw
    /// retention cutoff, where only rollup tiers hold data.
    fn select(
        &self,
        matchers: &[Matcher],
        bounds: (i64, i64),
        first_ref: i64,
        budget: usize,
    ) -> Result<Vec<Raw>, Error>;

    /// For windows of `range` milliseconds ending at `refs.0` (`first_ref`),
    /// `first_ref + step`, ..., `refs.1` (`last_ref`; `step` 0: one window): when a
    /// rollup tier's resolution divides `range`, `step` and `first_ref`,
    /// that resolution and each matching series' runs from the start of
    /// the first window to the end of the interval starting at `last_ref`
    /// (whose first sample may be the last window's last); `None` when no
    /// tier serves these windows.
    fn runs(
        &self,
        matchers: &[Matcher],
        refs: (i64, i64),
        range: i64,
        step: i64,
        budget: usize,
    ) -> Result<Option<(i64, Vec<RunSeries>)>, Error>;
}

/// Milliseconds in the store's timestamp unit (`round_up` for a window's
/// start, so that no point before it is read).
fn to_units(ms: i64, units_per_second: i64, round_up: bool) -> i64 {
    let scaled = ms as i128 * units_per_second as i128;
    let units = if round_up {
        scaled.div_euclid(1000) + i128::from(scaled.rem_euclid(1000) != 0)
    } else {
        scaled.div_euclid(1000)
    };
    units.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A timestamp of the store's unit in milliseconds (no 128-bit division
/// for a store of seconds).
fn to_ms(units: i64, units_per_second: i64) -> i64 {
    match units_per_second {
        1000 => units,
        1 => units.saturating_mul(1000),
        ups => (units as i128 * 1000 / ups as i128) as i64,
    }
}

/// The metrics `matchers` may select, and the matchers on other labels.
fn metrics_of(engine: &Engine, matchers: &[Matcher]) -> Result<(Vec<String>, Vec<Matcher>), Error> {
    let (names, others): (Vec<&Matcher>, Vec<&Matcher>) =
        matchers.iter().partition(|m| m.label == NAME);
    // A pinned name is one metric; otherwise every metric the name
    // matchers accept (an absent name matcher accepts all).
    let candidates: Vec<String> = match names.iter().find_map(|m| match &m.op {
        MatchOp::Eq(v) => Some(v.clone()),
        _ => None,
    }) {
        Some(name) => vec![name],
        None => engine.metrics().map_err(Error::storage)?,
    };
    let metrics = candidates
        .into_iter()
        .filter(|metric| names.iter().all(|m| m.accepts(metric)))
        .collect();
    Ok((metrics, others.into_iter().cloned().collect()))
}

/// A series' labels with its metric as `__name__`, sorted.
fn labels_of(labels: &LabelSet, metric: &str) -> Labels {
    let mut out: Labels = labels
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    out.push((NAME.to_string(), metric.to_string()));
    out.sort();
    out
}

impl Source for Engine {
    fn select(
        &self,
        matchers: &[Matcher],
        (mint, maxt): (i64, i64),
        first_ref: i64,
        budget: usize,
    ) -> Result<Vec<Raw>, Error> {
        let ups = self.units_per_second();
        let (metrics, others) = metrics_of(self, matchers)?;
        let (from, to) = (to_units(mint, ups, true), to_units(maxt, ups, false));
        let mut out = Vec::new();
        let mut held = 0usize;
        if from > to {
            return Ok(out);
        }
        if let Some(cutoff) = self.tiers_alone_before(to_units(first_ref, ups, false), to) {
            return Err(Error::execution(format!(
                "this query is evaluated from {first_ref} ms, before the raw retention cutoff \
                 ({} ms) where only rollup tiers hold data, and they cannot answer it exactly: \
                 only rate, increase, delta and *_over_time (but quantile_over_time) of a \
                 selector whose range, evaluation times and step are multiples of a tier's \
                 resolution read them",
                to_ms(cutoff, ups)
            )));
        }
        for metric in metrics {
            let results = self
                .query(&metric, &others, from, to, &QuerySpec::default())
                .map_err(Error::storage)?;
            // Checked a metric at a time: a query too big fails before it
            // reads every metric.
            held = held.saturating_add(results.iter().map(|r| r.points.len()).sum());
            if held > budget {
                return Err(Error::too_many_samples());
            }
            for result in results {
                let labels = labels_of(&result.labels, &metric);
                // A millisecond store's points are not copied at all.
                let points = if ups == 1000 {
                    Samples::from_points(result.points)
                } else {
                    Samples::Owned(
                        result
                            .points
                            .iter()
                            .map(|(t, v)| (to_ms(t, ups), v))
                            .collect(),
                    )
                };
                out.push(Raw { labels, points });
            }
        }
        // One metric's series usually come sorted from the engine already.
        if !out.is_sorted_by(|a, b| a.labels <= b.labels) {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out)
    }

    fn runs(
        &self,
        matchers: &[Matcher],
        (first_ref, last_ref): (i64, i64),
        range: i64,
        step: i64,
        budget: usize,
    ) -> Result<Option<(i64, Vec<RunSeries>)>, Error> {
        let ups = self.units_per_second();
        // A store finer than milliseconds shows PromQL its samples at their
        // truncated millisecond, which a row's interval in the store's own
        // units does not follow at the edges: raw samples answer there.
        if ups > 1000 {
            return Ok(None);
        }
        // The coarsest tier whose resolution, in whole milliseconds,
        // divides the range, the step and the first window's end.
        let serving = self
            .tier_resolutions()
            .into_iter()
            .enumerate()
            .rev()
            .find_map(|(t, r)| {
                let scaled = i128::from(r) * 1000;
                let ms = i64::try_from(scaled / i128::from(ups)).ok()?;
                let divides = |x: i64| x.rem_euclid(ms) == 0;
                (scaled % i128::from(ups) == 0
                    && divides(range)
                    && divides(step)
                    && divides(first_ref))
                .then_some((t, ms))
            });
        let Some((tier, resolution)) = serving else {
            return Ok(None);
        };
        let (metrics, others) = metrics_of(self, matchers)?;
        let from = to_units(first_ref.saturating_sub(range), ups, true);
        let to = to_units(last_ref.saturating_add(resolution - 1), ups, false);
        let mut out = Vec::new();
        let mut held = 0usize;
        for metric in metrics {
            for (labels, mut runs) in self
                .tier_runs(&metric, &others, from, to, tier)
                .map_err(Error::storage)?
            {
                held = held.saturating_add(runs.len());
                if held > budget {
                    return Err(Error::too_many_samples());
                }
                if ups != 1000 {
                    for run in &mut runs {
                        run.first.0 = to_ms(run.first.0, ups);
                        run.last.0 = to_ms(run.last.0, ups);
                    }
                }
                out.push(RunSeries {
                    labels: labels_of(&labels, &metric),
                    runs,
                });
            }
        }
        if !out.is_sorted_by(|a, b| a.labels <= b.labels) {
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(Some((resolution, out)))
    }
}
