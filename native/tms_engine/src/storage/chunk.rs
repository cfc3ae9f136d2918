//! Chunk payloads: timestamps and values compressed with pco.
//!
//! Timestamps and values are two separate pco streams (timestamps as `i64`,
//! values as `f64`): a segment stores each distinct timestamp column once,
//! for every chunk that shares it, and each chunk's values on their own. pco
//! is lossless on the bit pattern, so NaN payloads, infinities and -0.0 come
//! back bit-exact. The framing (lengths, counts, checksums) lives in the
//! segment table; a payload is only ever decoded after its checksum passed.

use crate::types::Point;

/// Compresses sorted, distinct timestamps at pco `level` (0 to 12).
pub fn encode_timestamps(timestamps: &[i64], level: usize) -> Result<Vec<u8>, String> {
    let config = pco::ChunkConfig::default().with_compression_level(level);
    let config = match scrape_interval(timestamps) {
        Some(interval) => config.with_mode_spec(pco::ModeSpec::TryIntMult(interval)),
        None => config,
    };
    pco::standalone::simple_compress(timestamps, &config).map_err(|e| e.to_string())
}

/// How a chunk's values are stored: the first byte of their payload.
const PCO_FLOATS: u8 = 0;
/// One value repeated (8 bytes): two thirds of real exporter series are
/// constant over a partition, and pco spends about 29 bytes on one.
const CONSTANT: u8 = 1;
/// Exact integers as pco `i64`: counters, about 6% smaller on real ones.
const PCO_INTEGERS: u8 = 2;

