//! Write, close or drop, reopen: what comes back.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{open, points, raw, series};
use tms_engine::engine::FlushScope;
use tms_engine::error::EngineError;

#[test]
fn flushed_and_unflushed_points_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let before;
    {
        let engine = open(dir.path());
        let ids = series(&engine, 3);
        engine
            .write_raw(&raw(&[
                (ids[0], 1, 1.0),
                (ids[1], 2, 2.0),
                (ids[2], 1500, 3.0),
            ]))
            .unwrap();
        engine.flush(FlushScope::All).unwrap();
        engine
            .write_raw(&raw(&[(ids[0], 3, 4.0), (ids[2], 2500, 5.0)]))
            .unwrap();
        before = (0..3).map(|id| points(&engine, id)).collect::<Vec<_>>();
        // Dropped without close: the last two points live only in the WAL.
    }
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.series, 3);
    assert_eq!(info.wal_replayed_points, 2);
    assert_eq!(info.buffered_points, 2);
    let after = (0..3).map(|id| points(&engine, id)).collect::<Vec<_>>();
    assert_eq!(before, after);
    assert_eq!(after[0].len(), 2);
}

#[test]
fn close_flushes_everything_and_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let ids = series(&engine, 2);
        engine
            .write_raw(&raw(&[(ids[0], 10, 1.0), (ids[1], 20, 2.0)]))
            .unwrap();
        engine.close().unwrap();
        assert_eq!(
            engine.write_raw(&raw(&[(0, 1, 1.0)])),
            Err(EngineError::Closed)
        );
        assert!(matches!(
            engine.flush(FlushScope::All),
            Err(EngineError::Closed)
        ));
        engine.close().unwrap();
    }
    let engine = open(dir.path());
    let info = engine.info();
    assert_eq!(info.wal_replayed_points, 0);
    assert_eq!(info.segments, 1);
    assert_eq!(points(&engine, 1), vec![(20, 2.0f64.to_bits())]);
}

#[test]
fn last_write_wins_in_buffers_segments_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        let id = series(&engine, 1)[0];
        engine
            .write_raw(&raw(&[(id, 5, 1.0), (id, 5, 2.0)]))
            .unwrap();
        assert_eq!(points(&engine, id), vec![(5, 2.0f64.to_bits())]);
        engine.flush(FlushScope::All).unwrap();
        engine.write_raw(&raw(&[(id, 5, 3.0)])).unwrap();
        assert_eq!(points(&engine, id), vec![(5, 3.0f64.to_bits())]);
        engine.flush(FlushScope::All).unwrap();
        engine
            .write_raw(&raw(&[(id, 5, 4.0), (id, 4, 0.5)]))
            .unwrap();
        assert_eq!(
            points(&engine, id),
            vec![(4, 0.5f64.to_bits()), (5, 4.0f64.to_bits())]
        );
    }
    let engine = open(dir.path());
    assert_eq!(
        points(&engine, 0),
        vec![(4, 0.5f64.to_bits()), (5, 4.0f64.to_bits())]
    );
    engine.flush(FlushScope::All).unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(
        points(&engine, 0),
        vec![(4, 0.5f64.to_bits()), (5, 4.0f64.to_bits())]
    );
}

#[test]
fn special_floats_survive_buffers_segments_and_restarts_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let values = [
        f64::NAN,
        f64::from_bits(0x7ff4_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
    ];
    let expected: Vec<(i64, u64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v.to_bits()))
        .collect();
    let entries: Vec<(u64, i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (0, i as i64, *v))
        .collect();
    {
        let engine = open(dir.path());
        series(&engine, 1);
        engine.write_raw(&raw(&entries)).unwrap();
        assert_eq!(points(&engine, 0), expected);
    }
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0), expected);
    engine.close().unwrap();
    drop(engine);
    let engine = open(dir.path());
    assert_eq!(points(&engine, 0), expected);
}

#[test]
fn series_created_after_the_last_snapshot_come_back_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(dir.path());
        series(&engine, 2);
        engine.close().unwrap();
    }
    {
        let engine = open(dir.path());
        let ids = series(&engine, 4);
        assert_eq!(ids, vec![0, 1, 2, 3]);
        engine.write_raw(&raw(&[(3, 7, 7.0)])).unwrap();
    }
    let engine = open(dir.path());
    assert_eq!(engine.info().series, 4);
    assert_eq!(points(&engine, 3), vec![(7, 7.0f64.to_bits())]);
    assert_eq!(engine.resolve("m", &mut [("host", "h3")]).unwrap(), 3);
}
