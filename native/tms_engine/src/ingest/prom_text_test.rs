//! The text parser as `f(input, expected)` tables.

use super::*;
use crate::ingest::ImportOptions;

const NOW: i64 = 1_700_000_000_000;

fn opts() -> ImportOptions {
    ImportOptions {
        labels: Vec::new(),
        default_ts: NOW,
        max_decompressed: 1 << 20,
        rename_clashing: false,
    }
}

/// `(metric, labels as parsed, ts, value bits)` of one sample.
type Sample = (String, Vec<(String, String)>, i64, u64);

/// Every sample of `body`, in order.
fn samples(body: &str, opts: &ImportOptions) -> Result<Vec<Sample>> {
    samples_in(body, opts, 1000)
}

fn samples_in(body: &str, opts: &ImportOptions, units_per_second: i64) -> Result<Vec<Sample>> {
    let mut sink = Sink::new(opts, units_per_second);
    parse(body.as_bytes(), &mut sink)?;
    let (series, points) = sink.plain();
    Ok(points
        .into_iter()
        .map(|(s, ts, bits)| (series[s].0.clone(), series[s].1.clone(), ts, bits))
        .collect())
}

fn one(body: &str) -> (String, Vec<(String, String)>, i64, f64) {
    let all = samples(body, &opts()).unwrap();
    assert_eq!(all.len(), 1, "{body:?}");
    let (m, l, t, v) = all.into_iter().next().unwrap();
    (m, l, t, f64::from_bits(v))
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn sample_lines_in_every_shape() {
    /// `(line, metric, labels, timestamp, value)`.
    type Case<'c> = (&'c str, &'c str, &'c [(&'c str, &'c str)], i64, f64);
    let cases: &[Case] = &[
        ("up 1", "up", &[], NOW, 1.0),
        ("up 1 1234", "up", &[], 1234, 1.0),
        ("up\t\t1\t-5", "up", &[], -5, 1.0),
        ("  up 1  ", "up", &[], NOW, 1.0),
        ("up 1\r", "up", &[], NOW, 1.0),
        ("a:b_c{x=\"1\"} 2.5e3", "a:b_c", &[("x", "1")], NOW, 2500.0),
        (
            "m{x=\"1\",y=\"2\",} 3",
            "m",
            &[("x", "1"), ("y", "2")],
            NOW,
            3.0,
        ),
        (
            "m { x = \"1\" , y=\"\" } 3",
            "m",
            &[("x", "1"), ("y", "")],
            NOW,
            3.0,
        ),
        ("m{} 7", "m", &[], NOW, 7.0),
        (
            "m{x=\"a\\\\b\\\"c\\nd\"} 1",
            "m",
            &[("x", "a\\b\"c\nd")],
            NOW,
            1.0,
        ),
        ("m{x=\"ünï,cødé}\"} 1", "m", &[("x", "ünï,cødé}")], NOW, 1.0),
        ("m{le=\"+Inf\"} 10", "m", &[("le", "+Inf")], NOW, 10.0),
        ("m +Inf", "m", &[], NOW, f64::INFINITY),
        ("m -Inf", "m", &[], NOW, f64::NEG_INFINITY),
        ("m -0", "m", &[], NOW, -0.0),
        ("m 1e-3", "m", &[], NOW, 0.001),
        // Integers take a fast path up to 15 digits; longer ones round as floats.
        ("m 007", "m", &[], NOW, 7.0),
        ("m 999999999999999", "m", &[], NOW, 999_999_999_999_999.0),
        ("m 9007199254740993", "m", &[], NOW, 9_007_199_254_740_992.0),
        ("m 1 +12", "m", &[], 12, 1.0),
        ("m 1 9223372036854775807", "m", &[], i64::MAX, 1.0),
        ("m 1 -9223372036854775808", "m", &[], i64::MIN, 1.0),
    ];
    for &(body, metric, labels, ts, value) in cases {
        let (m, l, t, v) = one(body);
        assert_eq!((m.as_str(), l, t), (metric, pairs(labels), ts), "{body:?}");
        assert_eq!(v.to_bits(), value.to_bits(), "{body:?}");
    }
    assert!(one("m NaN").3.is_nan());
    assert!(one("m nan").3.is_nan());
}

