//! A per-thread cache in front of the engine's shared map of import
//! spellings.
//!
//! Every sample of an import looks its series' spelling up. In the shared
//! map each lookup takes a shard's read lock, a write to a cache line that
//! the other schedulers' threads write too, so on a two-core machine
//! importing from two callers most lookups waited for that line to move
//! between cores (perf: the shared map's lookup was the largest single cost
//! of remote_write import). This cache lives in the thread, so a hit writes
//! nothing shared; the spelling bytes it compares are shared but never
//! written.
//!
//! A spelling names the same series for the life of an engine, so an entry
//! is never stale; entries carry the engine's instance number, unique in
//! the process, so stores never see each other's. A slot holds one entry
//! (direct-mapped): a miss falls back to the shared map and refills it.

use std::cell::RefCell;
use std::sync::Arc;

use crate::types::SeriesId;

/// Slots per thread (a power of two): about 1.3 MB once a thread imports.
const SLOTS: usize = 1 << 15;

struct Slot {
    engine: u64,
    hash: u64,
    id: SeriesId,
    spelling: Arc<[u8]>,
}

thread_local! {
    static SLOTS_OF_THREAD: RefCell<Vec<Option<Slot>>> = const { RefCell::new(Vec::new()) };
}

fn index(engine: u64, hash: u64) -> usize {
    (hash ^ engine.wrapping_mul(0x9E37_79B9_7F4A_7C15)) as usize & (SLOTS - 1)
}

/// The series this thread last saw `engine` spell `spelling` (hashed to
/// `hash`), compared byte for byte.
pub fn get(engine: u64, hash: u64, spelling: &[u8]) -> Option<SeriesId> {
    SLOTS_OF_THREAD.with(|slots| {
        let slots = slots.borrow();
        let slot = slots.get(index(engine, hash))?.as_ref()?;
        (slot.engine == engine && slot.hash == hash && *slot.spelling == *spelling)
            .then_some(slot.id)
    })
}

/// Remembers in this thread that `engine` spells series `id` `spelling`.
pub fn put(engine: u64, hash: u64, id: SeriesId, spelling: Arc<[u8]>) {
    SLOTS_OF_THREAD.with(|slots| {
        let mut slots = slots.borrow_mut();
        if slots.is_empty() {
            slots.resize_with(SLOTS, || None);
        }
        slots[index(engine, hash)] = Some(Slot {
            engine,
            hash,
            id,
            spelling,
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_only_the_same_engine_hash_and_bytes() {
        put(1, 42, 7, Arc::from(&b"m{a=\"1\"}"[..]));
        assert_eq!(get(1, 42, b"m{a=\"1\"}"), Some(7));
        assert_eq!(get(1, 42, b"m{a=\"2\"}"), None, "a hash collision misses");
        assert_eq!(get(2, 42, b"m{a=\"1\"}"), None, "another engine's entry");
        assert_eq!(get(1, 43, b"m{a=\"1\"}"), None);
        // Another thread has its own slots.
        std::thread::spawn(|| assert_eq!(get(1, 42, b"m{a=\"1\"}"), None))
            .join()
            .unwrap();
    }
}
