//! The read path: selecting series by labels, and range queries that merge
//! buffers and chunks under last-write-wins, raw or aggregated by step.
//!
//! Buffers are read before the index, so a flush that completes in between
//! is seen at least once (twice is harmless), never missed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::chunks::{is_damage, OnDamage};
use super::Engine;
use crate::error::{EngineError, Result};
use crate::index::Matcher;
use crate::parallel;
use crate::query::{self, Agg, Points, Run};
use crate::series_key::SeriesKey;
use crate::summary;
use crate::types::{Point, SeriesId};

/// What a range query computes beyond selecting series.
#[derive(Debug, Clone, Default)]
pub struct QuerySpec {
    /// Bucket width, in timestamp units; with `agg`.
    pub step: Option<i64>,
    pub agg: Option<Agg>,
    /// One result per distinct combination of these labels' values
    /// (an empty list: one result for all series); needs `step` and `agg`.
    pub group_by: Option<Vec<String>>,
    /// Whether a damaged chunk leaves its points out or fails the query.
    pub on_damage: OnDamage,
}

/// Label pairs sorted by name.
pub type LabelSet = Vec<(Box<str>, Box<str>)>;

/// One answer of a query: a series' labels (or a group's) and its points.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub labels: LabelSet,
    pub points: Points,
}

impl Engine {
    /// The series of `metric` matching every matcher, sorted by labels.
    pub fn select(
        &self,
        metric: &str,
        matchers: &[Matcher],
    ) -> Result<Vec<(SeriesId, Arc<SeriesKey>)>> {
        self.check_open()?;
        let mut out: Vec<(SeriesId, Arc<SeriesKey>)> = self
            .registry
            .select(metric, matchers)
            .into_iter()
            .filter_map(|id| self.registry.key(id).map(|key| (id, key)))
            .collect();
        out.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
        Ok(out)
    }

    /// [`select`](Self::select), narrowed to the series with data in
    /// `[from, to]`: a buffered point there, or a chunk whose time span
    /// overlaps it (a chunk may hold no point inside a short range within
    /// its span; Prometheus answers by whole blocks of hours).
    pub fn select_between(
        &self,
        metric: &str,
        matchers: &[Matcher],
        from: i64,
        to: i64,
    ) -> Result<Vec<(SeriesId, Arc<SeriesKey>)>> {
        let from = from.max(self.cutoff());
        let mut series = self.select(metric, matchers)?;
        series.retain(|(id, _)| {
            self.buffers.holds_between(*id, from, to)
                || !self.index.lookup(*id, from, to).is_empty()
        });
        Ok(series)
    }

