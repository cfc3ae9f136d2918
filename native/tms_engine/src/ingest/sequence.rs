//! The order in which earlier bodies spelled their series, to predict the
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
//! Remote_write bodies are windows of such an order: a sender's queue cuts
//! the stream of scraped samples every 2,000 or so, wherever that falls, so
//! a body rarely starts where an earlier one did. A sequence is therefore
//! found not only by its first spelling but also by its *anchors*, the one
//! spelling in [`ANCHOR_EVERY`] whose hash says so: a body that lost its
//! place (or never had one) looks its unpredicted spellings up until one
//! is the start or an anchor of a remembered sequence, and follows that
//! sequence from there. Looking up only anchors (and the first spelling
//! after a prediction failed, which is where the next window starts) keeps
//! the lookups rare when a body follows nothing.
//!
//! A sequence is taken only when the import's seed (its format and extra
//! labels, which change what a spelling means) and the bytes at that place
//! are equal to the body's, not just their hash. A prediction is then only
//! taken when the bytes are equal, so a stale sequence costs misses, never
//! a wrong series: a spelling names the same series for the life of an
//! engine.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::batch::LabeledBatch;
use crate::hash::FastBuildHasher;
use crate::types::SeriesId;

/// One spelling in this many (by hash) is an anchor (a power of two).
pub const ANCHOR_EVERY: u64 = 16;

/// Whether the spelling that hashed to `hash` is an anchor. The hash's high
/// bits decide, so that anchors do not follow the low bits maps use.
pub fn is_anchor(hash: u64) -> bool {
    (hash >> 48).is_multiple_of(ANCHOR_EVERY)
}

/// The hash of a spelling under an import's `seed` (see sink.rs): what the
/// import's caches and the sequences' anchors are found by.
pub fn spelling_hash(seed: u64, bytes: &[u8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = FastBuildHasher::default().build_hasher();
    hasher.write_u64(seed);
    hasher.write(bytes);
    hasher.finish()
}

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
        // Its weight counts what it holds, not what growing reserved.
        sequence.bytes.shrink_to_fit();
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

    /// Bytes of memory it holds, about (its allocations included).
    fn weight(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8 + self.ids.capacity() * 8 + 96
    }

    /// The places it is found by: its start and its anchors, with their
    /// spellings' hashes.
    fn places(&self) -> impl Iterator<Item = (u64, usize)> + '_ {
        (0..self.len()).filter_map(|i| {
            let (bytes, _) = self.get(i)?;
            let hash = spelling_hash(self.seed, bytes);
            (i == 0 || is_anchor(hash)).then_some((hash, i))
        })
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
    /// Whether a spelling was looked up since the last prediction held.
    looked: bool,
}

impl Follower {
    /// The id of `spelling` when it is the series the sequence has next, or
    /// the one after that (the body dropped a series).
    pub fn next(&mut self, spelling: &[u8]) -> Option<SeriesId> {
        let sequence = self.sequence.as_ref()?;
        for skip in 0..2 {
            match sequence.get(self.next + skip) {
                Some((bytes, id)) if bytes == spelling => {
                    self.next += skip + 1;
                    self.looked = false;
                    return Some(id);
                }
                Some(_) => {}
                None => break,
            }
        }
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
        self.next += predicted.skip + 1;
        self.looked = false;
        predicted.id
    }

    /// Whether an unpredicted spelling, hashed to `hash`, is worth looking
    /// up in the remembered sequences: the first since a prediction held
    /// (or of the body), and anchors.
    pub fn should_look(&mut self, hash: u64) -> bool {
        let look = !self.looked || is_anchor(hash);
        self.looked = true;
        look
    }

    /// Follows `sequence` on from its `at`th series, which the body just
    /// spelled; that series' id.
    pub fn resume(&mut self, sequence: Arc<Sequence>, at: usize) -> Option<SeriesId> {
        let (_, id) = sequence.get(at)?;
        *self = Follower {
            sequence: Some(sequence),
            next: at + 1,
            looked: false,
        };
        Some(id)
    }
}

/// An engine's sequences by the hashes of their starts and anchors,
/// bounded.
#[derive(Debug, Default)]
pub struct Sequences {
    inner: RwLock<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    /// Where each start or anchor was last spelled.
    places: HashMap<u64, (Arc<Sequence>, usize), FastBuildHasher>,
    /// Of every sequence remembered since the last clearing (an upper
    /// bound on what is held: a sequence no place names any more is freed).
    weight: usize,
}

/// Memory all sequences of an engine may hold; past it they are dropped
/// and built again as bodies come.
const MAX_WEIGHT: usize = 64 << 20;

/// A body is remembered when more than one series in this many of it went
/// unpredicted: one that followed earlier sequences adds nothing.
const REMEMBER_PAST: usize = 8;

impl Sequences {
    /// The remembered sequence spelling `spelling` (hashed, with `seed`, to
    /// `hash`) at its start or an anchor, and where.
    pub fn find(&self, hash: u64, seed: u64, spelling: &[u8]) -> Option<(Arc<Sequence>, usize)> {
        let (sequence, at) = self.inner.read().places.get(&hash).cloned()?;
        let same = sequence.get(at).is_some_and(|(bytes, _)| bytes == spelling);
        (sequence.seed == seed && same).then_some((sequence, at))
    }

