//! Flushed data: pco chunks, the timestamp columns they share, the segment
//! files that hold them, the index of which chunks hold which series, and
//! the scan that builds that index when a store opens.

pub mod chunk;
pub mod chunk_index;
mod columns;
pub mod manifest;
mod scan;
pub mod segment;

pub use chunk_index::{ChunkIndex, ChunkRef, IndexStats};
pub use scan::{load_segments, quarantine, remove_files, Loaded};
pub use segment::{Segment, SegmentInput};
