//! The live state shared by the request path and the admin port: the bundle
//! currently served (swapped atomically, read without a lock), the candidate
//! bundle shadow-evaluated next to it, the referential data of Gatekeeper
//! Constraints (`data.inventory`, swapped the same way) and readiness.
//!
//! Invariants: once a bundle is installed there is always one (a swap replaces,
//! never clears); readiness is true only with a bundle installed and before
//! shutdown begins. The candidate never decides a request and never affects
//! readiness; it comes and goes with its source.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::exceptions::Registry;
use crate::metrics::Metrics;
use regent_core::compose::CompiledBundle;

/// A ConfigMap that contributed to a bundle, for status reports and Events.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigMapRef {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its uid (for Events).
    pub uid: Option<String>,
    /// Its resourceVersion when read.
    pub resource_version: Option<String>,
}

/// The candidate bundle: compiled and validated like the live one, evaluated
/// in the shadow of live traffic and by the audit, never deciding.
#[derive(Debug)]
pub struct Candidate {
    /// The compiled candidate.
    pub bundle: Arc<CompiledBundle>,
    /// The candidate ConfigMaps (empty for `--candidate-policies`), where the
    /// audit's summary of its impact goes.
    pub configmaps: Vec<ConfigMapRef>,
}

/// The served bundle and readiness.
#[derive(Debug)]
pub struct Live {
    bundle: ArcSwapOption<CompiledBundle>,
    candidate: ArcSwapOption<Candidate>,
    candidate_revision: tokio::sync::watch::Sender<Option<String>>,
    inventory: ArcSwap<regorus::Value>,
    draining: AtomicBool,
    /// Why no bundle is live yet (shown by `/readyz`).
    waiting: ArcSwap<String>,
    /// What else readiness waits for (the audit's first full scan), if
    /// anything.
    gate: ArcSwapOption<String>,
    /// The live revision, for tasks that act when it changes.
    revision: tokio::sync::watch::Sender<Option<String>>,
    metrics: Metrics,
    /// The policy exceptions in force.
    exceptions: Arc<Registry>,
}

impl Live {
    /// No bundle yet, not ready.
    pub fn new(metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            bundle: ArcSwapOption::empty(),
            candidate: ArcSwapOption::empty(),
            candidate_revision: tokio::sync::watch::Sender::new(None),
            inventory: ArcSwap::from_pointee(regent_core::compose::decision::empty_inventory()),
            draining: AtomicBool::new(false),
            waiting: ArcSwap::from_pointee("waiting for the first policy bundle".to_string()),
            gate: ArcSwapOption::empty(),
            revision: tokio::sync::watch::Sender::new(None),
            exceptions: Arc::new(Registry::new(metrics.clone())),
            metrics,
        })
    }

    /// The policy exceptions.
    pub fn exceptions(&self) -> &Arc<Registry> {
        &self.exceptions
    }

    /// The bundle to decide a request with. A request keeps the `Arc` it got
    /// here to the end, so a swap never changes a decision in flight.
    pub fn bundle(&self) -> Option<Arc<CompiledBundle>> {
        self.bundle.load_full()
    }

    /// Makes `bundle` the served one.
    pub fn install(&self, bundle: CompiledBundle) {
        self.metrics.set_bundle(&bundle);
        tracing::info!(
            revision = bundle.revision(),
            origin = bundle.origin(),
            policies = bundle.policies().len(),
            compile_ms = bundle.compile_time().as_secs_f64() * 1e3,
            evaluator = bundle.evaluator().as_str(),
            constraints = bundle.gatekeeper().constraints().len(),
            "policy bundle live"
        );
        for o in bundle.overrides() {
            tracing::info!(revision = bundle.revision(), %o, "a composed bundle overrides data");
        }
        for warning in bundle.warnings() {
            tracing::warn!(revision = bundle.revision(), %warning, "policy bundle warning");
        }
        let revision = bundle.revision().to_string();
        // Exceptions are validated against the policies of the bundle served.
        self.exceptions.set_catalogue(bundle.catalogue());
        self.bundle.store(Some(Arc::new(bundle)));
        self.revision.send_replace(Some(revision));
    }

    /// The candidate bundle, if one is shadow-evaluated.
    pub fn candidate(&self) -> Option<Arc<Candidate>> {
        self.candidate.load_full()
    }

    /// Whether a candidate is installed (cheaper than [`Self::candidate`]).
    pub fn has_candidate(&self) -> bool {
        self.candidate.load().is_some()
    }

    /// Makes `bundle` the candidate.
    pub fn install_candidate(&self, bundle: CompiledBundle, configmaps: Vec<ConfigMapRef>) {
        self.metrics.set_candidate(Some(&bundle));
        tracing::info!(
            revision = bundle.revision(),
            origin = bundle.origin(),
            policies = bundle.policies().len(),
            constraints = bundle.gatekeeper().constraints().len(),
            "candidate bundle ready: shadow evaluation on"
        );
        let revision = bundle.revision().to_string();
        self.candidate.store(Some(Arc::new(Candidate {
            bundle: Arc::new(bundle),
            configmaps,
        })));
        self.candidate_revision.send_replace(Some(revision));
    }

    /// Drops the candidate (its source is gone): shadow evaluation stops.
    pub fn clear_candidate(&self) {
        if self.candidate.swap(None).is_some() {
            tracing::info!("candidate bundle removed: shadow evaluation off");
        }
        self.metrics.set_candidate(None);
        self.candidate_revision.send_replace(None);
    }

    /// The candidate's revision as it changes (`None` while there is none).
    pub fn subscribe_candidate(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.candidate_revision.subscribe()
    }

    /// The live revision as it changes (`None` until a bundle is live).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.revision.subscribe()
    }

    /// Holds readiness back for `reason` (`None` lifts it).
    pub fn set_gate(&self, reason: Option<String>) {
        self.gate.store(reason.map(Arc::new));
    }

    /// The current `data.inventory` (empty unless `--inventory` kinds are watched).
    pub fn inventory(&self) -> Arc<regorus::Value> {
        self.inventory.load_full()
    }

    /// Replaces `data.inventory`.
    pub fn set_inventory(&self, inventory: regorus::Value) {
        self.inventory.store(Arc::new(inventory));
    }

    /// Ready: a bundle is live and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Ready, or why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.draining.load(Ordering::Acquire) {
            return Err("shutting down".to_string());
        }
        if self.bundle.load().is_none() {
            return Err(self.waiting.load().as_ref().clone());
        }
        if let Some(reason) = self.gate.load().as_ref() {
            return Err(reason.as_ref().clone());
        }
        Ok(())
    }

    /// Records why no bundle could be made live (the last rejection), for
    /// `/readyz` while none is.
    pub fn set_waiting_reason(&self, reason: String) {
        self.waiting.store(std::sync::Arc::new(reason));
    }

    /// Shutdown has begun: readiness turns false for good.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}
