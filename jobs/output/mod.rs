//! Writing the output: atomic publishing of tables and files, the commit protocol and its
//! pointers, the lock that keeps one run per output, the manifest of what ran, and the run
//! lifecycle that ties them together.

pub mod catalog;
pub mod commit;
pub mod described;
pub(crate) mod footer;
pub mod lock;
pub mod manifest;
pub mod publish;
pub mod published;
pub mod run;
