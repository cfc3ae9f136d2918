//! Query answers as Prometheus 2.42's HTTP API writes them: the `{status,
//! data: {resultType, result}}` envelope, timestamps as seconds with
//! millisecond decimals, values as strings in Go's float formatting, label
//! values escaped as Go's JSON encoder escapes them.

use std::fmt::Write;

use super::value::{Labels, RangeSeries};
use super::{Error, QueryValue};
use crate::parallel;

/// The success envelope around a result.
pub fn success(value: &QueryValue) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":{"resultType":""#);
    match value {
        // Scalars and strings go through Go's encoding/json in Prometheus:
        // the time as a plain float, a scalar always in 'f' form.
        QueryValue::Scalar { t, v } => {
            out.push_str(r#"scalar","result":["#);
            write_float(&mut out, *t as f64 / 1000.0, true);
            out.push_str(",\"");
            write_float(&mut out, *v, false);
            out.push_str("\"]");
        }
        QueryValue::String { t, v } => {
            out.push_str(r#"string","result":["#);
            write_float(&mut out, *t as f64 / 1000.0, true);
            out.push(',');
            string(&mut out, v);
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push_str(r#"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                labels(&mut out, &s.labels);
                out.push_str(r#","value":"#);
                point(&mut out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push_str(r#"matrix","result":["#);
            matrix(&mut out, series);
            out.push(']');
        }
    }
    out.push_str("}}");
    out.into_bytes()
}

/// Points from which a matrix is written on every core, a share of its
/// series each: a large answer is mostly formatting (cargo bench --bench
/// hot_paths -- promql/json, 240 k points: 9.4 ms on one core).
const PARALLEL_POINTS: usize = 50_000;

/// A matrix's series, comma-separated.
fn matrix(out: &mut String, series: &[RangeSeries]) {
    let points: usize = series.iter().map(|s| s.points.len()).sum();
    let cores = parallel::cores();
    if points >= PARALLEL_POINTS && cores > 1 && series.len() > 1 {
        let shares: Vec<&[RangeSeries]> = series.chunks(series.len().div_ceil(cores)).collect();
        let written = parallel::map(&shares, cores, 2, |share| {
            let mut text = String::new();
            series_list(&mut text, share);
            Ok(text)
        });
        // A worker can only fail by panicking; then write it on this thread.
        if let Ok(texts) = written {
            out.reserve(texts.iter().map(|t| t.len() + 1).sum());
            for (i, text) in texts.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(text);
            }
            return;
        }
    }
    series_list(out, series);
}

fn series_list(out: &mut String, series: &[RangeSeries]) {
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"metric":"#);
        labels(out, &s.labels);
        out.push_str(r#","values":["#);
        for (j, &(t, v)) in s.points.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            point(out, t, v);
        }
        out.push_str("]}");
    }
}

/// The error envelope: `{"status":"error","errorType":...,"error":...}`.
pub fn error(err: &Error) -> Vec<u8> {
    let mut out = String::new();
    out.push_str(r#"{"status":"error","errorType":""#);
    out.push_str(err.error_type.name());
    out.push_str(r#"","error":"#);
    string(&mut out, &err.message);
    out.push('}');
    out.into_bytes()
}

/// `[<seconds>,"<value>"]`. The punctuation goes in a byte at a time:
/// an answer is mostly points, and a `push_str` of one or two bytes is a
/// call to `memmove` (perf of 240 k points: 18% of the time in it).
fn point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    timestamp(out, t);
    out.push(',');
    out.push('"');
    write_float(out, v, true);
    out.push('"');
    out.push(']');
}

/// Milliseconds as seconds, as Prometheus writes them: `1435781451.781`,
/// three fraction digits when there is a fraction (`.050`), none for a
/// whole second.
fn timestamp(out: &mut String, t: i64) {
    let abs = t.unsigned_abs();
    if t < 0 {
        out.push('-');
    }
    out.push_str(itoa::Buffer::new().format(abs / 1000));
    let fraction = abs % 1000;
    if fraction != 0 {
        out.push('.');
        for digit in [fraction / 100, fraction / 10 % 10, fraction % 10] {
            out.push(char::from(b'0' + digit as u8));
        }
    }
}

/// A sample value as Prometheus writes it: Go's shortest float, in
/// exponent form below 1e-6 and from 1e21 on.
pub fn format_value(v: f64) -> String {
    let mut out = String::new();
    write_float(&mut out, v, true);
    out
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`, or with `extremes_in_e` the
/// `'e'` form below 1e-6 and from 1e21 on (what Prometheus' JSON does), into
/// `out` without an allocation for the usual value.
pub fn write_float(out: &mut String, v: f64, extremes_in_e: bool) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v == 0.0 && v.is_sign_negative() {
        out.push_str("-0");
    } else if v.abs() < 1e15 && (v as i64) as f64 == v {
        // Whole numbers (counters, byte gauges): as integers, exactly. (The
        // casts test it without a call to `trunc`.)
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if extremes_in_e && v != 0.0 && !(1e-6..1e21).contains(&v.abs()) {
        // Rust writes `1e-7`; Go writes `1e-07` (a sign and two digits).
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                let _ = write!(out, "{mantissa}e{sign}{digits:0>2}");
            }
            None => out.push_str(&s),
        }
    } else {
        // Ryu's shortest digits, where it writes them in fixed notation (as
        // Go does here); core::fmt for the few it writes with an exponent.
        let mut buffer = ryu::Buffer::new();
        let shortest = buffer.format_finite(v);
        if shortest.contains('e') {
            let _ = write!(out, "{v}");
        } else {
            out.push_str(shortest.strip_suffix(".0").unwrap_or(shortest));
        }
    }
}

fn labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, name);
        out.push(':');
        string(out, value);
    }
    out.push('}');
}

/// A JSON string as Go's encoder writes it, `<`, `>`, `&` and the line
/// separators escaped too.
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::Sample;

    #[test]
    fn values_are_formatted_as_go_formats_them() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(-2.5), "-2.5");
        assert_eq!(format_value(1e-7), "1e-07");
        assert_eq!(format_value(1.5e21), "1.5e+21");
        assert_eq!(
            format_value(123456789012345680000.0),
            "123456789012345680000"
        );
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(-0.0), "-0");
        assert_eq!(format_value(123456.0), "123456");
        assert_eq!(format_value(-7.0), "-7");
        assert_eq!(format_value(1e15), "1000000000000000");
        assert_eq!(format_value(1e20), "100000000000000000000");
        assert_eq!(format_value(0.000015), "0.000015");
        assert_eq!(format_value(1234.5678), "1234.5678");
        assert_eq!(format_value(1e-6), "0.000001");
        // Every value as Go writes it: shortest digits that read back.
        // What Prometheus 2.42 answers for these literals.
        let tie: f64 = "155545701827142.125".parse().unwrap();
        assert_eq!(format_value(tie), "155545701827142.12");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(2.5e-6), "0.0000025");
        assert_eq!(format_value(1.0000000000000002), "1.0000000000000002");
    }

    #[test]
    fn a_large_matrix_written_on_every_core_reads_as_one_written_in_order() {
        let series: Vec<RangeSeries> = (0..301)
            .map(|i| RangeSeries {
                labels: vec![("host".into(), format!("h{i}"))],
                points: (0..=PARALLEL_POINTS as i64 / 300)
                    .map(|k| (k * 15_000 + i, (k * i) as f64 / 7.0))
                    .collect(),
            })
            .collect();
        let mut in_order = String::new();
        series_list(&mut in_order, &series);
        let answer = String::from_utf8(success(&QueryValue::Matrix(series))).unwrap();
        assert_eq!(
            answer,
            format!(
                r#"{{"status":"success","data":{{"resultType":"matrix","result":[{in_order}]}}}}"#
            )
        );
    }

    proptest::proptest! {
        /// Go's 'f' form: the shortest digits that read back, without an
        /// exponent. (Where two shortest forms tie, Go and Ryu take the even
        /// one, core::fmt the other: `155545701827142.12`, as Prometheus
        /// answers, not `.13`.)
        #[test]
        fn values_in_fixed_range_are_written_as_core_fmt_writes_them(
            magnitude in -6.0f64..21.0,
            jitter in 0u64..1 << 20,
            whole in proptest::prelude::any::<bool>(),
            negative in proptest::prelude::any::<bool>(),
        ) {
            let mut v = f64::from_bits(10f64.powf(magnitude).to_bits() ^ jitter);
            if whole {
                v = v.round();
            }
            if negative {
                v = -v;
            }
            proptest::prop_assume!(v == 0.0 || (1e-6..1e21).contains(&v.abs()));
            let (ours, core) = (format_value(v), format!("{v}"));
            proptest::prop_assert_eq!(ours.parse::<f64>().unwrap(), v);
            proptest::prop_assert_eq!(ours.len(), core.len());
            proptest::prop_assert!(!ours.contains('e'));
        }
    }

    #[test]
    fn a_vector_is_written_as_prometheus_writes_it() {
        let value = QueryValue::Vector(vec![Sample {
            labels: vec![
                ("__name__".into(), "up".into()),
                ("job".into(), "a<b".into()),
            ],
            t: 1_435_781_451_781,
            v: 1.0,
        }]);
        assert_eq!(
            String::from_utf8(success(&value)).unwrap(),
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\u003cb"},"value":[1435781451.781,"1"]}]}}"#
        );
        // As Prometheus 2.42 answers `1e21` and `1e-7` at time -1.05:
        // scalars in 'f' form, whatever their size.
        let scalar = QueryValue::Scalar { t: -1_050, v: 2.0 };
        assert_eq!(
            String::from_utf8(success(&scalar)).unwrap(),
            r#"{"status":"success","data":{"resultType":"scalar","result":[-1.05,"2"]}}"#
        );
        for (v, text) in [(1e21, "1000000000000000000000"), (1e-7, "0.0000001")] {
            let json = String::from_utf8(success(&QueryValue::Scalar { t: 100_000, v })).unwrap();
            assert!(json.ends_with(&format!(r#"[100,"{text}"]}}}}"#)), "{json}");
        }
    }
}