#[test]
fn comments_blank_lines_and_histograms() {
    let body = "# HELP h A histogram.\n# TYPE h histogram\n\n\
                h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 3\nh_sum 0.7\nh_count 3\n   # indented comment\n";
    let all = samples(body, &opts()).unwrap();
    let metrics: Vec<&str> = all.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(metrics, ["h_bucket", "h_bucket", "h_sum", "h_count"]);
}

#[test]
fn a_series_spelled_twice_is_one_series_and_the_later_sample_comes_last() {
    let opts = opts();
    let mut sink = Sink::new(&opts, 1000);
    parse(
        b"m{a=\"1\"} 1 10\nm{a=\"1\"} 2 10\nm{a=\"2\"} 3 10\n",
        &mut sink,
    )
    .unwrap();
    assert_eq!(sink.batch.series.len(), 2);
    assert_eq!(
        sink.batch.points,
        vec![(0, 10, 1.0), (0, 10, 2.0), (1, 10, 3.0)]
    );
}

#[test]
fn clashing_body_labels_can_be_kept_as_exported() {
    let opts = ImportOptions {
        labels: pairs(&[("exported_job", "x"), ("job", "node")]),
        rename_clashing: true,
        ..opts()
    };
    let mut all = samples("m{job=\"app\",cpu=\"0\"} 1\n", &opts).unwrap();
    all[0].1.sort();
    assert_eq!(
        all[0].1,
        pairs(&[
            ("cpu", "0"),
            ("exported_exported_job", "app"),
            ("exported_job", "x"),
            ("job", "node")
        ])
    );
}

#[test]
fn the_import_labels_replace_the_body_s() {
    let opts = ImportOptions {
        labels: pairs(&[("instance", "h:9100"), ("job", "node")]),
        ..opts()
    };
    let all = samples("m{instance=\"x\",cpu=\"0\"} 1\n", &opts).unwrap();
    assert_eq!(
        all[0].1,
        pairs(&[("cpu", "0"), ("instance", "h:9100"), ("job", "node")])
    );
}

#[test]
fn malformed_lines_name_their_line_and_keep_no_state() {
    let cases: &[(&str, &str)] = &[
        ("ok 1\n1bad 2", "expected a metric name"),
        ("m", "expected a space"),
        ("m ", "expected a value"),
        ("m{x=\"1\" 1", "expected , or }"),
        ("m{x=1} 1", "expected a quoted value"),
        ("m{x=\"1} 1", "not closed"),
        ("m{x=\"\\t\"} 1", "invalid escape"),
        ("m{1x=\"1\"} 1", "expected a label name"),
        ("m{x=\"1\"", "expected , or }"),
        ("m 0x1p3", "invalid value"),
        ("m 1_000", "invalid value"),
        ("m abc", "invalid value"),
        ("m 1 1.5", "timestamp must be an integer"),
        ("m 1 -", "timestamp must be an integer"),
        ("m 1 +-1", "timestamp must be an integer"),
        ("m 1 9223372036854775808", "timestamp must be an integer"),
        ("m 1 -9223372036854775809", "timestamp must be an integer"),
        ("m 1 2 3", "unexpected text"),
    ];
    for &(body, reason) in cases {
        // Twice: a failing body must leave nothing behind for the next one.
        for _ in 0..2 {
            match samples(body, &opts()) {
                Err(EngineError::BadInput { line, reason: r }) => {
                    let expected_line = body.lines().count() as u64;
                    assert_eq!(line, expected_line, "{body:?}");
                    assert!(r.contains(reason), "{body:?}: {r}");
                }
                other => panic!("{body:?}: expected BadInput, got {other:?}"),
            }
        }
    }
    let bad_utf8 = b"m{x=\"\xff\"} 1";
    let opts = opts();
    let mut sink = Sink::new(&opts, 1000);
    assert!(matches!(
        parse(bad_utf8, &mut sink),
        Err(EngineError::BadInput { line: 1, .. })
    ));
}

#[test]
fn timestamps_convert_to_the_store_unit() {
    let at = |body, ups| samples_in(body, &opts(), ups);
    assert_eq!(at("m 1 1700000000123", 1).unwrap()[0].2, 1_700_000_000);
    assert_eq!(
        at("m 1 1700000000123", 1_000_000_000).unwrap()[0].2,
        1_700_000_000_123_000_000
    );
    assert!(at("m 1 9223372036854775807", 1_000_000_000).is_err());
}
