//! The engine's settings. Their defaults and documentation live in one
//! place, `Tms.Options` on the Elixir side, which passes every field; the
//! engine only checks that the values are usable.

use std::time::Duration;

use crate::error::{EngineError, Result};
use crate::rollup::{self, Tier};
use crate::wal::SyncMode;

/// Engine settings, all of them explicit.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct Config {
    pub wal_sync: SyncMode,
    /// A WAL segment is rotated once it is this large.
    pub wal_segment_bytes: u64,
    /// Width of a time partition, in timestamp units.
    pub partition_duration: i64,
    /// Points in one buffer that queue it for the next pending flush.
    pub flush_threshold: usize,
    /// Ceiling on buffered points; writes past it get `Overloaded`.
    pub max_buffered_points: u64,
    /// Most series the store may hold; creating more is `CardinalityLimit`.
    pub max_series: u64,
    /// pco compression level, 0 to 12.
    pub compression_level: usize,
    /// Size bound of the caches of decoded chunks and (an eighth of it)
    /// decoded timestamp columns.
    pub cache_bytes: u64,
    /// Largest accepted `|timestamp|`.
    pub max_abs_timestamp: i64,
    /// Timestamp units in a second (1000 for milliseconds), for rates.
    pub units_per_second: i64,
    /// Rollup tiers, finest first (see `rollup`).
    pub rollups: Vec<Tier>,
}

impl Config {
    /// Settings for the engine's own tests and benchmarks: millisecond
    /// timestamps, no fsync, day partitions. Not the store's defaults (those
    /// are `Tms.Options`'); callers override what their test is about.
    pub fn scratch() -> Self {
        Config {
            wal_sync: SyncMode::Never,
            wal_segment_bytes: 64 << 20,
            partition_duration: 86_400_000,
            flush_threshold: 8192,
            max_buffered_points: 20_000_000,
            max_series: 10_000_000,
            compression_level: 8,
            cache_bytes: 128 << 20,
            max_abs_timestamp: 253_402_300_799_999,
            units_per_second: 1000,
            rollups: Vec::new(),
        }
    }

    /// Fails with `InvalidArgument` naming the first unusable setting.
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(EngineError::invalid(what.to_string()));
        if let SyncMode::Interval(every) = self.wal_sync {
            if every < Duration::from_millis(1) {
                return bad("wal_sync interval must be at least 1 ms");
            }
        }
        if self.partition_duration <= 0 {
            return bad("partition_duration must be positive");
        }
        if self.flush_threshold == 0 {
            return bad("flush_threshold must be positive");
        }
        if self.compression_level > 12 {
            return bad("compression_level must be 0 to 12");
        }
        if self.wal_segment_bytes < 4096 {
            return bad("wal_segment_bytes must be at least 4096");
        }
        if self.max_abs_timestamp <= 0 {
            return bad("max_abs_timestamp must be positive");
        }
        if self.units_per_second <= 0 {
            return bad("units_per_second must be positive");
        }
        rollup::validate(&self.rollups, self.partition_duration)
    }
}
