//! Regent: a policy-as-code admission webhook for Kubernetes.
//!
//! Where things are:
//! - a request enters in [`server`] (HTTP) and is parsed by [`review`];
//! - it is decided in [`decision`], which runs the compiled bundle of [`engine`];
//! - bundles are read by [`bundle`], their policies described by [`policy`],
//!   and mutations applied by [`mutation`];
//! - the live bundle is swapped in [`state`]; TLS is [`tls`], metrics
//!   [`metrics`], the admin port [`admin`], and the commands [`cli`].

pub mod admin;
pub mod bundle;
pub mod cli;
pub mod decision;
pub mod engine;
pub mod gatekeeper;
pub mod metrics;
pub mod mutation;
pub mod policy;
pub mod reload;
pub mod review;
pub mod server;
pub mod state;
pub mod tls;
