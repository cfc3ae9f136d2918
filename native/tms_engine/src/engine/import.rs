//! `import`: a whole body in an ingest format, parsed, resolved,
//! WAL-appended and buffered in one call, all or nothing.

use super::Engine;
use crate::error::Result;
use crate::ingest::sequence::Sequence;
use crate::ingest::{self, remote_write, Format, ImportOptions};

/// What an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "nif", derive(rustler::NifMap))]
pub struct ImportReport {
    pub samples: u64,
    /// Series the import created (new to the store).
    pub series_created: u64,
    /// Exemplars, native histograms and metadata a remote_write carried,
    /// which the store does not keep.
    pub ignored: u64,
}

impl Engine {
    /// Imports `body`. A malformed body is a `BadInput` error naming its
    /// line, and nothing of it is written.
    pub fn import(
        &self,
        format: Format,
        body: &[u8],
        opts: &ImportOptions,
    ) -> Result<ImportReport> {
        self.check_open()?;
        let before = self.registry.len();
        let decompressed;
        let body = match format {
            Format::RemoteWrite => {
                decompressed = remote_write::decompress(body, opts.max_decompressed)?;
                &decompressed[..]
            }
            _ => body,
        };
        let known = |hash: u64, spelling: &[u8]| self.spelled(hash, spelling);
        let ups = self.config.units_per_second;
        let mut parsed = ingest::parse(format, body, opts, ups, &known, &self.sequences)?;
        let ids = self.write_labeled(&mut parsed.batch)?;
        let series = parsed.batch.series.len();
        self.sequences.remember(series, parsed.unpredicted, || {
            Sequence::of(parsed.seed, &parsed.batch, &ids)
        });
        Ok(ImportReport {
            samples: parsed.batch.points.len() as u64,
            series_created: self.registry.len().saturating_sub(before),
            ignored: parsed.ignored,
        })
    }
}
