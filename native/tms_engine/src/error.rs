//! The one error type of the engine.
//!
//! Every fallible path returns [`EngineError`]. The NIF layer (nif/error.rs)
//! encodes each variant as `{:error, {kind_atom, details_map}}` so that
//! Elixir code can match on the kind instead of parsing a message. Variants hold plain data
//! (an `io::ErrorKind` and a message rather than an `io::Error`) so that a
//! value crossing the NIF boundary is `RefUnwindSafe` and `Clone`.

use std::io;
use std::path::Path;

/// Result of every fallible engine operation.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What went wrong, in a form both Rust and Elixir can match on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// A file system call failed. `errno` is the POSIX name (`"enospc"`,
    /// `"erofs"`, ...) when the OS gave one.
    #[error("{op} {path}: {message}")]
    Io {
        op: &'static str,
        path: String,
        errno: Option<&'static str>,
        message: String,
    },
    /// A file failed its checksum or could not be parsed.
    #[error("corrupt data in {path}: {reason}")]
    CorruptData { path: String, reason: String },
    /// A file was written by a format version this build does not read.
    #[error("{path} has format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        path: String,
        found: u32,
        supported: u32,
    },
    /// The caller passed something the engine does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// An imported body is malformed at `line` (1-based; for binary formats
    /// the series' position); nothing of the body was written.
    #[error("line {line}: {reason}")]
    BadInput { line: u64, reason: String },
    /// A raw batch named a series id the registry never assigned.
    #[error("unknown series id {id} at entry {entry}")]
    SeriesNotFound { id: u64, entry: usize },
    /// Accepting the write would exceed the configured memory ceiling.
    #[error(
        "{buffered} points buffered, accepting {incoming} more would pass the limit of {limit}"
    )]
    Overloaded {
        buffered: u64,
        incoming: u64,
        limit: u64,
    },
    /// Creating the series would pass the store's `max_series`.
    #[error("the store holds {limit} series, its max_series; no new series can be created")]
    CardinalityLimit { limit: u64 },
    /// Another engine (in this or another OS process) holds the directory.
    #[error("{path} is already open by another store")]
    Locked { path: String },
    /// The engine was closed; open it again to use the directory.
    #[error("the store is closed")]
    Closed,
    /// An earlier fsync, or the truncation of a failed append, failed, so
    /// the WAL can no longer promise durability. The store must be reopened
    /// (which replays what reached the disk).
    #[error("the write-ahead log failed earlier ({0}); reopen the store")]
    Poisoned(String),
    /// A PromQL query failed; `error_type` is Prometheus' class of the
    /// failure (`bad_data`, `execution`, `timeout`), which is also its kind.
    #[error("{message}")]
    Query {
        error_type: &'static str,
        message: String,
        /// 1-based line and byte column of a syntax error in the query.
        position: Option<(usize, usize)>,
    },
    /// A failure inside the engine that no argument caused (a worker thread
    /// that panicked, the compressor refusing its input): a bug to report.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The short atom-like name Elixir sees as `Tms.Error.kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Io { .. } => "io",
            EngineError::CorruptData { .. } => "corrupt_data",
            EngineError::UnsupportedVersion { .. } => "unsupported_version",
            EngineError::InvalidArgument(_) | EngineError::BadInput { .. } => "invalid_argument",
            EngineError::SeriesNotFound { .. } => "series_not_found",
            EngineError::Overloaded { .. } => "overloaded",
            EngineError::CardinalityLimit { .. } => "cardinality_limit",
            EngineError::Locked { .. } => "locked",
            EngineError::Closed => "closed",
            EngineError::Poisoned(_) => "poisoned",
            EngineError::Query { error_type, .. } => error_type,
            EngineError::Internal(_) => "internal",
        }
    }

    /// Wraps an `io::Error` from operation `op` on `path`.
    pub fn io(op: &'static str, path: &Path, err: io::Error) -> Self {
        EngineError::Io {
            op,
            path: path.display().to_string(),
            errno: err.raw_os_error().and_then(errno_name),
            message: err.to_string(),
        }
    }

    /// A corrupt-data error for `path`.
    pub fn corrupt(path: &Path, reason: impl Into<String>) -> Self {
        EngineError::CorruptData {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// `Ok` when a file at `path` has the format version this build reads.
    pub fn check_version(path: &Path, found: u32, supported: u32) -> Result<()> {
        if found == supported {
            return Ok(());
        }
        Err(EngineError::UnsupportedVersion {
            path: path.display().to_string(),
            found,
            supported,
        })
    }

    /// An invalid-argument error with a message for the caller.
    pub fn invalid(message: impl Into<String>) -> Self {
        EngineError::InvalidArgument(message.into())
    }

    /// An internal error (a bug, not the caller's doing).
    pub fn internal(message: impl Into<String>) -> Self {
        EngineError::Internal(message.into())
    }
}

/// Returns a closure that wraps an `io::Error` for `op` on `path`; for `map_err`.
pub fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> EngineError + 'a {
    move |err| EngineError::io(op, path, err)
}

/// POSIX names for the errors an operator can act on.
fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        1 => "eperm",
        2 => "enoent",
        5 => "eio",
        13 => "eacces",
        17 => "eexist",
        20 => "enotdir",
        21 => "eisdir",
        24 => "emfile",
        27 => "efbig",
        28 => "enospc",
        30 => "erofs",
        122 => "edquot",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_carry_the_posix_name() {
        let err = EngineError::io("write", Path::new("/x"), io::Error::from_raw_os_error(28));
        assert_eq!(err.kind(), "io");
        match err {
            EngineError::Io { errno, path, .. } => {
                assert_eq!(errno, Some("enospc"));
                assert_eq!(path, "/x");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
