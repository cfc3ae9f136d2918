//! Query arithmetic: merging a series' sources under last-write-wins, and
//! step aggregation into buckets, per series and across series.

use std::ops::Range;
use std::sync::Arc;

use crate::summary::Summary;
use crate::types::{interval_start, is_stale, sort_dedup, Point};

/// Merges runs of points, each sorted and deduplicated and ordered oldest
/// write first, into one sorted run where, for equal timestamps, the point
/// from the newest run wins (the rule of every query, before and after
/// flush and restart).
pub fn merge(runs: &[&[Point]]) -> Vec<Point> {
    let disjoint_in_order = runs.windows(2).all(|w| match (w[0].last(), w[1].first()) {
        (Some(a), Some(b)) => a.0 < b.0,
        _ => true,
    });
    let mut all: Vec<Point> = runs.concat();
    if runs.len() > 1 {
        // A stable sort keeps newer runs after older ones for equal
        // timestamps, and the dedup keeps the last of each.
        sort_dedup(&mut all, !disjoint_in_order);
    }
    all
}

/// The positions of a sorted run's points within `[from, to]`.
pub fn range_of(points: &[Point], from: i64, to: i64) -> Range<usize> {
    let start = points.partition_point(|p| p.0 < from);
    let end = points.partition_point(|p| p.0 <= to);
    start..end.max(start)
}

/// A chunk's points as the cache keeps them, with what a query would
/// otherwise work out from them on every read (a pass over every point,
/// which for a query over many series costs as much as the query's own
/// arithmetic). Both facts hold for any part of the chunk.
#[derive(Debug)]
pub struct DecodedChunk {
    pub points: Vec<Point>,
    /// No point is a staleness marker.
    pub no_stale: bool,
    /// No value is lower than the one before it (a counter that never
    /// reset); a NaN anywhere makes it false.
    pub never_falls: bool,
}

impl DecodedChunk {
    pub fn new(points: Vec<Point>) -> DecodedChunk {
        let no_stale = no_stale(&points);
        let never_falls = never_falls(&points);
        DecodedChunk {
            points,
            no_stale,
            never_falls,
        }
    }
}

/// True when no point is a staleness marker.
pub fn no_stale(points: &[Point]) -> bool {
    // Branch-free: it vectorises, and nearly every series passes to its end.
    points.iter().fold(true, |none, p| none & !is_stale(p.1))
}

/// True when no value is lower than the one before it (a counter that
/// never reset); a NaN anywhere makes it false.
pub fn never_falls(points: &[Point]) -> bool {
    // Branch-free: it vectorises, and nearly every counter passes to its end.
    points
        .windows(2)
        .fold(true, |rising, pair| rising & (pair[1].1 >= pair[0].1))
}

/// A sorted run of a series' points: part of a cached chunk (shared, not
/// copied) or points of its own.
#[derive(Debug, Clone)]
pub enum Run {
    Shared(Arc<DecodedChunk>, Range<usize>),
    Owned(Vec<Point>),
}

impl Run {
    fn as_slice(&self) -> &[Point] {
        match self {
            Run::Shared(chunk, range) => &chunk.points[range.clone()],
            Run::Owned(points) => points,
        }
    }
}

/// A series' points in time order, as runs that do not overlap: a query
/// answer that copies no point it does not have to.
#[derive(Debug, Clone, Default)]
pub struct Points {
    runs: Vec<Run>,
}

impl Points {
    /// Points from runs ordered oldest write first. Runs that do not overlap
    /// in time are kept as they are, in time order; overlapping ones are
    /// merged last-write-wins into one.
    pub fn from_runs(mut runs: Vec<Run>) -> Points {
        runs.retain(|r| !r.as_slice().is_empty());
        let mut by_time: Vec<&Run> = runs.iter().collect();
        by_time.sort_by_key(|r| r.as_slice()[0].0);
        let disjoint =
            by_time.windows(2).all(
                |w| match (w[0].as_slice().last(), w[1].as_slice().first()) {
                    (Some(a), Some(b)) => a.0 < b.0,
                    _ => true,
                },
            );
        if disjoint {
            runs.sort_by_key(|r| r.as_slice()[0].0);
            return Points { runs };
        }
        let slices: Vec<&[Point]> = runs.iter().map(Run::as_slice).collect();
        Points::owned(merge(&slices))
    }

    /// Points already sorted and deduplicated.
    pub fn owned(points: Vec<Point>) -> Points {
        Points {
            runs: vec![Run::Owned(points)],
        }
    }

