//! A chunk: one series' sorted, deduplicated points, compressed with pco.
//!
//! Timestamps and values are compressed as two separate pco streams
//! (timestamps as `i64`, values as `f64`). pco is lossless on the bit
//! pattern, so NaN payloads, infinities and -0.0 come back bit-exact. The
//! framing (lengths, counts, checksum) lives in the segment table; a chunk
//! is only ever decoded after its checksum passed.

use crate::buffer::Point;

/// A chunk's two compressed streams.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub timestamps: Vec<u8>,
    pub values: Vec<u8>,
}

/// Compresses sorted, deduplicated points at pco `level` (0 to 12).
pub fn encode(points: &[Point], level: usize) -> Result<Encoded, String> {
    let (timestamps, values): (Vec<i64>, Vec<f64>) = points.iter().copied().unzip();
    let config = pco::ChunkConfig::default().with_compression_level(level);
    let timestamps =
        pco::standalone::simple_compress(&timestamps, &config).map_err(|e| e.to_string())?;
    let values = pco::standalone::simple_compress(&values, &config).map_err(|e| e.to_string())?;
    Ok(Encoded { timestamps, values })
}

/// Decompresses a chunk of `count` points.
pub fn decode(timestamps: &[u8], values: &[u8], count: usize) -> Result<Vec<Point>, String> {
    let ts: Vec<i64> = pco::standalone::simple_decompress(timestamps).map_err(|e| e.to_string())?;
    let vs: Vec<f64> = pco::standalone::simple_decompress(values).map_err(|e| e.to_string())?;
    if ts.len() != count || vs.len() != count {
        return Err(format!(
            "chunk holds {} timestamps and {} values, its table says {count}",
            ts.len(),
            vs.len()
        ));
    }
    Ok(ts.into_iter().zip(vs).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_floats_round_trip_bit_exact() {
        let nan_with_payload = f64::from_bits(0x7ff8_0000_dead_beef);
        let specials = [
            f64::NAN,
            nan_with_payload,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            5e-324,
        ];
        let points: Vec<Point> = specials
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 10_000, *v))
            .collect();
        let enc = encode(&points, 8).unwrap();
        let back = decode(&enc.timestamps, &enc.values, points.len()).unwrap();
        for (a, b) in points.iter().zip(&back) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }

    #[test]
    fn regular_gauges_compress_well() {
        let points: Vec<Point> = (0..8640)
            .map(|i| {
                (
                    1_700_000_000_000 + i * 10_000,
                    ((i % 97) as f64 * 1.25).round() / 100.0,
                )
            })
            .collect();
        let enc = encode(&points, 8).unwrap();
        let bytes = enc.timestamps.len() + enc.values.len();
        assert!(
            bytes < points.len() * 2,
            "{bytes} bytes for {} points",
            points.len()
        );
        assert_eq!(
            decode(&enc.timestamps, &enc.values, points.len()).unwrap(),
            points
        );
    }

    #[test]
    fn a_wrong_count_or_garbage_is_an_error() {
        let enc = encode(&[(1, 1.0), (2, 2.0)], 4).unwrap();
        assert!(decode(&enc.timestamps, &enc.values, 3).is_err());
        assert!(decode(&[1, 2, 3], &enc.values, 2).is_err());
    }
}
