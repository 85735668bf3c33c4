//! Regent: a policy-as-code admission webhook for Kubernetes.
//!
//! The crate in layers, bottom up; a lower layer never names a higher one:
//! - the Rego runtime, [`runtime`]: regorus wrapped once (compile with
//!   positions, time limits, the bytecode VM, errors); and the readers of
//!   bundle files, [`bundle`], and of Kubernetes objects in YAML,
//!   [`objects`];
//! - the kinds of policy that run on it, as peers: native
//!   `validate.*`/`mutate.*` packages ([`native`], described by [`policy`],
//!   their patches applied by [`mutation`]) and Gatekeeper templates and
//!   Constraints ([`gatekeeper`]); both answer in [`outcome`]'s words;
//! - the compiled bundle that composes them, [`compiled`];
//! - decisions, [`decision`]: the response the API server gets; and what
//!   changes between two bundles' decisions, [`diff`];
//! - the callers: the admission HTTP edge [`server`] (a request enters there
//!   and is parsed by [`review`]), the commands [`cli`], [`reload`], which
//!   compiles new bundles and swaps them into [`state`], and [`audit`].
//!
//! Around them: the process allocator's options [`allocator`], TLS [`tls`], the admission port's accept loop and its
//! connection limits [`connections`], metrics [`metrics`], the admin port
//! [`admin`], and how a background thread yields to admission
//! [`background`].

pub mod admin;
pub mod allocator;
pub mod audit;
pub mod background;
pub mod cli;
pub mod connections;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod shadow;
pub mod state;
pub mod tls;
