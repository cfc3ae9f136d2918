//! Reading one series: merging chunks and buffers under last-write-wins.

use crate::buffer::{sort_dedup, Point};

/// Merges runs of points, each sorted and deduplicated and ordered oldest
/// write first, into one sorted run where, for equal timestamps, the point
/// from the newest run wins (the rule of every query, before and after
/// flush and restart).
pub fn merge(mut runs: Vec<Vec<Point>>) -> Vec<Point> {
    match runs.len() {
        0 => Vec::new(),
        1 => runs.pop().unwrap_or_default(),
        _ => {
            let disjoint_in_order = runs.windows(2).all(|w| match (w[0].last(), w[1].first()) {
                (Some(a), Some(b)) => a.0 < b.0,
                _ => true,
            });
            let mut all: Vec<Point> = runs.concat();
            // A stable sort keeps newer runs after older ones for equal
            // timestamps, and the dedup keeps the last of each.
            sort_dedup(&mut all, !disjoint_in_order);
            all
        }
    }
}

/// The part of a sorted run within `[from, to]`.
pub fn in_range(points: &[Point], from: i64, to: i64) -> &[Point] {
    let start = points.partition_point(|p| p.0 < from);
    let end = points.partition_point(|p| p.0 <= to);
    &points[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_runs_win_equal_timestamps() {
        let merged = merge(vec![
            vec![(1, 1.0), (2, 1.0), (3, 1.0)],
            vec![(2, 2.0)],
            vec![(0, 3.0), (3, 3.0)],
        ]);
        assert_eq!(merged, vec![(0, 3.0), (1, 1.0), (2, 2.0), (3, 3.0)]);
    }

    #[test]
    fn disjoint_runs_concatenate() {
        assert_eq!(
            merge(vec![vec![(1, 1.0)], vec![(2, 2.0)]]),
            vec![(1, 1.0), (2, 2.0)]
        );
        assert!(merge(vec![]).is_empty());
    }

    #[test]
    fn in_range_is_inclusive() {
        let pts = [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)];
        assert_eq!(in_range(&pts, 2, 3), &pts[1..3]);
        assert!(in_range(&pts, 5, 9).is_empty());
        assert!(in_range(&pts, 3, 2).is_empty());
    }
}
