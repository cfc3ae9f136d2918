//! Retention: delete_before drops old segments, filters the rest, and survives a restart.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{open, points, raw, series};
use tms_engine::engine::FlushScope;

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
        let report = engine.delete_before(2500).unwrap();
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
        engine.delete_before(0).unwrap();
        assert_eq!(points(&engine, id).len(), 3);
        assert!(!dir.path().join("chunks/0").exists());
    }
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0).len(), 3);
    assert_eq!(engine.info().segments, 2);
}
