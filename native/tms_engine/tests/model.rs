//! Random writes, flushes and restarts checked against an in-memory model.

// Test code: a failed step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{config, points, raw, series, Rng};
use tms_engine::engine::{Config, Engine, FlushScope};

const SERIES: u64 = 6;

fn random_value(rng: &mut Rng) -> f64 {
    match rng.below(20) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => -0.0,
        _ => (rng.below(10_000) as f64) / 100.0,
    }
}

fn check(engine: &Engine, model: &BTreeMap<(u64, i64), u64>, seed: u64, step: usize) {
    for id in 0..SERIES {
        let expected: Vec<(i64, u64)> = model
            .range((id, i64::MIN)..=(id, i64::MAX))
            .map(|(&(_, t), &v)| (t, v))
            .collect();
        assert_eq!(
            points(engine, id),
            expected,
            "seed {seed}, step {step}, series {id}"
        );
        let (from, to) = (1200, 2700);
        let ranged: Vec<(i64, u64)> = expected
            .iter()
            .copied()
            .filter(|p| p.0 >= from && p.0 <= to)
            .collect();
        let got: Vec<(i64, u64)> = engine
            .read_series(id, from, to)
            .unwrap()
            .into_iter()
            .map(|(t, v)| (t, v.to_bits()))
            .collect();
        assert_eq!(got, ranged, "seed {seed}, step {step}, series {id}, ranged");
    }
}

fn run(seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        flush_threshold: 8,
        ..config()
    };
    let mut engine = Engine::open(dir.path(), cfg.clone()).unwrap();
    series(&engine, SERIES as usize);
    let mut model = BTreeMap::new();
    let mut rng = Rng(seed);
    let mut cutoff = i64::MIN;
    for step in 0..120 {
        match rng.below(12) {
            10 => {
                engine.compact(Duration::ZERO).unwrap();
            }
            11 if rng.below(4) == 0 => {
                cutoff = cutoff.max(rng.below(1500) as i64 - 600);
                let report = engine.delete_before(cutoff, false).unwrap();
                assert!(report.unremoved.is_empty());
                model.retain(|&(_, t), _| t >= cutoff);
            }
            0 => {
                engine.flush(FlushScope::All).unwrap();
            }
            1 => {
                engine.flush(FlushScope::Pending).unwrap();
            }
            2 => {
                engine.flush(FlushScope::Idle(Duration::ZERO)).unwrap();
            }
            3 | 11 => {
                if rng.below(2) == 0 {
                    engine.close().unwrap();
                }
                drop(engine);
                engine = Engine::open(dir.path(), cfg.clone()).unwrap();
            }
            _ => {
                let n = 1 + rng.below(30) as usize;
                let entries: Vec<(u64, i64, f64)> = (0..n)
                    .map(|_| {
                        (
                            rng.below(SERIES),
                            rng.below(4000) as i64 - 500,
                            random_value(&mut rng),
                        )
                    })
                    .collect();
                // A batch with a point before the cutoff is refused whole.
                let written = engine.write_raw(&raw(&entries));
                if entries.iter().any(|&(_, t, _)| t < cutoff) {
                    assert!(written.is_err(), "seed {seed} step {step}");
                    continue;
                }
                written.unwrap();
                for (s, t, v) in entries {
                    model.insert((s, t), v.to_bits());
                }
            }
        }
        check(&engine, &model, seed, step);
    }
}

#[test]
fn random_histories_match_the_model() {
    for seed in 1..=12 {
        run(seed * 0x9E37_79B9);
    }
}
