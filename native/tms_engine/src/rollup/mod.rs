//! Rollup tiers: per series and per interval of a tier's resolution, the
//! [`Summary`] of the raw points in it, kept longer than raw data and read
//! by queries coarse enough to be answered from it.
//!
//! Intervals are `[start, start + resolution)` with `start` a multiple of
//! the resolution: a range query's step buckets (the same shape) and a
//! Prometheus 2.42 window `[t - range, t]` with `t` and `range` multiples
//! of the resolution (whole intervals, plus the point at `t` itself, which
//! is the first point of the interval starting at `t` when it lies exactly
//! there) are then made of whole intervals. A tier is built from the raw
//! points of one closed time partition (partitions are multiples of every
//! resolution, so no interval crosses one), and each coarser tier from the
//! finest, so every tier sums the same runs in the same order.

mod file;
mod index;

pub use file::{open, write, TierFile, TierRows};
pub use index::{LoadedTiers, TierIndex};

use crate::error::{EngineError, Result};
use crate::summary::Summary;
use crate::types::{interval_start, Point};

/// One tier's settings, in the store's timestamp unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct Tier {
    pub resolution: i64,
    /// How far back the tier keeps intervals; `None`: forever.
    pub retention: Option<i64>,
}

/// Checks a store's tiers: finest first, each resolution a multiple of the
/// one before and a divisor of the partition width, retentions growing.
pub fn validate(tiers: &[Tier], partition_duration: i64) -> Result<()> {
    let bad = |what: String| Err(EngineError::invalid(what));
    for (i, tier) in tiers.iter().enumerate() {
        if tier.resolution <= 0 || partition_duration % tier.resolution != 0 {
            return bad(format!(
                "rollup resolution {} must be positive and divide the partition duration {partition_duration}",
                tier.resolution
            ));
        }
        if tier.retention.is_some_and(|r| r <= 0) {
            return bad(format!(
                "the retention of the {} rollup must be positive",
                tier.resolution
            ));
        }
        if let Some(finer) = i.checked_sub(1).map(|j| tiers[j]) {
            if tier.resolution <= finer.resolution || tier.resolution % finer.resolution != 0 {
                return bad(format!(
                    "rollup resolutions must grow, each a multiple of the one before: {} after {}",
                    tier.resolution, finer.resolution
                ));
            }
            let longer = match (finer.retention, tier.retention) {
                (_, None) => true,
                (None, Some(_)) => false,
                (Some(a), Some(b)) => b >= a,
            };
            if !longer {
                return bad(format!(
                    "rollup retentions must grow with the resolution: the {} rollup keeps less than the {} one",
                    tier.resolution, finer.resolution
                ));
            }
        }
    }
    Ok(())
}

/// Summaries of sorted points, one per interval holding a sample (see
/// [`crate::summary::samples`]), in time order.
pub fn summarize(points: &[Point], resolution: i64) -> Vec<Summary> {
    coarsen(crate::summary::samples(points.iter().copied()), resolution)
}

/// Joins time-ordered summaries (each inside one interval of `resolution`)
/// into one per interval.
pub fn coarsen(runs: impl IntoIterator<Item = Summary>, resolution: i64) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    for run in runs {
        match out.last_mut() {
            Some(open)
                if interval_start(open.first.0, resolution)
                    == interval_start(run.first.0, resolution) =>
            {
                open.append(&run)
            }
            _ => out.push(run),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(resolution: i64, retention: Option<i64>) -> Tier {
        Tier {
            resolution,
            retention,
        }
    }

    #[test]
    fn tiers_must_nest_and_keep_longer() {
        let day = 86_400;
        assert!(validate(&[tier(300, Some(90 * day)), tier(3600, None)], day).is_ok());
        assert!(validate(&[], day).is_ok());
        for bad in [
            vec![tier(0, None)],
            vec![tier(7, None)],
            vec![tier(3600, None), tier(300, None)],
            vec![tier(300, None), tier(450, None)],
            vec![tier(300, Some(10)), tier(3600, Some(5))],
            vec![tier(300, None), tier(3600, Some(5))],
            vec![tier(300, Some(0))],
        ] {
            assert!(validate(&bad, day).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn summaries_split_at_interval_edges_and_coarsen_to_the_same_totals() {
        let points: Vec<Point> = (-5..25).map(|i| (i * 7, f64::from(i as i32))).collect();
        let fine = summarize(&points, 10);
        assert!(fine
            .iter()
            .all(|s| interval_start(s.first.0, 10) == interval_start(s.last.0, 10)));
        assert_eq!(fine.iter().map(|s| s.count).sum::<u64>(), 30);
        assert_eq!(coarsen(fine.iter().copied(), 50), summarize(&points, 50));
        assert_eq!(interval_start(-1, 10), -10);
    }
}
