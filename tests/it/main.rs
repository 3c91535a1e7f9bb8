//! The one integration-test binary: each module builds small real inputs in a temp folder,
//! runs the real pipeline, and reads the real Parquet back.

mod catalog;
mod cdnow;
#[cfg(feature = "ballista")]
mod cluster;
mod command;
mod contract;
mod dictionary;
mod history;
mod hostile;
mod kpis;
mod layers;
mod learning;
mod lifetime;
mod lock;
mod logs;
mod marts;
mod outside_reader;
mod plans;
mod publish;
mod readme;
mod reference;
mod report;
mod runner;
mod s3;
mod sample;
mod support;

#[global_allocator]
static ALLOCATOR: growth_jobs::allocator::Allocator = growth_jobs::allocator::Allocator;
