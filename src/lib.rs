//! Regent: a policy-as-code admission webhook for Kubernetes. This crate is
//! everything around the decision: serving it, keeping its bundle current,
//! auditing what runs, rolling out a new bundle, and the command line. The
//! decision itself (the Rego runtime, bundles, native policies, Gatekeeper,
//! their composition) is [`regent_core`], a crate without an async runtime,
//! a network or a Kubernetes client; every caller here decides through it.
//!
//! Feature folders, each with one job:
//! - [`serve`]: the admission HTTPS server (where a request enters,
//!   [`serve::admission`]), its connections and TLS, the admin port, and the
//!   live state every caller reads the bundle from;
//! - [`reload`]: bundle sources ([`reload::BundleSource`]: a directory,
//!   labelled ConfigMaps, the embedded bundle) and the reloader that
//!   compiles their composition and swaps it in (where a bundle is swapped);
//! - [`audit`]: judging what already runs and writing reports
//!   ([`audit::sink::ReportSink`]: the Kubernetes API, or files and stdout);
//! - [`rollout`]: candidate bundles: shadow evaluation, the background
//!   scheduling it runs under, the candidate's audit, promotion;
//! - [`exceptions`]: policy exceptions from files and the cluster, kept
//!   current and validated against the live bundle;
//! - [`decision_log`]: every admission decision exported to stdout, a
//!   rotated file or HTTP, bounded and off the request path;
//! - [`cli`]: the commands.
//!
//! Around them: metrics ([`metrics`]) and the process allocator's options
//! ([`allocator`]).

pub mod allocator;
pub mod audit;
pub mod cli;
pub mod decision_log;
pub mod exceptions;
pub mod metrics;
pub mod reload;
pub mod rollout;
pub mod serve;
