//! growth-jobs: the nightly batch analytics of an e-commerce growth team.
//!
//! The input tables (see [`contract`]) are read with DataFusion, the SQL models under `sql/`
//! (see [`models`]) are run in dependency order as of a run date, and every table is
//! published atomically as Parquet (see [`publish`]) with a [`manifest`] of the run.

pub mod benchmark;
pub mod catalog;
pub mod churn;
pub mod cli;
pub mod config;
pub mod contract;
pub mod datatests;
pub mod error;
pub mod evaluation;
pub mod features;
pub mod lock;
pub mod manifest;
pub mod model_metrics;
pub mod models;
pub mod nightly;
pub mod publish;
pub mod quality;
pub mod segment;
pub mod stage;
pub mod storage;
pub mod transform;

pub use error::{Error, Result};
pub mod sample;
