//! Storage engine of Tms, an embedded time-series database for Elixir.
//!
//! Everything but `nif` is a plain Rust library, tested with
//! `cargo test --no-default-features`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod buffer;
pub mod chunk;
pub mod codec;
pub mod engine;
pub mod error;
pub mod files;
pub mod hash;
pub mod index;
pub mod query;
pub mod registry;
pub mod retention;
pub mod segment;
pub mod wal;

#[cfg(feature = "nif")]
mod nif;

#[cfg(feature = "nif")]
rustler::init!("Elixir.Tms.Native");
