//! A table of values indexed by a dense id (pages of series ids).
//!
//! Ids are dense from 0, so a table beats a hash map on the write path: a
//! lookup is an index computation and two loads, no hashing and no probing.
//! Bucket `k` holds `FIRST << k` slots and is allocated when an id in it is
//! first used, so the table grows without ever moving a slot and a slot's
//! address is stable for the table's life.

use std::sync::OnceLock;

use crate::types::SeriesId;

/// Slots of the first bucket (a power of two).
const FIRST_SHIFT: u32 = 6;
/// Buckets: the table holds `FIRST << BUCKETS` minus `FIRST` ids, far past
/// any store's series count.
const BUCKETS: usize = 40;

/// Per-series values, each created by `T::default()` with its bucket.
pub struct Slots<T> {
    buckets: [OnceLock<Box<[T]>>; BUCKETS],
}

impl<T: Default> Slots<T> {
    /// An empty table; no bucket is allocated until used.
    pub fn new() -> Self {
        Slots {
            buckets: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The bucket and offset of `id`; `None` past the table's capacity.
    fn locate(id: SeriesId) -> Option<(usize, usize)> {
        let biased = id.checked_add(1 << FIRST_SHIFT)?;
        let bucket = (63 - biased.leading_zeros() - FIRST_SHIFT) as usize;
        let offset = biased - (1u64 << (bucket as u32 + FIRST_SHIFT));
        (bucket < BUCKETS).then_some((bucket, offset as usize))
    }

    fn bucket_len(bucket: usize) -> usize {
        1 << (bucket as u32 + FIRST_SHIFT)
    }

    /// The slot of `id` if its bucket exists.
    pub fn get(&self, id: SeriesId) -> Option<&T> {
        let (bucket, offset) = Self::locate(id)?;
        self.buckets[bucket].get().map(|b| &b[offset])
    }

    /// The slot of `id`, allocating its bucket if needed; `None` only past
    /// the table's capacity (ids beyond 2^45).
    pub fn get_or_alloc(&self, id: SeriesId) -> Option<&T> {
        let (bucket, offset) = Self::locate(id)?;
        let slots = self.buckets[bucket].get_or_init(|| {
            (0..Self::bucket_len(bucket))
                .map(|_| T::default())
                .collect()
        });
        Some(&slots[offset])
    }

    /// Every allocated slot with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (SeriesId, &T)> {
        self.buckets
            .iter()
            .enumerate()
            .filter_map(|(bucket, slots)| slots.get().map(|s| (bucket, s)))
            .flat_map(|(bucket, slots)| {
                let first = (Self::bucket_len(bucket) - (1 << FIRST_SHIFT)) as SeriesId;
                slots
                    .iter()
                    .enumerate()
                    .map(move |(i, slot)| (first + i as SeriesId, slot))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_its_own_stable_slot() {
        let slots: Slots<std::sync::atomic::AtomicU64> = Slots::new();
        let ids = [0, 1, 63, 64, 65, 191, 192, 10_000, 1 << 20];
        for &id in &ids {
            let slot = slots.get_or_alloc(id).unwrap();
            slot.store(id + 1, std::sync::atomic::Ordering::Relaxed);
            assert!(std::ptr::eq(slot, slots.get(id).unwrap()));
        }
        for &id in &ids {
            let slot = slots.get(id).unwrap();
            assert_eq!(
                slot.load(std::sync::atomic::Ordering::Relaxed),
                id + 1,
                "{id}"
            );
        }
        assert!(slots.get(1 << 30).is_none());
        let seen: Vec<u64> = slots
            .iter()
            .filter(|(_, v)| v.load(std::sync::atomic::Ordering::Relaxed) != 0)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(seen, ids);
        assert_eq!(Slots::<u8>::locate(u64::MAX), None);
    }
}
