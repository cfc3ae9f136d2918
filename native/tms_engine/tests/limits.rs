//! What the engine refuses: a second engine on a directory, bad batches,
//! writes past the memory ceiling, series past the cardinality limit.

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
fn no_file_deleted_from_under_a_store_lets_a_second_one_in() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    series(&first, 1);
    first.flush(FlushScope::All).unwrap();
    // What an operator's cleanup might do: every plain file in the directory
    // goes (a LOCK file, had there been one, with them).
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::remove_file(&path).unwrap();
        }
    }
    assert!(matches!(
        Engine::open(dir.path(), common::config()),
        Err(EngineError::Locked { .. })
    ));
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
    // A batch that could never fit is the caller's to split, not a retry.
    let huge: Vec<(u64, i64, f64)> = (0..4).map(|t| (0, t, 1.0)).collect();
    assert!(matches!(
        engine.write_raw(&raw(&huge)),
        Err(EngineError::InvalidArgument(_))
    ));
}

#[test]
fn series_past_max_series_are_refused_and_existing_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let config = tms_engine::engine::Config {
        max_series: 2,
        ..common::config()
    };
    let engine = Engine::open(dir.path(), config.clone()).unwrap();
    let ids = series(&engine, 2);
    assert_eq!(
        engine.resolve("m", &mut [("host", "new")]),
        Err(EngineError::CardinalityLimit { limit: 2 })
    );
    assert_eq!(engine.resolve("m", &mut [("host", "h1")]), Ok(ids[1]));
    engine.write_raw(&raw(&[(ids[0], 1, 1.0)])).unwrap();
    assert_eq!(engine.info().series, 2);
    drop(engine);
    // A lower limit after a restart keeps every existing series.
    let lower = tms_engine::engine::Config {
        max_series: 1,
        ..config
    };
    let engine = Engine::open(dir.path(), lower).unwrap();
    assert_eq!(engine.info().series, 2);
    assert_eq!(points(&engine, ids[0]).len(), 1);
    assert!(engine.resolve("m", &mut [("host", "new")]).is_err());
}
