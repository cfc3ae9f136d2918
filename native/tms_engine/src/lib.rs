//! Storage engine of Tms, an embedded time-series database for Elixir.
//!
//! Everything but `nif` is a plain Rust library, tested with
//! `cargo test --no-default-features`. Modules form a DAG; each names only
//! modules below it (checked by `../shared/tools/module_graph.py`):
//!
//! ```text
//! nif                          terms in, terms out (the only rustler code)
//! promql                       PromQL over the engine's read API
//! engine                       Engine: open, write, read, flush, maintenance, import, stats
//! ingest                       Prometheus text, remote_write, JSON lines -> one batch
//! query rollup               step aggregation; rollup tiers
//! storage   buffer             chunks, segments, chunk index; hot buffers
//! registry  wal                series ids (over index); frames + records
//! index                        label postings and matchers
//! types summary batch series_key layout retention parallel codec files hash error   leaves
//! ```
// Cargo.toml's [lints] deny unwrap/expect/panic outside tests (clippy.toml).

pub mod batch;
pub mod buffer;
pub mod codec;
pub mod engine;
pub mod error;
pub mod files;
pub mod hash;
pub mod index;
pub mod ingest;
pub mod layout;
pub mod parallel;
pub mod promql;
pub mod query;
pub mod registry;
pub mod retention;
pub mod rollup;
pub mod series_key;
pub mod storage;
pub mod summary;
pub mod types;
pub mod wal;

#[cfg(feature = "nif")]
mod nif;

#[cfg(feature = "nif")]
rustler::init!("Elixir.Tms.Native");

/// The NIF library's allocator (see Cargo.toml: glibc's, inside the BEAM,
/// maps and unmaps every large block).
#[cfg(feature = "nif")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
