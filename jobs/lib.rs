//! growth-jobs: the nightly batch analytics of an e-commerce growth team.
//!
//! The input tables (see [`input::contract`]) are read with DataFusion, the SQL models under
//! `sql/` (see [`transform::sql_models`]) are run in dependency order as of a run date, and
//! every table is published atomically as Parquet (see [`output::publish`]) with a
//! [`output::manifest`] of the run.

pub mod allocator;
pub mod benchmark;
pub mod cdnow;
pub mod cli;
#[cfg(feature = "ballista")]
pub mod cluster;
pub mod config;
pub mod dictionary;
pub mod engine;
pub mod error;
pub mod input;
pub mod learn;
pub mod nightly;
pub mod output;
pub mod report;
pub mod sample;
pub mod side_by_side;
pub mod stages;
pub mod storage;
pub mod telemetry;
pub mod transform;

pub use error::{Error, Result};
