//! Audit: what already runs in the cluster, judged by the same policies as
//! admission and reported as PolicyReports.
//!
//! The evaluation itself is the compiled bundle's
//! ([`regent_core::compose::CompiledBundle::audit`]): one engine, many callers.
//! Around it:
//! - [`report`]: the report objects (one per resource), pure;
//! - [`kinds`]: which kinds the bundle can match, resolved by discovery;
//! - [`store`]: the small record kept per object, and the write queue;
//! - [`writer`]: writing reports at a bounded rate;
//! - [`candidate`]: what a candidate bundle would judge differently;
//! - [`cluster`]: the in-cluster audit process (`regent audit --cluster`).
//!
//! The offline `regent audit -f` is [`crate::cli`]'s.

pub mod args;
pub mod cluster;
pub mod kinds;
pub mod report;
pub mod sink;
pub mod store;
pub mod writer;
