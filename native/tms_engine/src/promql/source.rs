//! Where the evaluator's samples come from: the engine's series, selected by
//! PromQL matchers (across metrics when `__name__` is not pinned), their
//! timestamps turned into milliseconds.

use crate::engine::{Engine, QuerySpec};
use crate::index::{MatchOp, Matcher};

use super::value::{Labels, Raw, Samples, NAME};
use super::Error;

/// Series storage as the evaluator sees it.
pub trait Source {
    /// Every series matching all `matchers` (the metric name is the
    /// `__name__` label), with its points in `[mint, maxt]` milliseconds,
    /// staleness markers included; sorted by labels. Series without points
    /// there may be left out. Fails with [`Error::too_many_samples`] rather
    /// than hold much more than `budget` points.
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: usize,
    ) -> Result<Vec<Raw>, Error>;
}

impl Source for Engine {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        budget: usize,
    ) -> Result<Vec<Raw>, Error> {
        let (names, others): (Vec<&Matcher>, Vec<&Matcher>) =
            matchers.iter().partition(|m| m.label == NAME);
        let others: Vec<Matcher> = others.into_iter().cloned().collect();
        // A pinned name is one metric; otherwise every metric the name
        // matchers accept (an absent name matcher accepts all).
        let metrics: Vec<String> = match names.iter().find_map(|m| match &m.op {
            MatchOp::Eq(v) => Some(v.clone()),
            _ => None,
        }) {
            Some(name) => vec![name],
            None => self.metrics().map_err(Error::storage)?,
        };
        let ups = self.units_per_second();
        let to_units = |ms: i64, round_up: bool| -> i64 {
            let scaled = ms as i128 * ups as i128;
            let units = if round_up {
                scaled.div_euclid(1000) + i128::from(scaled.rem_euclid(1000) != 0)
            } else {
                scaled.div_euclid(1000)
            };
            units.clamp(i64::MIN as i128, i64::MAX as i128) as i64
        };
        // Per point: no 128-bit division for a store of seconds (and a
        // millisecond store's points are not copied at all).
        let to_ms = |units: i64| -> i64 {
            match ups {
                1 => units.saturating_mul(1000),
                _ => (units as i128 * 1000 / ups as i128) as i64,
            }
        };
        let (from, to) = (to_units(mint, true), to_units(maxt, false));
        let mut out = Vec::new();
        let mut held = 0usize;
        if from > to {
            return Ok(out);
        }
        for metric in metrics {
            if !names.iter().all(|m| m.accepts(&metric)) {
                continue;
            }
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
                let mut labels: Labels = result
                    .labels
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                labels.push((NAME.to_string(), metric.clone()));
                labels.sort();
                let points = if ups == 1000 {
                    Samples::from_points(result.points)
                } else {
                    Samples::Owned(result.points.iter().map(|(t, v)| (to_ms(t), v)).collect())
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
}
