//! Retention: delete_before drops old segments, filters the rest, and survives a restart.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{open, points, raw, series};
use tms_engine::engine::FlushScope;
use tms_engine::error::EngineError;

#[test]
fn delete_before_drops_old_segments_filters_the_rest_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let id = series(&engine, 1)[0];
        for partition in 0..4i64 {
            engine
                .write_raw(&raw(&[
                    (id, partition * 1000, 1.0),
                    (id, partition * 1000 + 900, 2.0),
                ]))
                .unwrap();
            engine.flush(FlushScope::All).unwrap();
        }
        let report = engine.delete_before(2500, false).unwrap();
        assert_eq!(report.segments_removed, 2);
        assert!(report.unremoved.is_empty());
        assert_eq!(
            points(&engine, id),
            vec![
                (2900, 2.0f64.to_bits()),
                (3000, 1.0f64.to_bits()),
                (3900, 2.0f64.to_bits())
            ]
        );
        // The cutoff never moves back.
        engine.delete_before(0, false).unwrap();
        assert_eq!(points(&engine, id).len(), 3);
        assert!(!dir.path().join("chunks/0").exists());
    }
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0).len(), 3);
    assert_eq!(engine.info().segments, 2);
}

#[test]
fn a_cutoff_out_of_range_or_past_all_data_and_now_is_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let id = series(&engine, 1)[0];
    engine.write_raw(&raw(&[(id, 5_000, 1.0)])).unwrap();
    let invalid = |r: Result<_, EngineError>| matches!(r, Err(EngineError::InvalidArgument(_)));
    assert!(invalid(engine.delete_before(i64::MAX, false)));
    assert!(invalid(engine.delete_before(i64::MAX, true)));
    // Year 8307 in milliseconds: in range, but far past data and clock.
    let far = 200_000_000_000_000;
    assert!(invalid(engine.delete_before(far, false)));
    assert_eq!(points(&engine, id).len(), 1);
    // Up to the wall clock needs no force; past it, force says "I mean it".
    engine.delete_before(4_000, false).unwrap();
    engine.delete_before(far, true).unwrap();
    assert!(points(&engine, id).is_empty());
}

#[test]
fn a_write_before_the_cutoff_is_an_error_not_a_silent_loss() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let id = series(&engine, 1)[0];
    engine.delete_before(1_000, false).unwrap();
    let refused = engine.write_raw(&raw(&[(id, 1_000, 1.0), (id, 999, 2.0)]));
    match refused {
        Err(EngineError::InvalidArgument(message)) => {
            assert!(message.contains("entry 1"), "{message}");
            assert!(message.contains("retention cutoff 1000"), "{message}");
        }
        other => panic!("expected an invalid argument, got {other:?}"),
    }
    assert!(points(&engine, id).is_empty(), "the batch is refused whole");
    engine.write_raw(&raw(&[(id, 1_000, 1.0)])).unwrap();
    drop(engine);
    // The cutoff is durable: after a restart the same write is refused.
    let engine = open(dir.path());
    assert!(engine.write_raw(&raw(&[(id, 999, 2.0)])).is_err());
    assert_eq!(points(&engine, id), vec![(1_000, 1.0f64.to_bits())]);
}
