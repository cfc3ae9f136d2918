//! A flush that cannot write loses nothing and succeeds once it can.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;

use common::{open, points, raw, series};
use tms_engine::engine::FlushScope;
use tms_engine::error::EngineError;

#[test]
fn a_flush_that_cannot_write_keeps_every_point_and_succeeds_once_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let id = series(&engine, 1)[0];
    engine
        .write_raw(&raw(&[(id, 5, 1.0), (id, 1005, 2.0)]))
        .unwrap();
    // Partition 1's directory cannot be created: a file stands in its place.
    fs::write(dir.path().join("chunks/1"), b"in the way").unwrap();
    let err = engine.flush(FlushScope::All).unwrap_err();
    assert!(matches!(err, EngineError::Io { .. }), "{err:?}");
    assert_eq!(engine.info().buffered_points, 1);
    assert_eq!(points(&engine, id).len(), 2);
    fs::remove_file(dir.path().join("chunks/1")).unwrap();
    engine.flush(FlushScope::All).unwrap();
    assert_eq!(engine.info().buffered_points, 0);
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        points(&engine, id),
        vec![(5, 1.0f64.to_bits()), (1005, 2.0f64.to_bits())]
    );
    assert_eq!(engine.info().wal_replayed_points, 0);
}
