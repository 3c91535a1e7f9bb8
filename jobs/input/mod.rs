//! Reading the input: the contract its tables must meet, the DataFusion session that sees them
//! as of the run date, and the row rules that judge their values.

pub mod catalog;
pub mod contract;
pub mod quality;
pub mod rules;
pub mod session;
pub mod time_zones;