    /// Remembers the sequence of a body of `series` series, built by
    /// `build`, when more than one in [`REMEMBER_PAST`] of them went
    /// `unpredicted`.
    pub fn remember(
        &self,
        series: usize,
        unpredicted: usize,
        build: impl FnOnce() -> Option<Sequence>,
    ) {
        if unpredicted * REMEMBER_PAST <= series {
            return;
        }
        let Some(sequence) = build() else {
            return;
        };
        let sequence = Arc::new(sequence);
        let places: Vec<(u64, usize)> = sequence.places().collect();
        // A place costs a map slot and its share of the map's growth.
        let weight = sequence.weight() + places.len() * 64;
        if weight > MAX_WEIGHT / 4 {
            return;
        }
        let mut inner = self.inner.write();
        if inner.weight + weight > MAX_WEIGHT {
            inner.places.clear();
            inner.weight = 0;
        }
        inner.weight += weight;
        for (hash, at) in places {
            inner.places.insert(hash, (Arc::clone(&sequence), at));
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

    /// A follower that took the sequence's first series.
    fn along(spellings: &[&str]) -> Follower {
        let mut f = Follower::default();
        assert_eq!(f.resume(sequence(spellings), 0), Some(0));
        f
    }

    #[test]
    fn follows_the_same_order() {
        let mut f = along(&["a", "b", "c"]);
        assert_eq!(f.next(b"b"), Some(1));
        assert_eq!(f.next(b"c"), Some(2));
        assert_eq!(f.next(b"d"), None, "past the end");
        assert_eq!(Follower::default().next(b"a"), None, "no sequence");
    }

    #[test]
    fn peeks_at_the_next_two() {
        let mut f = along(&["z", "a{x}", "b", "c"]);
        assert_eq!(f.peek(b"a{x} 1").map(|p| p.len), Some(4));
        assert_eq!(f.peek(b"b 1").map(|p| p.len), Some(1), "the one after");
        assert_eq!(f.peek(b"c 1"), None);
        assert_eq!(f.peek(b"a{"), None);
        let a = f.peek(b"a{x} 1").unwrap();
        assert_eq!(f.take(a), 1);
        let c = f.peek(b"c 1").unwrap();
        assert_eq!(f.take(c), 3, "b was dropped");
    }

    #[test]
    fn steps_over_a_dropped_series_and_waits_at_a_new_one() {
        let mut f = along(&["a", "b", "c", "d"]);
        assert_eq!(f.next(b"c"), Some(2), "b was dropped");
        assert_eq!(f.next(b"new"), None);
        assert_eq!(f.next(b"d"), Some(3), "after a new series, the next");
        assert_eq!(f.next(b"ab"), None, "equal bytes only");
    }

    #[test]
    fn looks_up_the_first_miss_after_a_prediction_then_only_anchors() {
        let (plain, anchor) = (1 << 48, 16 << 48);
        assert!(!is_anchor(plain) && is_anchor(anchor));
        let mut f = along(&["a", "b"]);
        assert!(f.should_look(plain), "the first miss");
        assert!(!f.should_look(plain));
        assert!(f.should_look(anchor));
        assert_eq!(f.next(b"b"), Some(1));
        assert!(f.should_look(plain), "the first miss after a prediction");
    }

    /// `n` distinct spellings.
    fn spellings(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("m{{i=\"{i}\"}}")).collect()
    }

    fn remembered(spellings: &[String], sequences: &Sequences) {
        let refs: Vec<&str> = spellings.iter().map(String::as_str).collect();
        let seq = Sequence::clone(&sequence(&refs));
        sequences.remember(spellings.len(), spellings.len(), || Some(seq));
    }

    #[test]
    fn a_sequence_is_found_by_its_start_and_its_anchors_only() {
        let all = spellings(200);
        let sequences = Sequences::default();
        remembered(&all, &sequences);
        let mut anchors = 0;
        for (i, spelling) in all.iter().enumerate() {
            let hash = spelling_hash(0, spelling.as_bytes());
            let found = sequences.find(hash, 0, spelling.as_bytes());
            if i == 0 || is_anchor(hash) {
                anchors += usize::from(i > 0);
                assert_eq!(found.map(|(_, at)| at), Some(i), "{spelling}");
                assert!(
                    sequences.find(hash, 7, spelling.as_bytes()).is_none(),
                    "seed"
                );
                assert!(sequences.find(hash, 0, b"other").is_none(), "bytes");
            } else {
                assert!(found.is_none(), "{spelling}");
            }
        }
        assert!((4..=30).contains(&anchors), "{anchors} anchors in 200");
    }

    #[test]
    fn a_body_mostly_predicted_is_not_remembered_again() {
        let sequences = Sequences::default();
        let first = spellings(3);
        sequences.remember(16, 2, || Some(Sequence::clone(&sequence(&["x"]))));
        let hash = spelling_hash(0, b"x");
        assert!(sequences.find(hash, 0, b"x").is_none(), "2 of 16 predicted");
        remembered(&first, &sequences);
        let hash = spelling_hash(0, first[0].as_bytes());
        assert!(sequences.find(hash, 0, first[0].as_bytes()).is_some());
    }

    #[test]
    fn memory_stays_bounded() {
        let sequences = Sequences::default();
        let huge = "x".repeat(MAX_WEIGHT / 2);
        remembered(std::slice::from_ref(&huge), &sequences);
        let hash = spelling_hash(0, huge.as_bytes());
        assert!(
            sequences.find(hash, 0, huge.as_bytes()).is_none(),
            "too big to keep"
        );
        for n in 0..200 {
            remembered(&[format!("{n}{}", "x".repeat(1 << 20))], &sequences);
        }
        let inner = sequences.inner.read();
        assert!(inner.weight <= MAX_WEIGHT, "{}", inner.weight);
        assert!(inner.places.len() < 100);
    }
}