/// Compresses non-empty values at pco `level` (0 to 12), in the smallest
/// exact form: a constant, integers, or floats.
pub fn encode_values(values: &[f64], level: usize) -> Result<Vec<u8>, String> {
    let config = pco::ChunkConfig::default().with_compression_level(level);
    let first = values.first().ok_or("no values to compress")?.to_bits();
    if values.iter().all(|v| v.to_bits() == first) {
        let mut out = vec![CONSTANT];
        out.extend_from_slice(&first.to_le_bytes());
        return Ok(out);
    }
    // Exact only when each value comes back with its bits (not -0.0, not
    // past 2^53, where i64 and f64 part ways).
    let integers: Option<Vec<i64>> = values
        .iter()
        .map(|&v| {
            let i = v as i64;
            (v.abs() < 9.0e15 && (i as f64).to_bits() == v.to_bits()).then_some(i)
        })
        .collect();
    let (tag, compressed) = match integers {
        Some(integers) => (
            PCO_INTEGERS,
            pco::standalone::simple_compress(&integers, &config),
        ),
        None => (
            PCO_FLOATS,
            pco::standalone::simple_compress(values, &config),
        ),
    };
    let compressed = compressed.map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(1 + compressed.len());
    out.push(tag);
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// The interval of regularly scraped timestamps, when there is one.
///
/// Scrapes land near multiples of their interval, off by a few tens of
/// milliseconds. pco stores such timestamps closest to their information
/// (the jitter) when told the interval (its `IntMult` mode): measured on a
/// 10 s scrape with ±25 ms jitter, 0.72 instead of 0.81 bytes per point. pco
/// does not fall back from a wrong interval, so one is named only when
/// nine in ten sampled gaps lie within 1% of the median gap, which is then
/// rounded to two significant digits (9,998 ms becomes 10,000).
fn scrape_interval(timestamps: &[i64]) -> Option<u64> {
    const SAMPLE: usize = 256;
    if timestamps.len() < 64 {
        return None;
    }
    let step = (timestamps.len() / SAMPLE).max(1);
    let mut gaps: Vec<i64> = timestamps
        .windows(2)
        .step_by(step)
        // Sorted, so never negative; saturating for nanosecond extremes.
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    if median < 100 {
        return None;
    }
    let tolerance = median / 100;
    let regular = gaps
        .iter()
        .filter(|&&g| (g - median).abs() <= tolerance)
        .count();
    if regular * 10 < gaps.len() * 9 {
        return None;
    }
    let unit = 10i64.pow(median.ilog10().saturating_sub(1));
    let interval = (median + unit / 2) / unit * unit;
    u64::try_from(interval).ok()
}

/// Decompresses `count` timestamps.
pub fn decode_timestamps(bytes: &[u8], count: usize) -> Result<Vec<i64>, String> {
    decode_counted(bytes, count, "timestamps")
}

/// Decompresses `count` values written by [`encode_values`].
pub fn decode_values(bytes: &[u8], count: usize) -> Result<Vec<f64>, String> {
    match bytes.split_first() {
        Some((&PCO_FLOATS, pco)) => decode_counted(pco, count, "values"),
        Some((&PCO_INTEGERS, pco)) => {
            let integers: Vec<i64> = decode_counted(pco, count, "values")?;
            Ok(integers.into_iter().map(|i| i as f64).collect())
        }
        Some((&CONSTANT, bits)) => {
            let bits: [u8; 8] = bits
                .try_into()
                .map_err(|_| format!("a constant of {} bytes", bits.len()))?;
            Ok(vec![f64::from_bits(u64::from_le_bytes(bits)); count])
        }
        Some((tag, _)) => Err(format!("unknown values encoding {tag}")),
        None => Err("no values".into()),
    }
}

/// Decompresses `count` values of a format-1 chunk (pco floats, untagged).
pub fn decode_untagged_values(bytes: &[u8], count: usize) -> Result<Vec<f64>, String> {
    decode_counted(bytes, count, "values")
}

/// Bytes of slack handed to pco after a stream. Its reader wants up to
/// about 9 KB ahead of where it reads (a batch of bins); given fewer, at a
/// stream's end, it allocates and zeroes twice what it wants, which made
/// the short streams of tier files (24 values) cost more to set up than to
/// decode (callgrind of a 30-day tier query: 36% of it in memset).
const PCO_SLACK: usize = 16 << 10;

thread_local! {
    /// A stream copied in front of [`PCO_SLACK`] bytes, reused by the
    /// thread. What the slack holds does not matter: pco stops at the
    /// stream's own end marker, and checksums passed before any decode.
    static PADDED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn decode_counted<T: pco::data_types::Number>(
    bytes: &[u8],
    count: usize,
    what: &str,
) -> Result<Vec<T>, String> {
    let decoded: Vec<T> = PADDED
        .with_borrow_mut(|padded| {
            let len = bytes.len() + PCO_SLACK;
            if padded.len() < len {
                padded.resize(len, 0);
            }
            padded[..bytes.len()].copy_from_slice(bytes);
            pco::standalone::simple_decompress(&padded[..len])
        })
        .map_err(|e| e.to_string())?;
    if decoded.len() != count {
        return Err(format!(
            "{} {what} decoded where the table says {count}",
            decoded.len()
        ));
    }
    Ok(decoded)
}

/// Pairs timestamps with values (both of the same length).
pub fn zip(timestamps: &[i64], values: Vec<f64>) -> Vec<Point> {
    timestamps.iter().copied().zip(values).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both streams of `points`, and the points decoded from them.
    fn round_trip(points: &[Point], level: usize) -> (Vec<u8>, Vec<u8>, Vec<Point>) {
        let (ts, vs): (Vec<i64>, Vec<f64>) = points.iter().copied().unzip();
        let ts_bytes = encode_timestamps(&ts, level).unwrap();
        let vs_bytes = encode_values(&vs, level).unwrap();
        let back = zip(
            &decode_timestamps(&ts_bytes, ts.len()).unwrap(),
            decode_values(&vs_bytes, vs.len()).unwrap(),
        );
        (ts_bytes, vs_bytes, back)
    }

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
        let (_, _, back) = round_trip(&points, 8);
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
        let (ts, vs, back) = round_trip(&points, 8);
        let bytes = ts.len() + vs.len();
        assert!(
            bytes < points.len() * 2,
            "{bytes} bytes for {} points",
            points.len()
        );
        assert_eq!(back, points);
    }

    #[test]
    fn jittered_scrapes_compress_near_their_jitter_and_irregular_ones_still_round_trip() {
        let mut seed = 42u64;
        let mut jitter = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 51) as i64 - 25
        };
        let scraped: Vec<Point> = (0..8640)
            .map(|i| (1_700_000_000_030 + i * 10_000 + jitter(), 1.0))
            .collect();
        assert_eq!(
            scrape_interval(&scraped.iter().map(|p| p.0).collect::<Vec<_>>()),
            Some(10_000)
        );
        let (ts, _, back) = round_trip(&scraped, 8);
        assert!(ts.len() < 8640 * 3 / 4, "{} bytes", ts.len());
        assert_eq!(back, scraped);

        let irregular: Vec<Point> = (0..500i64)
            .map(|i| (i * i * 37 + (i % 7) * 1000, 2.0))
            .collect();
        assert_eq!(
            scrape_interval(&irregular.iter().map(|p| p.0).collect::<Vec<_>>()),
            None
        );
        assert_eq!(round_trip(&irregular, 8).2, irregular);
    }

    #[test]
    fn constants_and_integers_take_their_small_forms_bit_exact() {
        let forms = |values: &[f64]| {
            let bytes = encode_values(values, 8).unwrap();
            let back = decode_values(&bytes, values.len()).unwrap();
            let same = values
                .iter()
                .zip(&back)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same && back.len() == values.len(), "{values:?}");
            (bytes[0], bytes.len())
        };
        assert_eq!(forms(&[f64::NAN; 100]), (CONSTANT, 9));
        assert_eq!(forms(&[-0.0; 3]), (CONSTANT, 9));
        let counter: Vec<f64> = (0..500).map(|i| (i * i) as f64).collect();
        assert_eq!(forms(&counter).0, PCO_INTEGERS);
        // Integers the i64 path would not give back exactly stay floats.
        assert_eq!(forms(&[1.0, -0.0, 2.0]).0, PCO_FLOATS);
        assert_eq!(forms(&[1.0, 2.0f64.powi(60)]).0, PCO_FLOATS);
        assert_eq!(forms(&[1.0, f64::INFINITY]).0, PCO_FLOATS);
        assert_eq!(forms(&[1.5, 2.0]).0, PCO_FLOATS);
        assert!(decode_values(&[CONSTANT, 1, 2], 1).is_err());
        assert!(decode_values(&[9, 1, 2], 1).is_err());
        assert!(decode_values(&[], 1).is_err());
    }

    #[test]
    fn a_wrong_count_or_garbage_is_an_error() {
        let (ts, vs, _) = round_trip(&[(1, 1.0), (2, 2.0)], 4);
        assert!(decode_timestamps(&ts, 3).is_err());
        assert!(decode_values(&vs, 1).is_err());
        assert!(decode_timestamps(&[1, 2, 3], 2).is_err());
    }
}
