//! JSON lines, as VictoriaMetrics' `/api/v1/import` takes them and its
//! `/api/v1/export` writes them: one series a line,
//!
//! ```text
//! {"metric":{"__name__":"up","job":"node"},"values":[1,0.5],"timestamps":[1700000000000,1700000001000]}
//! ```
//!
//! `__name__` is the metric; values are numbers or the strings `NaN`,
//! `Inf`, `+Inf`, `-Inf`; timestamps integer milliseconds, as many as
//! values. Blank lines are skipped. Strings are borrowed from the body
//! unless they hold an escape; a line's `metric` object, as written, is the
//! series' spelling (a series repeated over lines is parsed once).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::json_scan;
use super::sink::{bad_line, Labels, Sink};
use crate::error::Result;
use crate::series_key::METRIC_LABEL;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow)]
    metric: &'a RawValue,
    #[serde(borrow)]
    values: Vec<Value<'a>>,
    timestamps: Vec<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Value<'a> {
    Number(f64),
    Text(&'a str),
}

/// A JSON object's members in order, strings borrowed where they can be.
struct Pairs<'a>(Labels<'a>);

impl<'de> Deserialize<'de> for Pairs<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of label names to string values")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Pairs<'de>, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<Cow<'de, str>, Cow<'de, str>>()? {
                    pairs.push((k, v));
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

/// Parses a whole body into `sink`.
pub fn parse<'a>(body: &'a [u8], sink: &mut Sink<'a>) -> Result<()> {
    let mut samples = Samples::default();
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        parse_line(line, sink, &mut samples)
            .map_err(|reason| bad_line(number + 1, line, reason))?;
    }
    Ok(())
}

/// One line's samples, reused from line to line.
#[derive(Default)]
struct Samples {
    values: Vec<f64>,
    timestamps: Vec<i64>,
}

fn parse_line<'a>(
    line: &'a [u8],
    sink: &mut Sink<'a>,
    samples: &mut Samples,
) -> Result<(), String> {
    let scanned = json_scan::line(line, &mut samples.values, &mut samples.timestamps, |rest| {
        sink.predicted(rest)
    });
    let (metric_json, predicted) = match scanned {
        Some(found) => found,
        None => (parse_with_serde(line, samples)?, None),
    };
    let series = match predicted {
        Some(p) => sink.series_predicted(p, metric_json),
        None => sink
            .series(Some(metric_json), |labels| {
                let Pairs(pairs) = serde_json::from_slice(metric_json)
                    .map_err(|e| crate::error::EngineError::invalid(format!("metric: {e}")))?;
                let mut metric = None;
                for (name, value) in pairs {
                    if name == METRIC_LABEL {
                        metric = Some(value);
                    } else {
                        labels.push((name, value));
                    }
                }
                metric.ok_or_else(|| crate::error::EngineError::invalid("metric has no __name__"))
            })
            .map_err(|e| e.to_string())?,
    };
    for (&value, &ts) in samples.values.iter().zip(&samples.timestamps) {
        sink.point(series, ts, value).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Every line the scanner does not take: parsed, or its error worded, by
/// serde_json. Answers the `metric` object as written.
fn parse_with_serde<'a>(line: &'a [u8], samples: &mut Samples) -> Result<&'a [u8], String> {
    let parsed: Line<'a> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    if parsed.values.len() != parsed.timestamps.len() {
        return Err(format!(
            "{} values but {} timestamps",
            parsed.values.len(),
            parsed.timestamps.len()
        ));
    }
    samples.values.clear();
    for value in &parsed.values {
        samples.values.push(match value {
            Value::Number(v) => *v,
            Value::Text(text) => {
                parse_special(text).ok_or_else(|| format!("invalid value {text:?}"))?
            }
        });
    }
    samples.timestamps.clone_from(&parsed.timestamps);
    Ok(parsed.metric.get().as_bytes())
}

