//! The order in which an earlier body spelled its series, to predict the
//! next body's.
//!
//! A scrape of one target lists the same series in the same order every
//! time, and so does an exporter's body pushed on a timer. Following the
//! previous body line by line, each line costs one comparison with bytes
//! laid out one after another. The alternative, a hash of the spelling and
//! a probe of a cache, lands on a random slot of a table of megabytes for
//! every sample (perf of an HTTP text import: a cache miss on that slot
//! was 11% of all the time spent).
//!
//! A body's sequence is found by the hash of its first spelling and of the
//! import's seed (its format and extra labels, which change what a
//! spelling means), and taken only when both are equal to the body's, not
//! just their hash: the bytes of a later line alone do not say which extra
//! labels they were sent with. A prediction is then only taken when the
//! bytes are equal, so a stale sequence costs misses, never a wrong series:
//! a spelling names the same series for the life of an engine.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::batch::LabeledBatch;
use crate::hash::FastBuildHasher;
use crate::types::SeriesId;

/// The series of one body, in the order it spelled them.
#[derive(Debug, Default, Clone)]
pub struct Sequence {
    /// The import's seed (see sink.rs) the body was spelled under.
    seed: u64,
    bytes: Vec<u8>,
    /// Where each spelling ends in `bytes`.
    ends: Vec<usize>,
    ids: Vec<SeriesId>,
}

impl Sequence {
    /// The sequence of a written batch, spelled under `seed`, whose series
    /// got `ids`; `None` when a series was not spelled (the format had no
    /// one spelling for it).
    pub fn of<K, V>(
        seed: u64,
        batch: &LabeledBatch<'_, K, V>,
        ids: &[SeriesId],
    ) -> Option<Sequence> {
        let mut sequence = Sequence {
            seed,
            bytes: Vec::new(),
            ends: Vec::with_capacity(ids.len()),
            ids: Vec::with_capacity(ids.len()),
        };
        for (series, &id) in batch.series.iter().zip(ids) {
            sequence.push(series.spelling?, id);
        }
        Some(sequence)
    }

    /// Appends the series `id`, spelled `spelling`.
    pub fn push(&mut self, spelling: &[u8], id: SeriesId) {
        self.bytes.extend_from_slice(spelling);
        self.ends.push(self.bytes.len());
        self.ids.push(id);
    }

    /// The `i`th series: its spelling and id.
    pub fn get(&self, i: usize) -> Option<(&[u8], SeriesId)> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some((&self.bytes[start..end], self.ids[i]))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes of memory it holds, about.
    fn weight(&self) -> usize {
        self.bytes.len() + self.ids.len() * 16 + 64
    }
}

/// A series a body's bytes start with, as [`Follower::peek`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Predicted {
    /// The length of its spelling.
    pub len: usize,
    /// Series of the sequence the body dropped before it (0 or 1).
    skip: usize,
    id: SeriesId,
}

/// Walks a body along a sequence.
#[derive(Debug, Default)]
pub struct Follower {
    sequence: Option<Arc<Sequence>>,
    next: usize,
    /// A line that was not the next of the sequence (or the one after).
    strayed: bool,
}

impl Follower {
    /// Follows `sequence` from its start.
    pub fn along(sequence: Option<Arc<Sequence>>) -> Self {
        Follower {
            sequence,
            ..Follower::default()
        }
    }

    /// The id of `spelling` when it is the series the sequence has next, or
    /// the one after that (the body dropped a series).
    pub fn next(&mut self, spelling: &[u8]) -> Option<SeriesId> {
        let Some(sequence) = self.sequence.as_ref() else {
            self.strayed = true;
            return None;
        };
        for skip in 0..2 {
            match sequence.get(self.next + skip) {
                Some((bytes, id)) if bytes == spelling => {
                    self.strayed |= skip > 0;
                    self.next += skip + 1;
                    return Some(id);
                }
                Some(_) => {}
                None => break,
            }
        }
        self.strayed = true;
        None
    }

    /// The series [`next`](Self::next) would take when `rest` starts with
    /// its spelling: a parser that checks the spelling ends there need not
    /// walk its labels, and [`take`](Self::take)s it.
    pub fn peek(&self, rest: &[u8]) -> Option<Predicted> {
        let sequence = self.sequence.as_ref()?;
        (0..2).find_map(|skip| {
            let (bytes, id) = sequence.get(self.next + skip)?;
            rest.starts_with(bytes).then_some(Predicted {
                len: bytes.len(),
                skip,
                id,
            })
        })
    }

    /// Moves past a series [`peek`](Self::peek) predicted; its id.
    pub fn take(&mut self, predicted: Predicted) -> SeriesId {
        self.strayed |= predicted.skip > 0;
        self.next += predicted.skip + 1;
        predicted.id
    }

    /// Whether the body spelled exactly the sequence, so that it need not
    /// be remembered again.
    pub fn followed(&self) -> bool {
        !self.strayed && self.sequence.as_ref().map(|s| s.len()) == Some(self.next)
    }
}

/// An engine's sequences by the hash of their first spelling, bounded.
#[derive(Debug, Default)]
pub struct Sequences {
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    by_first: HashMap<u64, Arc<Sequence>, FastBuildHasher>,
    weight: usize,
}

