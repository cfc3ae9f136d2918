//! Encoding NIF results: values with NaN and infinities as atoms, label
//! maps, points as lists or one binary, query answers.

use std::sync::Arc;

use rustler::{Binary, Encoder, Env, NewBinary, Term};

use super::atoms;
use crate::engine::QueryResult;
use crate::query::Points;
use crate::series_key::SeriesKey;
use crate::types::SeriesId;

pub fn encode_value(env: Env<'_>, v: f64) -> Term<'_> {
    if v.is_nan() {
        atoms::nan().encode(env)
    } else if v == f64::INFINITY {
        atoms::infinity().encode(env)
    } else if v == f64::NEG_INFINITY {
        atoms::neg_infinity().encode(env)
    } else {
        v.encode(env)
    }
}

fn encode_labels<'a>(env: Env<'a>, labels: &[(Box<str>, Box<str>)]) -> Term<'a> {
    let names: Vec<Term> = labels.iter().map(|(k, _)| (**k).encode(env)).collect();
    let values: Vec<Term> = labels.iter().map(|(_, v)| (**v).encode(env)).collect();
    Term::map_from_arrays(env, &names, &values).unwrap_or_else(|_| Term::map_new(env))
}

fn encode_points<'a>(env: Env<'a>, points: &Points) -> Term<'a> {
    let terms: Vec<Term> = points
        .iter()
        .map(|(t, v)| (t, encode_value(env, v)).encode(env))
        .collect();
    terms.encode(env)
}

/// `<<ts::little-signed-64, value::little-float-64>>` per point, one
/// binary for the whole series: no term per point.
fn encode_points_binary<'a>(env: Env<'a>, points: &Points) -> Term<'a> {
    let mut bin = NewBinary::new(env, points.len() * 16);
    for (slot, (t, v)) in bin.as_mut_slice().chunks_exact_mut(16).zip(points.iter()) {
        slot[..8].copy_from_slice(&t.to_le_bytes());
        slot[8..].copy_from_slice(&v.to_bits().to_le_bytes());
    }
    Binary::from(bin).to_term(env)
}

/// The series [`Engine::select`](crate::engine::Engine::select) found, as
/// their label maps.
pub struct LabelSets(pub Vec<(SeriesId, Arc<SeriesKey>)>);

impl Encoder for LabelSets {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let terms: Vec<Term> = self
            .0
            .iter()
            .map(|(_, key)| encode_labels(env, &key.labels))
            .collect();
        terms.encode(env)
    }
}

/// A query's answer: `[%{metric:, labels:, points:}]`, points as a list of
/// `{ts, value}` or, with `binary`, one binary per result.
pub struct Answer<'m> {
    pub metric: &'m str,
    pub results: Vec<QueryResult>,
    pub binary: bool,
}

impl Encoder for Answer<'_> {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let metric = self.metric.encode(env);
        let keys = [atoms::metric(), atoms::labels(), atoms::points()].map(|a| a.encode(env));
        let terms: Vec<Term> = self
            .results
            .iter()
            .map(|r| {
                let points = if self.binary {
                    encode_points_binary(env, &r.points)
                } else {
                    encode_points(env, &r.points)
                };
                let values = [metric, encode_labels(env, &r.labels), points];
                Term::map_from_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env))
            })
            .collect();
        terms.encode(env)
    }
}