    /// The runs, in time order.
    pub fn runs(&self) -> impl Iterator<Item = &[Point]> {
        self.runs.iter().map(Run::as_slice)
    }

    /// Every point, in time order.
    pub fn iter(&self) -> impl Iterator<Item = Point> + '_ {
        self.runs().flatten().copied()
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.runs().map(<[Point]>::len).sum()
    }

    /// True when there is no point.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when it is known, without a pass, that no point is a staleness
    /// marker: every run is part of a cached chunk that has none.
    pub fn known_no_stale(&self) -> bool {
        self.runs
            .iter()
            .all(|run| matches!(run, Run::Shared(chunk, _) if chunk.no_stale))
    }

    /// True when it is known, without a pass, that no value is lower than
    /// the one before: one run, part of a cached chunk where none is.
    pub fn known_never_falls(&self) -> bool {
        matches!(self.runs.as_slice(), [Run::Shared(chunk, _)] if chunk.never_falls)
    }
}

/// A step aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Min,
    Max,
    Sum,
    Count,
    First,
    Last,
    Rate,
    Increase,
}

impl Agg {
    /// The names [`Agg::from_name`] accepts, for error messages.
    pub const NAMES: &'static str = "avg, min, max, sum, count, first, last, rate, increase";

    /// The aggregation named `name` (`"avg"`, `"rate"`, ...).
    pub fn from_name(name: &str) -> Result<Agg, String> {
        Ok(match name {
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "sum" => Agg::Sum,
            "count" => Agg::Count,
            "first" => Agg::First,
            "last" => Agg::Last,
            "rate" => Agg::Rate,
            "increase" => Agg::Increase,
            other => return Err(format!("agg must be one of {}, got {other:?}", Agg::NAMES)),
        })
    }
}

/// One bucket's totals: the summary of a series' points in it and their
/// counter increase; buckets of several series combine into one.
#[derive(Debug, Clone, Copy)]
pub struct Acc {
    summary: Summary,
    /// Counter increase (see [`bucketize`]); summed across series.
    increase: f64,
}

impl Acc {
    /// Folds in the same bucket of a later series (in result order): on equal
    /// timestamps `first` keeps the earlier series, `last` takes the later.
    fn combine(&mut self, other: &Acc) {
        let (s, o) = (&mut self.summary, &other.summary);
        s.count += o.count;
        s.sum += o.sum;
        s.min = s.min.min(o.min);
        s.max = s.max.max(o.max);
        if o.first.0 < s.first.0 {
            s.first = o.first;
        }
        if o.last.0 >= s.last.0 {
            s.last = o.last;
        }
        self.increase += other.increase;
    }

    fn value(&self, agg: Agg, step_seconds: f64) -> f64 {
        let s = &self.summary;
        match agg {
            Agg::Avg => s.sum / s.count as f64,
            Agg::Min => s.min,
            Agg::Max => s.max,
            Agg::Sum => s.sum,
            Agg::Count => s.count as f64,
            Agg::First => s.first.1,
            Agg::Last => s.last.1,
            Agg::Increase => self.increase,
            Agg::Rate => self.increase / step_seconds,
        }
    }
}

/// Buckets of a series: `(bucket start, totals)`, ascending.
pub type Buckets = Vec<(i64, Acc)>;

/// Puts a series' runs of points into buckets of `step`: a run belongs to
/// the bucket of its first point, `floor(ts / step) * step` (so a run must
/// not cross a bucket edge: a point, or a rollup interval whose width
/// divides `step`). Only buckets starting within the query, at or after
/// `from`, are kept (a partial bucket before `from` is left out); empty
/// buckets are never made. Runs come in time order, and their points lie
/// at or before the query's end; a run starting before `from` is only read
/// for its last point, and only when that point is at or after `from`.
///
/// Counter increases (for rate and increase) follow Prometheus' reset rule
/// (see [`Summary::increase_from`]), each bucket counted from the last
/// point before it within the query (the first point of the range has no
/// such point, and is the baseline of its bucket).
pub fn bucketize(runs: impl IntoIterator<Item = Summary>, from: i64, step: i64) -> Buckets {
    let runs = runs.into_iter();
    let mut buckets: Buckets = Vec::with_capacity(runs.size_hint().0);
    let mut baseline: Option<f64> = None;
    let mut open: Option<(i64, Summary, Option<f64>)> = None;
    let close = |buckets: &mut Buckets, (start, summary, base): (i64, Summary, Option<f64>)| {
        let increase = summary.increase_from(base);
        buckets.push((start, Acc { summary, increase }));
        Some(summary.last.1)
    };
    for run in runs {
        let start = interval_start(run.first.0, step);
        if start < from {
            if run.last.0 >= from {
                baseline = Some(run.last.1);
            }
            continue;
        }
        match &mut open {
            Some((s, summary, _)) if *s == start => summary.append(&run),
            _ => {
                if let Some(done) = open.take() {
                    baseline = close(&mut buckets, done);
                }
                open = Some((start, run, baseline));
            }
        }
    }
    if let Some(done) = open {
        close(&mut buckets, done);
    }
    buckets
}

