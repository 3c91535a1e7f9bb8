//! Writing the output: atomic publishing of tables and files, the lock that keeps one run per
//! output, and the manifest of what ran.

pub mod lock;
pub mod manifest;
pub mod publish;
