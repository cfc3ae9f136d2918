//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

pub mod tiers;

use std::path::Path;

use tms_engine::engine::{Config, Engine};

/// A config that keeps tests fast: no fsync, small partitions.
pub fn config() -> Config {
    Config {
        partition_duration: 1_000,
        ..Config::scratch()
    }
}

pub fn open(dir: &Path) -> Engine {
    Engine::open(dir, config()).unwrap()
}

/// Encodes `(series, ts, value)` entries as a raw batch.
pub fn raw(entries: &[(u64, i64, f64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 24);
    for &(s, t, v) in entries {
        tms_engine::types::encode_entry(&mut out, s, t, v);
    }
    out
}

/// Creates series `m{host=h<i>}` for i in 0..n; returns their ids.
pub fn series(engine: &Engine, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            let host = format!("h{i}");
            engine.resolve("m", &mut [("host", host.as_str())]).unwrap()
        })
        .collect()
}

/// Every point of series `id`, bits of values for exact comparison.
pub fn points(engine: &Engine, id: u64) -> Vec<(i64, u64)> {
    engine
        .read_series(id, i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|(t, v)| (t, v.to_bits()))
        .collect()
}

/// A small deterministic generator (xorshift64*), so failures replay.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The segment files of `partition` under `dir`, oldest first.
pub fn segment_files(dir: &Path, partition: i64) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("chunks").join(partition.to_string()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}
