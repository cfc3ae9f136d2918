//! The write-ahead log: every accepted point is here before it is
//! acknowledged.
//!
//! Three concerns, one file each: frame.rs frames opaque payloads in
//! checksummed records of `wal/<seq, 20 digits>.wal` segments (and says what
//! makes a frame torn or corrupt); log.rs appends, rotates and deletes
//! segments; sync.rs decides when they reach stable storage. record.rs alone
//! knows what a payload means (points, series announcements), as Prometheus
//! separates `tsdb/wlog` from `tsdb/record`; packed.rs is the compact layout
//! of points.

mod frame;
mod log;
mod packed;
mod record;
mod sync;

pub use frame::ReplayReport;
pub use log::{segments, Appended, Wal};
pub use record::{replay, Record, MAX_RECORD_POINTS};
pub use sync::{SyncMode, Syncer};

#[cfg(test)]
mod tests;
