//! How an [`EngineError`] reaches Elixir: `{kind_atom, details}` with
//! `details` a map holding `:message` and the variant's fields, which a NIF
//! returning `Result<T, EngineError>` wraps as `{:error, {kind, details}}`.

use rustler::{Atom, Encoder, Env, Term};

use super::atoms;
use crate::error::EngineError;

impl Encoder for EngineError {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let kind = Atom::from_str(env, self.kind()).unwrap_or_else(|_| atoms::error());
        let mut fields: Vec<(Atom, Term<'a>)> =
            vec![(atoms::message(), self.to_string().encode(env))];
        let mut put = |key: Atom, value: Term<'a>| fields.push((key, value));
        match self {
            EngineError::Io {
                op, path, errno, ..
            } => {
                put(atoms::op(), op.encode(env));
                put(atoms::path(), path.encode(env));
                if let Some(name) = errno.and_then(|e| Atom::from_str(env, e).ok()) {
                    put(atoms::errno(), name.encode(env));
                }
            }
            EngineError::CorruptData { path, reason } => {
                put(atoms::path(), path.encode(env));
                put(atoms::reason(), reason.encode(env));
            }
            EngineError::UnsupportedVersion {
                path,
                found,
                supported,
            } => {
                put(atoms::path(), path.encode(env));
                put(atoms::found(), found.encode(env));
                put(atoms::supported(), supported.encode(env));
            }
            EngineError::SeriesNotFound { id, entry } => {
                put(atoms::id(), id.encode(env));
                put(atoms::entry(), entry.encode(env));
            }
            EngineError::Overloaded {
                buffered,
                incoming,
                limit,
            } => {
                put(atoms::buffered(), buffered.encode(env));
                put(atoms::incoming(), incoming.encode(env));
                put(atoms::limit(), limit.encode(env));
            }
            EngineError::Locked { path } => put(atoms::path(), path.encode(env)),
            EngineError::BadInput { line, reason } => {
                put(atoms::line(), line.encode(env));
                put(atoms::reason(), reason.encode(env));
            }
            EngineError::CardinalityLimit { limit } => put(atoms::limit(), limit.encode(env)),
            EngineError::Query {
                position: Some((line, column)),
                ..
            } => {
                put(atoms::line(), line.encode(env));
                put(atoms::column(), column.encode(env));
            }
            EngineError::InvalidArgument(_)
            | EngineError::Closed
            | EngineError::Poisoned(_)
            | EngineError::Query { .. }
            | EngineError::Internal(_) => {}
        }
        let (keys, values): (Vec<Term<'a>>, Vec<Term<'a>>) =
            fields.into_iter().map(|(k, v)| (k.encode(env), v)).unzip();
        let details =
            Term::map_from_arrays(env, &keys, &values).unwrap_or_else(|_| Term::map_new(env));
        (kind, details).encode(env)
    }
}