/// Merges the buckets of a later series into `into`.
pub fn combine(mut into: Buckets, other: &Buckets) -> Buckets {
    // Series scraped together have the same buckets: fold them in place
    // (a 30-day query at a 1 h step of 50 series spent half its time
    // copying bucket lists otherwise).
    if into.len() == other.len() && into.iter().zip(other).all(|(a, b)| a.0 == b.0) {
        for ((_, acc), (_, other)) in into.iter_mut().zip(other) {
            acc.combine(other);
        }
        return into;
    }
    let mut out = Vec::with_capacity(into.len().max(other.len()));
    let (mut a, mut b) = (into.into_iter().peekable(), other.iter().peekable());
    loop {
        match (a.peek(), b.peek()) {
            (Some((sa, _)), Some((sb, _))) if sa == sb => {
                if let (Some((s, mut acc)), Some((_, other))) = (a.next(), b.next()) {
                    acc.combine(other);
                    out.push((s, acc));
                }
            }
            (Some((sa, _)), Some((sb, _))) if sa < sb => out.extend(a.next()),
            (Some(_), Some(_)) | (None, Some(_)) => out.extend(b.next().copied()),
            (Some(_), None) => out.extend(a.next()),
            (None, None) => return out,
        }
    }
}

/// The aggregated points of buckets. `step_seconds` is the step in seconds
/// (for rate, which is an increase per second).
pub fn finalize(buckets: &Buckets, agg: Agg, step_seconds: f64) -> Vec<Point> {
    buckets
        .iter()
        .map(|(s, acc)| (*s, acc.value(agg, step_seconds)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::STALE_NAN;

    #[test]
    fn newer_runs_win_equal_timestamps() {
        let merged = merge(&[
            &[(1, 1.0), (2, 1.0), (3, 1.0)],
            &[(2, 2.0)],
            &[(0, 3.0), (3, 3.0)],
        ]);
        assert_eq!(merged, vec![(0, 3.0), (1, 1.0), (2, 2.0), (3, 3.0)]);
    }

    #[test]
    fn a_cached_chunk_knows_its_staleness_markers_and_falls() {
        let rising = DecodedChunk::new(vec![(1, 1.0), (2, 1.0), (3, 4.0)]);
        assert!(rising.no_stale && rising.never_falls);
        let reset = DecodedChunk::new(vec![(1, 5.0), (2, 1.0)]);
        assert!(reset.no_stale && !reset.never_falls);
        let stale = DecodedChunk::new(vec![(1, 1.0), (2, f64::from_bits(STALE_NAN))]);
        assert!(!stale.no_stale && !stale.never_falls);
        // Known only of shared runs; one of its own needs a look.
        let shared = Points::from_runs(vec![Run::Shared(Arc::new(rising), 0..3)]);
        assert!(shared.known_no_stale() && shared.known_never_falls());
        let owned = Points::owned(vec![(1, 1.0)]);
        assert!(!owned.known_no_stale() && !owned.known_never_falls());
    }

    #[test]
    fn disjoint_runs_stay_shared_and_overlapping_ones_merge() {
        let chunk = Arc::new(DecodedChunk::new(vec![(5, 1.0), (6, 1.0), (7, 1.0)]));
        let points = Points::from_runs(vec![
            Run::Shared(Arc::clone(&chunk), 1..3),
            Run::Owned(vec![(1, 2.0)]),
        ]);
        assert_eq!(points.runs().count(), 2);
        assert_eq!(
            points.iter().collect::<Vec<_>>(),
            vec![(1, 2.0), (6, 1.0), (7, 1.0)]
        );
        let overlapping =
            Points::from_runs(vec![Run::Shared(chunk, 0..3), Run::Owned(vec![(6, 9.0)])]);
        assert_eq!(overlapping.runs().count(), 1);
        assert_eq!(
            overlapping.iter().collect::<Vec<_>>(),
            vec![(5, 1.0), (6, 9.0), (7, 1.0)]
        );
        assert_eq!(overlapping.len(), 3);
    }

    #[test]
    fn disjoint_runs_concatenate() {
        assert_eq!(merge(&[&[(1, 1.0)], &[(2, 2.0)]]), vec![(1, 1.0), (2, 2.0)]);
        assert!(merge(&[]).is_empty());
    }

    #[test]
    fn range_of_is_inclusive() {
        let pts = [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)];
        assert_eq!(range_of(&pts, 2, 3), 1..3);
        assert!(range_of(&pts, 5, 9).is_empty());
        assert!(range_of(&pts, 3, 2).is_empty());
    }

    fn agg_of(points: &[Point], agg: Agg) -> Vec<Point> {
        finalize(
            &bucketize(points.iter().copied().map(Summary::of), 0, 10),
            agg,
            10.0,
        )
    }

    #[test]
    fn buckets_align_to_multiples_of_step_and_skip_a_partial_first_bucket() {
        let points = [(3, 1.0), (9, 3.0), (10, 5.0), (25, 7.0)];
        assert_eq!(
            finalize(
                &bucketize(points.iter().copied().map(Summary::of), 0, 10),
                Agg::Avg,
                10.0
            ),
            vec![(0, 2.0), (10, 5.0), (20, 7.0)]
        );
        assert_eq!(
            finalize(
                &bucketize(points.iter().copied().map(Summary::of), 5, 10),
                Agg::Count,
                10.0
            ),
            vec![(10, 1.0), (20, 1.0)]
        );
        let negative = [(-15, 1.0), (-5, 2.0)];
        assert_eq!(
            finalize(
                &bucketize(negative.iter().copied().map(Summary::of), -20, 10),
                Agg::Sum,
                10.0
            ),
            vec![(-20, 1.0), (-10, 2.0)]
        );
    }

    #[test]
    fn every_aggregation_of_one_bucket() {
        let points = [(1, 4.0), (2, f64::NAN), (3, 1.0), (4, 9.0)];
        assert_eq!(agg_of(&points, Agg::Min), vec![(0, 1.0)]);
        assert_eq!(agg_of(&points, Agg::Max), vec![(0, 9.0)]);
        assert!(agg_of(&points, Agg::Avg)[0].1.is_nan());
        assert!(agg_of(&points, Agg::Sum)[0].1.is_nan());
        assert_eq!(agg_of(&points, Agg::Count), vec![(0, 4.0)]);
        assert_eq!(agg_of(&points, Agg::First), vec![(0, 4.0)]);
        assert_eq!(agg_of(&points, Agg::Last), vec![(0, 9.0)]);
        assert!(agg_of(&[(1, f64::NAN)], Agg::Max)[0].1.is_nan());
    }

    #[test]
    fn counter_resets_count_the_new_value_and_the_first_point_is_the_baseline() {
        // 10 -> 15 (+5) -> 2 (reset: +2) | 6 (+4) -> 8 (+2)
        let points = [(1, 10.0), (5, 15.0), (8, 2.0), (12, 6.0), (15, 8.0)];
        assert_eq!(agg_of(&points, Agg::Increase), vec![(0, 7.0), (10, 6.0)]);
        assert_eq!(agg_of(&points, Agg::Rate), vec![(0, 0.7), (10, 0.6)]);
        // A partial first bucket still provides the baseline.
        let from_5 = finalize(
            &bucketize(points[1..].iter().copied().map(Summary::of), 5, 10),
            Agg::Increase,
            10.0,
        );
        assert_eq!(from_5, vec![(10, 6.0)]);
    }

    #[test]
    fn buckets_of_several_series_combine() {
        let a = bucketize([(1, 1.0), (11, 2.0)].map(Summary::of), 0, 10);
        let b = bucketize([(1, 3.0), (21, 4.0)].map(Summary::of), 0, 10);
        let both = combine(a, &b);
        assert_eq!(
            finalize(&both, Agg::Sum, 1.0),
            vec![(0, 4.0), (10, 2.0), (20, 4.0)]
        );
        assert_eq!(
            finalize(&both, Agg::Avg, 1.0),
            vec![(0, 2.0), (10, 2.0), (20, 4.0)]
        );
        // Equal timestamps: first keeps the earlier series, last takes the later.
        assert_eq!(finalize(&both, Agg::First, 1.0)[0], (0, 1.0));
        assert_eq!(finalize(&both, Agg::Last, 1.0)[0], (0, 3.0));
    }
}
