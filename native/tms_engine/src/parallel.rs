//! One helper for data-parallel work: decoding many chunks for a query,
//! compressing many chunks for a flush or a compaction.

use std::sync::OnceLock;

use crate::error::{EngineError, Result};

/// Cores this process may use. Asked once: on Linux the answer comes from
/// cgroup files, about 25 µs a call, which a small query cannot afford.
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` over every item, on up to `threads` scoped threads when there are at
/// least `min_parallel` items (a thread costs tens of microseconds to start:
/// worth it for many chunks, not for a few cached ones). Results keep the
/// items' order; the first error wins; a panicked worker is an
/// [`EngineError::Internal`], never a panic of the caller.
pub fn map<I: Sync, T: Send>(
    items: &[I],
    threads: usize,
    min_parallel: usize,
    f: impl Fn(&I) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    if threads <= 1 || items.len() < min_parallel.max(2) {
        return items.iter().map(&f).collect();
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Result<Vec<T>>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| EngineError::internal("a worker thread panicked"))??;
            out.extend(part);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order_and_the_first_error_wins() {
        let items: Vec<u32> = (0..1000).collect();
        let doubled = map(&items, 4, 2, |x| Ok(x * 2)).unwrap();
        assert_eq!(doubled, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let failed = map(&items, 4, 2, |&x| {
            if x % 300 == 299 {
                Err(EngineError::invalid(format!("item {x}")))
            } else {
                Ok(x)
            }
        });
        assert_eq!(failed, Err(EngineError::invalid("item 299")));
    }

    #[test]
    fn a_panicking_worker_is_an_internal_error() {
        let items: Vec<u32> = (0..64).collect();
        let result = map(&items, 2, 2, |&x| {
            if x == 40 {
                panic!("worker bug");
            }
            Ok(x)
        });
        assert!(matches!(result, Err(EngineError::Internal(_))));
    }
}
