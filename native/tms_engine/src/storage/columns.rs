//! Timestamp columns shared by the chunks of one segment.
//!
//! Every series of one scrape target carries the same timestamps (a
//! scraper stamps a whole scrape with one time), and real scrape times
//! jitter by tens of milliseconds, so compressed timestamps cost more than
//! most series' values. A segment therefore stores each distinct timestamp
//! array once, as a column, and lets every chunk with that array refer to
//! it: the jitter is paid once per target, not once per series.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::hash::FastBuildHasher;
use crate::types::Point;

/// Which runs share which timestamp column.
#[derive(Debug, PartialEq, Eq)]
pub struct Sharing {
    /// For each run, the index of its column.
    pub column_of: Vec<u32>,
    /// For each column, the first run holding its timestamps.
    pub holder: Vec<usize>,
}

/// Groups `runs` by their timestamps: runs whose timestamp arrays are equal
/// (found by a hash, confirmed by comparing every timestamp) share a
/// column; any difference, one timestamp more or one moved, makes a column
/// of its own. Columns are numbered in order of first use.
pub fn share(runs: &[&[Point]]) -> Sharing {
    let mut by_hash: HashMap<u64, Vec<u32>, FastBuildHasher> = HashMap::default();
    let mut sharing = Sharing {
        column_of: Vec::with_capacity(runs.len()),
        holder: Vec::new(),
    };
    for (i, run) in runs.iter().enumerate() {
        let candidates = by_hash.entry(timestamps_hash(run)).or_default();
        let found = candidates
            .iter()
            .copied()
            .find(|&c| same_timestamps(runs[sharing.holder[c as usize]], run));
        let column = found.unwrap_or_else(|| {
            let c = sharing.holder.len() as u32;
            sharing.holder.push(i);
            candidates.push(c);
            c
        });
        sharing.column_of.push(column);
    }
    sharing
}

fn timestamps_hash(run: &[Point]) -> u64 {
    let mut hasher = FastBuildHasher::default().build_hasher();
    hasher.write_usize(run.len());
    for &(ts, _) in run {
        hasher.write_i64(ts);
    }
    hasher.finish()
}

fn same_timestamps(a: &[Point], b: &[Point]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ts: &[i64]) -> Vec<Point> {
        ts.iter().map(|&t| (t, t as f64)).collect()
    }

    #[test]
    fn identical_timestamps_share_and_any_difference_does_not() {
        let a = run(&[10, 20, 30]);
        let same_as_a = run(&[10, 20, 30]);
        let one_missing = run(&[10, 30]);
        let one_moved = run(&[10, 21, 30]);
        let disjoint = run(&[40, 50]);
        let runs: Vec<&[Point]> = vec![&a, &one_missing, &same_as_a, &one_moved, &disjoint, &a];
        assert_eq!(
            share(&runs),
            Sharing {
                column_of: vec![0, 1, 0, 2, 3, 0],
                holder: vec![0, 1, 3, 4],
            }
        );
    }

    #[test]
    fn values_do_not_matter() {
        let a: Vec<Point> = vec![(1, 1.0), (2, f64::NAN)];
        let b: Vec<Point> = vec![(1, -5.0), (2, 7.0)];
        assert_eq!(share(&[&a, &b]).holder, vec![0]);
    }
}
