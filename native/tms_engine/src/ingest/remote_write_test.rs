//! The hand-written decoder against prost, the reference encoder.

use super::*;
use crate::ingest::ImportOptions;

#[derive(Clone, PartialEq, prost::Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    metadata: Vec<Metadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    exemplars: Vec<Exemplar>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(double, tag = "2")]
    value: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Metadata {
    #[prost(string, tag = "2")]
    metric_family_name: String,
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

fn compressed(request: &WriteRequest) -> Vec<u8> {
    let raw = prost::Message::encode_to_vec(request);
    snap::raw::Encoder::new().compress_vec(&raw).unwrap()
}

fn opts() -> ImportOptions {
    ImportOptions {
        labels: Vec::new(),
        default_ts: 0,
        max_decompressed: 1 << 20,
        rename_clashing: false,
    }
}

type Decoded = (
    Vec<(String, Vec<(String, String)>)>,
    Vec<(usize, i64, u64)>,
    u64,
);

fn decode(body: &[u8], opts: &ImportOptions) -> Result<Decoded> {
    let buf = decompress(body, opts.max_decompressed)?;
    let mut sink = Sink::new(opts, 1000);
    let ignored = parse(&buf, &mut sink)?;
    let (series, points) = sink.plain();
    Ok((series, points, ignored))
}

#[test]
fn random_requests_decode_as_prost_encoded_them() {
    let stale = f64::from_bits(0x7ff0_0000_0000_0002);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let series: Vec<TimeSeries> = (0..next() % 5)
            .map(|s| TimeSeries {
                labels: vec![
                    label("__name__", &format!("m{}", next() % 3)),
                    label("host", &format!("h{s}-ü\"\\")),
                    label("empty", ""),
                ],
                samples: (0..1 + next() % 4)
                    .map(|i| Sample {
                        value: match next() % 4 {
                            0 => stale,
                            1 => f64::NEG_INFINITY,
                            _ => (next() % 1000) as f64 / 8.0,
                        },
                        timestamp: (next() % 10_000) as i64 - 5_000 + i as i64,
                    })
                    .collect(),
                exemplars: vec![Exemplar::default(); (next() % 2) as usize],
            })
            .collect();
        let request = WriteRequest {
            timeseries: series.clone(),
            metadata: vec![Metadata::default(); (next() % 2) as usize],
        };
        let (decoded, points, ignored) = decode(&compressed(&request), &opts()).unwrap();
        let expected_ignored: usize =
            series.iter().map(|s| s.exemplars.len()).sum::<usize>() + request.metadata.len();
        assert_eq!(ignored, expected_ignored as u64);
        assert_eq!(decoded.len(), series.len());
        let mut expected_points = Vec::new();
        for (i, ts) in series.iter().enumerate() {
            assert_eq!(decoded[i].0, ts.labels[0].value);
            let labels: Vec<(String, String)> = ts.labels[1..]
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            assert_eq!(decoded[i].1, labels);
            expected_points.extend(
                ts.samples
                    .iter()
                    .map(|p| (i, p.timestamp, p.value.to_bits())),
            );
        }
        assert_eq!(points, expected_points, "staleness bits kept exact");
    }
}

#[test]
fn hostile_and_broken_bodies_are_clear_errors() {
    // A snappy header claiming 1 GiB, with no data behind it.
    let mut claim = Vec::new();
    let mut n = 1u64 << 30;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    assert!(matches!(
        decode(&claim, &opts()),
        Err(EngineError::BadInput { .. })
    ));
    assert!(matches!(
        decode(b"\xff\xff garbage", &opts()),
        Err(EngineError::BadInput { .. })
    ));

    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "m")],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 5,
            }],
            exemplars: vec![],
        }],
        metadata: vec![],
    };
    let raw = prost::Message::encode_to_vec(&request);
    // Every truncation is an error or a shorter valid request, never a panic.
    for cut in 0..raw.len() {
        let body = snap::raw::Encoder::new().compress_vec(&raw[..cut]).unwrap();
        let _ = decode(&body, &opts());
    }
    let without_name = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("job", "x")],
            ..request.timeseries[0].clone()
        }],
        metadata: vec![],
    };
    match decode(&compressed(&without_name), &opts()) {
        Err(EngineError::BadInput { line: 1, reason }) => {
            assert!(reason.contains("__name__"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    let mut bad_utf8 = request.clone();
    bad_utf8.timeseries[0].labels.push(label("x", "y"));
    let mut raw = prost::Message::encode_to_vec(&bad_utf8);
    let at = raw.len() - 20;
    if let Some(b) = raw.iter_mut().skip(at).find(|b| **b == b'y') {
        *b = 0xff;
    }
    let body = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
    assert!(matches!(
        decode(&body, &opts()),
        Err(EngineError::BadInput { .. })
    ));
    let small = ImportOptions {
        max_decompressed: 4,
        rename_clashing: false,
        ..opts()
    };
    assert!(matches!(
        decode(&compressed(&request), &small),
        Err(EngineError::BadInput { .. })
    ));
}

#[test]
fn labels_after_the_samples_and_unusual_samples_decode_too() {
    // TimeSeries { sample, label, label }: the leading-label shortcut has
    // nothing to spell by, and the labels come from the general decoder.
    let label_field = |k: &str, v: &str| {
        let mut l = vec![0x0a, k.len() as u8];
        l.extend_from_slice(k.as_bytes());
        l.extend_from_slice(&[0x12, v.len() as u8]);
        l.extend_from_slice(v.as_bytes());
        let mut f = vec![0x0a, l.len() as u8];
        f.extend(l);
        f
    };
    // A sample with its fields reversed: timestamp 7, then value 2.5.
    let mut sample = vec![0x10, 7, 0x09];
    sample.extend_from_slice(&2.5f64.to_le_bytes());
    let mut series = vec![0x12, sample.len() as u8];
    series.extend(sample);
    series.extend(label_field("__name__", "m"));
    series.extend(label_field("a", "1"));
    let mut request = vec![0x0a, series.len() as u8];
    request.extend(series);
    let body = snap::raw::Encoder::new().compress_vec(&request).unwrap();
    let (decoded, points, _) = decode(&body, &opts()).unwrap();
    assert_eq!(
        decoded,
        vec![("m".to_string(), vec![("a".to_string(), "1".to_string())])]
    );
    assert_eq!(points, vec![(0, 7, 2.5f64.to_bits())]);
}