    /// Distinct values of `label` among the series of `metric`, sorted.
    pub fn label_values(&self, metric: &str, label: &str) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.registry.label_values(metric, label))
    }

    /// Every metric name, sorted.
    pub fn metrics(&self) -> Result<Vec<String>> {
        self.check_open()?;
        Ok(self.registry.metrics())
    }

    /// Answers a range query over `[from, to]` (both inclusive).
    ///
    /// Without a step: the raw points of each matching series. With a step
    /// and an aggregation: per series (or, with `group_by`, per group of
    /// series sharing those labels' values) one point per non-empty bucket,
    /// see [`query::bucketize`]. Results are sorted by labels; series or
    /// groups without points are left out. Series are read in parallel when
    /// there are enough of them.
    pub fn query(
        &self,
        metric: &str,
        matchers: &[Matcher],
        from: i64,
        to: i64,
        spec: &QuerySpec,
    ) -> Result<Vec<QueryResult>> {
        if from > to {
            return Err(EngineError::invalid(format!(
                "from ({from}) is after to ({to})"
            )));
        }
        let series = self.select(metric, matchers)?;
        let min_parallel = if self.all_cached(&series, from, to) {
            128
        } else {
            16
        };
        let aggregation = match (spec.step, spec.agg) {
            (None, None) if spec.group_by.is_none() => None,
            (Some(step), Some(agg)) if step > 0 => Some((step, agg)),
            (Some(step), Some(_)) => {
                return Err(EngineError::invalid(format!(
                    "step must be positive, got {step}"
                )))
            }
            (None, Some(_)) => return Err(EngineError::invalid("agg needs a step")),
            (Some(_), None) => return Err(EngineError::invalid("step needs an agg")),
            (None, None) => return Err(EngineError::invalid("group_by needs a step and an agg")),
        };
        let step_seconds = |step: i64| step as f64 / self.config.units_per_second as f64;
        let plan = aggregation.and_then(|(step, _)| self.step_plan(from, to, step));
        if let Some((step, _)) = aggregation {
            if let Some(why) = self.unanswerable(from, to, step, plan.as_ref()) {
                return Err(EngineError::invalid(why));
            }
        }
        // One series' buckets: from tier rows where a tier serves the step.
        let bucketed = |id: SeriesId, step: i64| -> Result<query::Buckets> {
            Ok(match &plan {
                Some(plan) => {
                    let runs = self.series_runs(id, from, to, plan, spec.on_damage)?;
                    query::bucketize(runs, from, step)
                }
                None => {
                    let points = self.series_points(id, from, to, spec.on_damage)?;
                    query::bucketize(summary::samples(points.iter()), from, step)
                }
            })
        };
        let (Some((step, agg)), Some(group_by)) = (aggregation, &spec.group_by) else {
            // One result per series: its raw points, or its buckets.
            let points = parallel::map(&series, parallel::cores(), min_parallel, |(id, _)| {
                Ok(match aggregation {
                    None => self.series_points(*id, from, to, spec.on_damage)?,
                    Some((step, agg)) => {
                        let buckets = bucketed(*id, step)?;
                        Points::owned(query::finalize(&buckets, agg, step_seconds(step)))
                    }
                })
            })?;
            return Ok(series
                .iter()
                .zip(points)
                .filter(|(_, points)| !points.is_empty())
                .map(|((_, key), points)| QueryResult {
                    labels: key.labels.to_vec(),
                    points,
                })
                .collect());
        };
        let buckets = parallel::map(&series, parallel::cores(), min_parallel, |(id, _)| {
            bucketed(*id, step)
        })?;
        let mut groups: BTreeMap<LabelSet, query::Buckets> = BTreeMap::new();
        for ((_, key), b) in series.iter().zip(buckets) {
            let group: LabelSet = group_by
                .iter()
                .filter_map(|name| key.label(name).map(|v| (name.as_str().into(), v.into())))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let merged = match groups.remove(&group) {
                Some(into) => query::combine(into, &b),
                None => b,
            };
            groups.insert(group, merged);
        }
        Ok(groups
            .into_iter()
            .filter(|(_, b)| !b.is_empty())
            .map(|(labels, b)| QueryResult {
                labels,
                points: Points::owned(query::finalize(&b, agg, step_seconds(step))),
            })
            .collect())
    }

    /// True when every chunk the series need in `[from, to]` is decoded in
    /// the cache (a query then costs microseconds per series).
    fn all_cached(&self, series: &[(SeriesId, Arc<SeriesKey>)], from: i64, to: i64) -> bool {
        series.iter().all(|(id, _)| {
            self.index
                .lookup(*id, from, to)
                .iter()
                .all(|c| self.cache.contains_key(&(c.segment.seq, c.index as u32)))
        })
    }

    /// One series' points in `[from, to]`, last write wins; a damaged
    /// chunk is an error.
    pub fn read_series(&self, id: SeriesId, from: i64, to: i64) -> Result<Vec<Point>> {
        self.series_points(id, from, to, OnDamage::Fail)
            .map(|p| p.iter().collect())
    }

    /// One series' points in `[from, to]`: parts of cached chunks are shared,
    /// not copied, unless sources overlap in time and must be merged.
    pub(super) fn series_points(
        &self,
        id: SeriesId,
        from: i64,
        to: i64,
        on_damage: OnDamage,
    ) -> Result<Points> {
        let from = from.max(self.cutoff());
        if from > to {
            return Ok(Points::owned(Vec::new()));
        }
        // A segment replaced by compaction or dropped by retention between
        // the index lookup and the read: look up again (rarely twice).
        for _ in 0..4 {
            if let Some(points) = self.read_series_once(id, from, to, on_damage)? {
                return Ok(points);
            }
        }
        Err(EngineError::invalid(format!(
            "series {id} kept changing under compaction; try again"
        )))
    }

    fn read_series_once(
        &self,
        id: SeriesId,
        from: i64,
        to: i64,
        on_damage: OnDamage,
    ) -> Result<Option<Points>> {
        // Buffers before the index: a flush that finishes in between is
        // then seen twice (harmless), never missed.
        let buffered = self.buffers.read(id, from, to);
        let chunks = self.index.lookup(id, from, to);
        let mut decoded = Vec::with_capacity(chunks.len());
        for chunk in &chunks {
            match self.chunk_points(chunk) {
                Ok(points) => decoded.push(points),
                Err(_) if chunk.segment.is_removed() => return Ok(None),
                Err(err) if on_damage == OnDamage::Skip && is_damage(&err) => {}
                Err(err) => return Err(err),
            }
        }
        let runs = decoded
            .into_iter()
            .map(|chunk| {
                let range = query::range_of(&chunk.points, from, to);
                Run::Shared(chunk, range)
            })
            .chain(buffered.into_iter().map(Run::Owned))
            .collect();
        Ok(Some(Points::from_runs(runs)))
    }
}
