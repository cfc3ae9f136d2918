//! A batch of labeled points, as every labeled write path hands it to the
//! engine: the NIF's `write_batch` terms and every import format. A leaf:
//! it names nothing else in the crate but the shared types.

use std::borrow::Cow;

use crate::types::SeriesId;

/// Most points one write call may carry (a 100 MB raw batch, or a body):
/// every write path stops collecting at it rather than grow without bound.
pub const MAX_BATCH_POINTS: usize = 1 << 22;

/// A batch of labeled points. Points name their series by index into
/// `series`, so a series repeated in a batch is validated and resolved once.
#[derive(Debug, Default)]
pub struct LabeledBatch<'a, K, V> {
    pub series: Vec<BatchSeries<'a>>,
    /// Label pairs; each series owns the range it names.
    pub labels: Vec<(K, V)>,
    /// `(index into series, timestamp, value)`, in write order.
    pub points: Vec<(usize, i64, f64)>,
}

/// A distinct series of a [`LabeledBatch`].
#[derive(Debug, Clone)]
pub struct BatchSeries<'a> {
    /// Borrowed from the input where it could be, owned where it had to be
    /// unescaped.
    pub metric: Cow<'a, str>,
    pub labels: std::ops::Range<usize>,
    /// The first point using it, for error messages.
    pub first_point: usize,
    /// Set when the caller already identified the series (the engine's
    /// `hinted`); `metric` and `labels` are then not read.
    pub known: Option<SeriesId>,
    /// The caller's own hash of how it received the series, remembered
    /// with the series' id for the engine's `hinted` (or, with `spelling`,
    /// its `spelled`).
    pub hint: Option<u64>,
    /// The bytes that spelled the series in an imported body: remembered
    /// with its id, so the next body that spells it the same way is not
    /// parsed or looked up again.
    pub spelling: Option<&'a [u8]>,
}
