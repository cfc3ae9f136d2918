//! What the engine refuses: a second engine on a directory, bad batches, writes past the memory ceiling.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{open, points, raw, series};
use tms_engine::engine::{Engine, FlushScope};
use tms_engine::error::EngineError;

#[test]
fn a_second_engine_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    assert!(matches!(
        Engine::open(dir.path(), common::config()),
        Err(EngineError::Locked { .. })
    ));
    first.close().unwrap();
    open(dir.path());
}

#[test]
fn bad_batches_are_rejected_whole() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    series(&engine, 1);
    assert!(matches!(
        engine.write_raw(&[0u8; 25]),
        Err(EngineError::InvalidArgument(_))
    ));
    assert_eq!(
        engine.write_raw(&raw(&[(0, 1, 1.0), (7, 1, 1.0)])),
        Err(EngineError::SeriesNotFound { id: 7, entry: 1 })
    );
    assert!(matches!(
        engine.write_raw(&raw(&[(0, 1, 1.0), (0, i64::MAX, 1.0)])),
        Err(EngineError::InvalidArgument(_))
    ));
    assert!(points(&engine, 0).is_empty());
    assert_eq!(engine.info().buffered_points, 0);
}

#[test]
fn writes_past_the_memory_ceiling_are_refused_until_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let config = tms_engine::engine::Config {
        max_buffered_points: 3,
        ..common::config()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    series(&engine, 1);
    engine.write_raw(&raw(&[(0, 1, 1.0), (0, 2, 1.0)])).unwrap();
    assert!(matches!(
        engine.write_raw(&raw(&[(0, 3, 1.0), (0, 4, 1.0)])),
        Err(EngineError::Overloaded {
            buffered: 2,
            incoming: 2,
            limit: 3
        })
    ));
    engine.flush(FlushScope::All).unwrap();
    engine.write_raw(&raw(&[(0, 3, 1.0), (0, 4, 1.0)])).unwrap();
    assert_eq!(points(&engine, 0).len(), 4);
}
