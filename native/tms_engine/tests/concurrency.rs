//! Writers, flushers and readers at once: nothing acknowledged goes missing.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{config, raw, series};
use tms_engine::engine::{Config, Engine, FlushScope};

#[test]
fn concurrent_writes_flushes_and_reads_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        flush_threshold: 64,
        wal_segment_bytes: 16 << 10,
        ..config()
    };
    let writers = 4u64;
    let per_writer = 40u64;
    let batch = 50i64;
    {
        let engine = Arc::new(Engine::open(dir.path(), cfg.clone()).unwrap());
        series(&engine, writers as usize * 2);
        let stop = Arc::new(AtomicBool::new(false));
        let flusher = {
            let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
            thread::spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    match i % 4 {
                        0 => drop(engine.flush(FlushScope::Pending).unwrap()),
                        1 => drop(engine.flush(FlushScope::Idle(Duration::ZERO)).unwrap()),
                        2 => drop(engine.flush(FlushScope::All).unwrap()),
                        _ => assert!(engine.compact(Duration::ZERO).unwrap().unremoved.is_empty()),
                    }
                    i += 1;
                }
            })
        };
        let reader = {
            let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for id in 0..writers * 2 {
                        let pts = engine.read_series(id, i64::MIN, i64::MAX).unwrap();
                        assert!(pts.windows(2).all(|w| w[0].0 < w[1].0));
                    }
                    // The buffered count never dips below zero (it is a u64).
                    assert!(engine.info().buffered_points < 1 << 40);
                }
            })
        };
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let engine = Arc::clone(&engine);
                thread::spawn(move || {
                    for round in 0..per_writer as i64 {
                        let entries: Vec<_> = (0..batch)
                            .map(|i| {
                                (
                                    w * 2 + (i as u64 % 2),
                                    round * batch + i,
                                    (round * batch + i) as f64,
                                )
                            })
                            .collect();
                        engine.write_raw(&raw(&entries)).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        flusher.join().unwrap();
        reader.join().unwrap();
        let expected = (per_writer * batch as u64 / 2) as usize;
        for id in 0..writers * 2 {
            assert_eq!(
                engine.read_series(id, i64::MIN, i64::MAX).unwrap().len(),
                expected
            );
        }
        // Dropped without close: what is not in segments must be in the WAL.
    }
    let engine = Engine::open(dir.path(), cfg).unwrap();
    for id in 0..writers * 2 {
        let pts = engine.read_series(id, i64::MIN, i64::MAX).unwrap();
        assert_eq!(
            pts.len(),
            (per_writer * batch as u64 / 2) as usize,
            "series {id}"
        );
        assert!(pts.iter().all(|&(t, v)| t as f64 == v));
    }
}