/// Memory all sequences of an engine may hold; past it they are dropped
/// and built again as bodies come.
const MAX_WEIGHT: usize = 64 << 20;

impl Sequences {
    /// The sequence of bodies that start with `spelling` (hashed, with
    /// the seed, to `first`) under `seed`.
    pub fn get(&self, first: u64, seed: u64, spelling: &[u8]) -> Option<Arc<Sequence>> {
        let sequence = self.inner.lock().by_first.get(&first).cloned()?;
        let starts = sequence.get(0).is_some_and(|(bytes, _)| bytes == spelling);
        (sequence.seed == seed && starts).then_some(sequence)
    }

    /// Remembers the sequence of a body whose first spelling hashed to
    /// `first`, built by `build`, once a body has started that way before:
    /// the first time only an empty sequence is kept, so bodies that never
    /// repeat (remote_write batches, cut wherever a queue fills) cost no
    /// copy of their spellings.
    pub fn remember(&self, first: u64, build: impl FnOnce() -> Option<Sequence>) {
        let seen = self.inner.lock().by_first.contains_key(&first);
        let sequence = if seen { build() } else { None }.unwrap_or_default();
        let sequence = Arc::new(sequence);
        if sequence.weight() > MAX_WEIGHT / 4 {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.weight + sequence.weight() > MAX_WEIGHT {
            inner.by_first.clear();
            inner.weight = 0;
        }
        inner.weight += sequence.weight();
        if let Some(old) = inner.by_first.insert(first, sequence) {
            inner.weight = inner.weight.saturating_sub(old.weight());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(spellings: &[&str]) -> Arc<Sequence> {
        let mut s = Sequence::default();
        for (id, spelling) in spellings.iter().enumerate() {
            s.push(spelling.as_bytes(), id as SeriesId);
        }
        Arc::new(s)
    }

    #[test]
    fn follows_the_same_order() {
        let mut f = Follower::along(Some(sequence(&["a", "b", "c"])));
        assert_eq!(f.next(b"a"), Some(0));
        assert_eq!(f.next(b"b"), Some(1));
        assert!(!f.followed(), "one series is still ahead");
        assert_eq!(f.next(b"c"), Some(2));
        assert!(f.followed());
    }

    #[test]
    fn peeks_at_the_next_two() {
        let mut f = Follower::along(Some(sequence(&["a{x}", "b", "c"])));
        assert_eq!(f.peek(b"a{x} 1").map(|p| p.len), Some(4));
        assert_eq!(f.peek(b"b 1").map(|p| p.len), Some(1), "the one after");
        assert_eq!(f.peek(b"c 1"), None);
        assert_eq!(f.peek(b"a{"), None);
        let a = f.peek(b"a{x} 1").unwrap();
        assert_eq!(f.take(a), 0);
        let c = f.peek(b"c 1").unwrap();
        assert_eq!(f.take(c), 2);
        assert!(!f.followed(), "b was dropped");
    }

    #[test]
    fn steps_over_a_dropped_series_and_waits_at_a_new_one() {
        let mut f = Follower::along(Some(sequence(&["a", "b", "c", "d"])));
        assert_eq!(f.next(b"a"), Some(0));
        assert_eq!(f.next(b"c"), Some(2), "b was dropped");
        assert_eq!(f.next(b"new"), None);
        assert_eq!(f.next(b"d"), Some(3), "after a new series, the next");
        assert!(!f.followed());
        assert_eq!(f.next(b"a"), None, "past the end");
    }

    #[test]
    fn equal_bytes_only() {
        let mut f = Follower::along(Some(sequence(&["ab"])));
        assert_eq!(f.next(b"a"), None);
        assert_eq!(f.next(b"abc"), None);
        let mut none = Follower::along(None);
        assert_eq!(none.next(b"ab"), None);
        assert!(!none.followed());
    }

    #[test]
    fn a_sequence_is_kept_from_its_second_body_and_memory_stays_bounded() {
        let sequences = Sequences::default();
        let build = || Some(Sequence::clone(&sequence(&["a", "b"])));
        sequences.remember(1, build);
        assert!(
            sequences.get(1, 0, b"a").is_none(),
            "the first time, a mark"
        );
        sequences.remember(1, build);
        assert_eq!(sequences.get(1, 0, b"a").unwrap().len(), 2);
        // A hash that collides finds it, but another seed or first spelling
        // does not take it.
        assert!(sequences.get(1, 7, b"a").is_none());
        assert!(sequences.get(1, 0, b"b").is_none());
        let huge = "x".repeat(MAX_WEIGHT / 2);
        sequences.remember(2, || None);
        sequences.remember(2, || Some(Sequence::clone(&sequence(&[&huge]))));
        assert!(
            sequences.get(2, 0, huge.as_bytes()).is_none(),
            "too big to keep"
        );
        let big = "x".repeat(1 << 20);
        for first in 3..200 {
            sequences.remember(first, || None);
            sequences.remember(first, || Some(Sequence::clone(&sequence(&[&big]))));
        }
        let weight = sequences.inner.lock().weight;
        assert!(weight <= MAX_WEIGHT, "{weight}");
        assert!(sequences.inner.lock().by_first.len() < 100);
    }
}
