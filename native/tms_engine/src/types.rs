//! The shared vocabulary: series ids, points, and the 24-byte raw entry
//! that is the contract between callers (the NIF's raw batches), the WAL
//! (points records hold raw entries byte for byte) and the buffers.
//!
//! A leaf module: it names nothing else in the crate.

/// Dense, sequential series id, assigned by the registry from 0.
pub type SeriesId = u64;

/// A timestamp and a value.
pub type Point = (i64, f64);

/// Size of one raw entry: `series u64 | timestamp i64 | value f64 bits`,
/// little-endian.
pub const POINT_BYTES: usize = 24;

/// Decodes one raw entry. `entry` must be [`POINT_BYTES`] long (callers
/// split with `chunks_exact(POINT_BYTES)`).
#[inline]
pub fn decode_entry(entry: &[u8]) -> (SeriesId, i64, f64) {
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&entry[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    (word(0), word(8) as i64, f64::from_bits(word(16)))
}

/// Appends one raw entry; the value's bits are kept (NaN payloads too).
#[inline]
pub fn encode_entry(out: &mut Vec<u8>, series: SeriesId, ts: i64, value: f64) {
    out.extend_from_slice(&series.to_le_bytes());
    out.extend_from_slice(&ts.to_le_bytes());
    out.extend_from_slice(&value.to_bits().to_le_bytes());
}

/// The bits of Prometheus' staleness marker, a NaN that ends a series.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// True for a staleness marker (compared by bits: other NaNs are values).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// Sorts by timestamp and keeps the last written point of equal timestamps
/// (last write wins). The sort is stable, and skipped when already in order.
pub fn sort_dedup(points: &mut Vec<Point>, out_of_order: bool) {
    if out_of_order {
        points.sort_by_key(|p| p.0);
    }
    let mut kept = 0;
    for read in 0..points.len() {
        if kept > 0 && points[kept - 1].0 == points[read].0 {
            points[kept - 1] = points[read];
        } else {
            points[kept] = points[read];
            kept += 1;
        }
    }
    points.truncate(kept);
}

/// The start of the interval (a query bucket, a tier interval) of `resolution` holding `ts` (`i64::MIN` for
/// the interval holding it, which starts before any timestamp).
pub fn interval_start(ts: i64, resolution: i64) -> i64 {
    ts.div_euclid(resolution).saturating_mul(resolution)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_round_trips_bit_exact() {
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        let mut raw = Vec::new();
        encode_entry(&mut raw, 7, -3, nan);
        encode_entry(&mut raw, u64::MAX, i64::MIN, -0.0);
        assert_eq!(raw.len(), 2 * POINT_BYTES);
        let (id, ts, v) = decode_entry(&raw[..POINT_BYTES]);
        assert_eq!((id, ts, v.to_bits()), (7, -3, nan.to_bits()));
        let (id, ts, v) = decode_entry(&raw[POINT_BYTES..]);
        assert_eq!(
            (id, ts, v.to_bits()),
            (u64::MAX, i64::MIN, (-0.0f64).to_bits())
        );
    }

    #[test]
    fn sort_dedup_keeps_the_last_write_of_a_timestamp() {
        let mut points = vec![(2, 1.0), (1, 1.0), (2, 2.0), (3, 1.0), (2, 3.0)];
        sort_dedup(&mut points, true);
        assert_eq!(points, vec![(1, 1.0), (2, 3.0), (3, 1.0)]);
        let mut in_order = vec![(1, 1.0), (1, 2.0), (2, 1.0)];
        sort_dedup(&mut in_order, false);
        assert_eq!(in_order, vec![(1, 2.0), (2, 1.0)]);
    }
}
