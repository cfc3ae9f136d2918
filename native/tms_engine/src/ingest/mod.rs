//! Bulk import: whole bodies in the formats Prometheus' and
//! VictoriaMetrics' clients send, parsed in one pass into one labeled batch
//! (sink.rs) that the engine writes all or nothing. No term per sample or
//! label: series are identified from the bytes as parsed.

mod decimal;
pub mod json_lines;
mod json_scan;
pub mod prom_text;
pub mod remote_write;
pub mod sequence;
mod sink;

pub use sequence::Sequences;
pub use sink::ImportOptions;
use sink::{Known, Sink};

use crate::batch::LabeledBatch;
use crate::error::Result;
use std::borrow::Cow;

/// The formats [`parse`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition 0.0.4.
    PrometheusText,
    /// VictoriaMetrics' JSON lines.
    JsonLines,
    /// A remote_write 1.0 `WriteRequest`, already decompressed
    /// ([`remote_write::decompress`]).
    RemoteWrite,
}

/// A parsed body: the batch to write and what was skipped.
pub struct Parsed<'a> {
    pub batch: LabeledBatch<'a, Cow<'a, str>, Cow<'a, str>>,
    /// Exemplars, histograms and metadata (remote_write), not stored.
    pub ignored: u64,
    /// What, besides the spelling, decides a series (format, extra labels).
    pub seed: u64,
    /// Spelled series no remembered sequence predicted.
    pub unpredicted: usize,
}

/// Parses `body` in `format` for a store of `units_per_second`; `known`
/// answers series earlier imports spelled (see sink.rs), `sequences` the
/// order earlier bodies spelled them in (sequence.rs).
pub fn parse<'a>(
    format: Format,
    body: &'a [u8],
    opts: &'a ImportOptions,
    units_per_second: i64,
    known: Known<'a>,
    sequences: &'a Sequences,
) -> Result<Parsed<'a>> {
    let seed = sink::import_seed(format as u8, opts);
    // A sample costs some 40 bytes of text or protobuf at least; past a few
    // thousand samples growing costs little, and a huge body must not
    // reserve memory for what it merely claims.
    let mut sink = Sink::new(opts, units_per_second)
        .expecting((body.len() / 40).min(1 << 14))
        .recognizing(seed, known)
        .following(sequences);
    let ignored = match format {
        Format::PrometheusText => prom_text::parse(body, &mut sink).map(|()| 0)?,
        Format::JsonLines => json_lines::parse(body, &mut sink).map(|()| 0)?,
        Format::RemoteWrite => remote_write::parse(body, &mut sink)?,
    };
    Ok(Parsed {
        unpredicted: sink.unpredicted,
        seed: sink.seed(),
        batch: sink.batch,
        ignored,
    })
}
