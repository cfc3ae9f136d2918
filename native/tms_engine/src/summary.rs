//! What a run of one series' consecutive points adds up to: the totals a
//! step bucket of a range query and an interval of a rollup tier both keep,
//! so that a bucket made of tier intervals and a bucket made of raw points
//! are computed by the same code.
//!
//! A leaf module: it names nothing else in the crate but the point type.

use crate::types::{is_stale, Point};

/// The totals of a non-empty, time-ordered run of one series' points.
///
/// Runs join in time order with [`Summary::append`]; every field of the
/// joined run follows from the fields of its parts, which is what lets a
/// rollup tier answer for the raw points it summarizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub sum: f64,
    /// Sum of squared deviations from the run's mean (for the variance),
    /// joined by Chan's rule, which stays exact for constant runs where a
    /// sum of squares would cancel.
    pub m2: f64,
    /// Smallest and largest value, NaN skipped (NaN when every value is).
    pub min: f64,
    pub max: f64,
    pub first: Point,
    pub last: Point,
    /// The sum of the value before each drop inside the run (a counter
    /// reset, as Prometheus detects it: `value < previous`).
    pub resets: f64,
}

impl Summary {
    /// The run of one point.
    pub fn of(point: Point) -> Summary {
        Summary {
            count: 1,
            sum: point.1,
            // NaN for a NaN or an infinity, as Welford's update gives.
            m2: if point.1.is_finite() { 0.0 } else { f64::NAN },
            min: point.1,
            max: point.1,
            first: point,
            last: point,
            resets: 0.0,
        }
    }

    /// Adds a point after the run's last one (Welford's update of `m2`).
    pub fn push(&mut self, point: Point) {
        let v = point.1;
        if v < self.last.1 {
            self.resets += self.last.1;
        }
        let mean = self.sum / self.count as f64;
        self.count += 1;
        self.sum += v;
        self.m2 += (v - mean) * (v - self.sum / self.count as f64);
        // f64::min/max return the other operand when one is NaN.
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.last = point;
    }

    /// Joins the run that follows this one in time.
    pub fn append(&mut self, later: &Summary) {
        if later.count == 1 {
            return self.push(later.first);
        }
        if later.first.1 < self.last.1 {
            self.resets += self.last.1;
        }
        let (a, b) = (self.count as f64, later.count as f64);
        let delta = later.sum / b - self.sum / a;
        self.m2 += later.m2 + delta * delta * (a * b / (a + b));
        self.count += later.count;
        self.sum += later.sum;
        self.resets += later.resets;
        self.min = self.min.min(later.min);
        self.max = self.max.max(later.max);
        self.last = later.last;
    }

    /// The counter increase over the run, from `baseline` (the value of the
    /// point before the run, if there is one) to its last point: the rise,
    /// plus the value before each reset, as Prometheus' `increase` counts.
    pub fn increase_from(&self, baseline: Option<f64>) -> f64 {
        match baseline {
            Some(before) => {
                let reset = if self.first.1 < before { before } else { 0.0 };
                self.last.1 - before + (self.resets + reset)
            }
            None => self.last.1 - self.first.1 + self.resets,
        }
    }

    /// The population variance of the run's values.
    pub fn variance(&self) -> f64 {
        self.m2 / self.count as f64
    }
}

/// One-point runs of the samples among `points`: a staleness marker says a
/// series ended and is no sample (Prometheus' rule), so no total counts it.
pub fn samples(points: impl IntoIterator<Item = Point>) -> impl Iterator<Item = Summary> {
    points
        .into_iter()
        .filter(|p| !is_stale(p.1))
        .map(Summary::of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn of_points(points: &[Point]) -> Summary {
        let mut s = Summary::of(points[0]);
        for p in &points[1..] {
            s.push(*p);
        }
        s
    }

    #[test]
    fn resets_count_the_value_before_each_drop() {
        // 10 -> 15 -> 2 (reset after 15) -> 6 -> 1 (reset after 6)
        let s = of_points(&[(1, 10.0), (2, 15.0), (3, 2.0), (4, 6.0), (5, 1.0)]);
        assert_eq!(s.resets, 21.0);
        assert_eq!(s.increase_from(None), 1.0 - 10.0 + 21.0);
        assert_eq!(s.increase_from(Some(12.0)), 1.0 - 12.0 + 33.0);
        assert_eq!(s.increase_from(Some(4.0)), 1.0 - 4.0 + 21.0);
        assert_eq!((s.min, s.max, s.count), (1.0, 15.0, 5));
    }

    #[test]
    fn a_constant_run_has_no_variance_and_nan_is_skipped_by_min_and_max() {
        let s = of_points(&[(1, 0.1), (2, 0.1), (3, 0.1)]);
        assert_eq!(s.variance(), 0.0);
        let nan = of_points(&[(1, f64::NAN), (2, 3.0), (3, f64::NAN)]);
        assert_eq!((nan.min, nan.max), (3.0, 3.0));
        assert!(nan.sum.is_nan() && nan.variance().is_nan());
    }

    #[test]
    fn staleness_markers_are_no_samples_but_other_nans_are() {
        let stale = f64::from_bits(crate::types::STALE_NAN);
        let kept: Vec<Summary> = samples([(1, 1.0), (2, stale), (3, f64::NAN)]).collect();
        assert_eq!(kept.len(), 2);
        assert!(kept[1].first.1.is_nan());
    }

    proptest! {
        /// Joining the summaries of a split run gives the summary of the
        /// whole run: exactly for counts, extremes, ends and (with integer
        /// values) sums and resets; to rounding for the variance.
        #[test]
        fn joined_parts_summarize_the_whole(
            values in prop::collection::vec(-1000i32..1000, 2..60),
            cut in 1usize..59,
        ) {
            let points: Vec<Point> =
                values.iter().enumerate().map(|(i, v)| (i as i64, f64::from(*v))).collect();
            let cut = cut.min(points.len() - 1);
            let whole = of_points(&points);
            let mut joined = of_points(&points[..cut]);
            joined.append(&of_points(&points[cut..]));
            prop_assert_eq!(joined.count, whole.count);
            prop_assert_eq!(joined.sum, whole.sum);
            prop_assert_eq!(joined.resets, whole.resets);
            prop_assert_eq!((joined.min, joined.max), (whole.min, whole.max));
            prop_assert_eq!((joined.first, joined.last), (whole.first, whole.last));
            let scale = whole.m2.abs().max(1.0);
            prop_assert!((joined.m2 - whole.m2).abs() <= 1e-9 * scale, "{} {}", joined.m2, whole.m2);
            let mean = whole.sum / whole.count as f64;
            let direct: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
            prop_assert!((whole.m2 - direct).abs() <= 1e-9 * direct.max(1.0));
        }
    }
}
