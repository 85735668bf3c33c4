//! Regent's core: everything that decides, and nothing that waits. The
//! Rego runtime, policy bundles, the two kinds of policy, their
//! composition into one decision, and the words they share; no async
//! runtime, no network, no Kubernetes client, no metrics registry (the
//! compiler keeps it so: none is a dependency). The `regent` crate around
//! it serves, reloads, audits and rolls out; every caller decides through
//! [`compose`].
//!
//! Layers, bottom up; a lower one never names a higher one:
//! - the Rego runtime, [`runtime`] (regorus wrapped once: compile with
//!   positions, limits, the bytecode VM, a static check, Regent's builtins);
//!   the readers of what a bundle holds: [`bundle`] (files, data,
//!   composition), [`positions`] (where a key is in a file), [`objects`]
//!   (Kubernetes objects in YAML), [`schema`] (parameters against an
//!   OpenAPI schema), [`units`] (quantities and durations);
//! - what every kind of policy shares: [`outcome`] (enforcement,
//!   violations, errors), [`mutation`] (applying a policy's patch),
//!   [`source`] (what a module defines and reads), [`samples`] (the reviews
//!   every program is warmed with), [`review`] (an AdmissionReview parsed);
//! - the kinds of policy, as peers: [`native`] (`validate.*`/`mutate.*`
//!   packages) and [`gatekeeper`] (templates, Constraints, mutators);
//! - [`compose`]: one compiled bundle, validation and mutation of both
//!   kinds composed under one budget per request, and the decision the API
//!   server gets; [`diff`]: what changes between two bundles' decisions.

pub mod bundle;
pub mod compose;
pub mod decision_log;
pub mod diff;
pub mod exceptions;
pub mod gatekeeper;
pub mod mutation;
pub mod native;
pub mod objects;
pub mod outcome;
pub mod positions;
pub mod review;
pub mod runtime;
pub mod samples;
pub mod schema;
pub mod source;
pub mod units;