/// The values JSON has no number for.
fn parse_special(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Inf" | "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::EngineError;
    use crate::ingest::ImportOptions;

    /// `(series, points as (series, ts, value bits), every label)`.
    type Parsed = (usize, Vec<(usize, i64, u64)>, Vec<(String, String)>);

    fn parse_all(body: &str) -> Result<Parsed> {
        let opts = ImportOptions {
            labels: Vec::new(),
            default_ts: 0,
            max_decompressed: 0,
            rename_clashing: false,
        };
        let mut sink = Sink::new(&opts, 1000);
        parse(body.as_bytes(), &mut sink)?;
        let (series, points) = sink.plain();
        let labels = series.iter().flat_map(|s| s.1.clone()).collect();
        Ok((series.len(), points, labels))
    }

    #[test]
    fn lines_of_series_with_special_values_and_escapes() {
        let body = concat!(
            r#"{"metric":{"__name__":"up","job":"n\"ode","e":""},"values":[1,"NaN","+Inf",-2.5],"timestamps":[1,2,3,4]}"#,
            "\n\n",
            r#"{"metric":{"__name__":"up","job":"n\"ode","e":""},"values":[5],"timestamps":[5]}"#,
            "\r\n"
        );
        let (series, points, labels) = parse_all(body).unwrap();
        assert_eq!(series, 1, "the same spelling is one series");
        assert_eq!(
            labels,
            vec![("job".into(), "n\"ode".into()), ("e".into(), "".into())]
        );
        let bits: Vec<u64> = points.iter().map(|p| p.2).collect();
        assert_eq!(
            points.iter().map(|p| p.1).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert!(f64::from_bits(bits[1]).is_nan());
        assert_eq!(bits[2], f64::INFINITY.to_bits());
        assert_eq!(bits[3], (-2.5f64).to_bits());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let cases = [
            (
                r#"{"metric":{"job":"x"},"values":[1],"timestamps":[1]}"#,
                "no __name__",
            ),
            (
                r#"{"metric":{"__name__":"m"},"values":[1,2],"timestamps":[1]}"#,
                "2 values but 1 timestamps",
            ),
            (
                r#"{"metric":{"__name__":"m"},"values":["x"],"timestamps":[1]}"#,
                "invalid value",
            ),
            (
                r#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1.5]}"#,
                "invalid type",
            ),
            (
                r#"{"metric":{"__name__":"m","a":1},"values":[1],"timestamps":[1]}"#,
                "metric",
            ),
            (r#"{"metric":{"__name__":"m"},"values":[1]"#, "EOF"),
            (
                r#"{"metric":{"__name__":"m"},"values":[1],"timestamps":[1],"x":2}"#,
                "unknown field",
            ),
        ];
        for (line, reason) in cases {
            let body = format!(
                "{}\n{line}\n",
                r#"{"metric":{"__name__":"ok"},"values":[1],"timestamps":[1]}"#
            );
            match parse_all(&body) {
                Err(EngineError::BadInput { line: 2, reason: r }) => {
                    assert!(r.contains(reason), "{line}: {r}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_scanner_takes_what_victoriametrics_writes_and_leaves_the_rest() {
        let (mut values, mut timestamps) = (Vec::new(), Vec::new());
        let line = br#"{"metric":{"__name__":"up","job":"a\"b"},"values":[1,0.5,"NaN",1e3],"timestamps":[1,2,3,4]}"#;
        let metric = json_scan::line(line, &mut values, &mut timestamps, |_| None);
        assert_eq!(
            metric,
            Some((&br#"{"__name__":"up","job":"a\"b"}"#[..], None))
        );
        assert_eq!(values[..2], [1.0, 0.5]);
        assert!(values[2].is_nan());
        assert_eq!(timestamps, [1, 2, 3, 4]);
        for other in [
            &br#"{"metric":{},"values":[01],"timestamps":[1]}"#[..],
            br#"{"metric":{},"values":[1],"timestamps":[+1]}"#,
            br#"{"metric":{},"values":[1],"timestamps":[1],"extra":1}"#,
            br#"{"met\u0072ic":{},"values":[1],"timestamps":[1]}"#,
            br#"{"metric":{},"values":[1,2],"timestamps":[1]}"#,
            br#"{"metric":{"a":{}},"values":[1],"timestamps":[1]}"#,
            br#"{"metric":{},"values":[1e400],"timestamps":[1]}"#,
            br#"{"metric":{},"values":[1],"timestamps":[-0]}"#,
        ] {
            assert_eq!(
                json_scan::line(other, &mut values, &mut timestamps, |_| None),
                None
            );
        }
    }

    proptest::proptest! {
        /// Where the scanner takes a line, it reads it as serde_json does;
        /// the lines it leaves go to serde, so no line is read two ways.
        #[test]
        fn the_scanner_agrees_with_serde(
            order in proptest::sample::select(vec![[0, 1, 2], [2, 0, 1], [1, 2, 0]]),
            blank in proptest::sample::select(vec!["", " ", "\t", " \r\n "]),
            label in "[a-z\"\\\\é]{0,6}",
            points in proptest::collection::vec((
                proptest::sample::select(vec![
                    "0", "-0", "1", "1.0", "12345.5", "-2.25", "1e3", "1.5E-7", "123456789012345678",
                    "0.1", "\"NaN\"", "\"+Inf\"", "\"-Inf\"", "\"Inf\"",
                    "01", "+1", ".5", "1.", "1e", "NaN", "\"nan\"", "-", "1e400", "-1e400",
                ]),
                proptest::sample::select(vec![
                    "0", "1700000000000", "-5", "01", "+3", "1.5", "9223372036854775807", "-0",
                ]),
            ), 1..4),
        ) {
            let label = label.replace('\\', "\\\\").replace('"', "\\\"");
            let metric = format!(r#"{{"__name__":"m","l":"{label}"}}"#);
            let values: Vec<&str> = points.iter().map(|p| p.0).collect();
            let timestamps: Vec<&str> = points.iter().map(|p| p.1).collect();
            let members = [
                format!(r#""metric"{blank}:{blank}{metric}"#),
                format!(r#""values":[{}]"#, values.join(&format!("{blank},{blank}"))),
                format!(r#""timestamps":[{}]"#, timestamps.join(",")),
            ];
            let line = format!(
                "{blank}{{{blank}{}{blank},{blank}{}{blank},{blank}{}{blank}}}{blank}",
                members[order[0]], members[order[1]], members[order[2]]
            );
            let (mut values, mut timestamps) = (Vec::new(), Vec::new());
            if let Some((span, _)) = json_scan::line(line.as_bytes(), &mut values, &mut timestamps, |_| None) {
                let mut by_serde = Samples::default();
                let serde_span = parse_with_serde(line.as_bytes(), &mut by_serde);
                proptest::prop_assert_eq!(serde_span, Ok(span), "{}", line);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                proptest::prop_assert_eq!(bits(&values), bits(&by_serde.values), "{}", line);
                proptest::prop_assert_eq!(timestamps, by_serde.timestamps, "{}", line);
            }
        }
    }
}
