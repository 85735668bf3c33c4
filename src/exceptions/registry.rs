//! The registry of exceptions: every source's latest exceptions, validated
//! against the live bundle's policies and the governance into the set in
//! force, which decisions read through one atomic pointer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::metrics::Metrics;
use regent_core::exceptions::{
    self, Catalogue, Exception, ExceptionSet, Governance, Problem, Status,
};

/// Where exceptions came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// `--exceptions` files.
    Files,
    /// The `policyexceptions.regent.dev` resource.
    Cluster,
}

/// What one source holds: the exceptions that parsed, and the documents
/// that did not (with their problems).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Parsed exceptions.
    pub exceptions: Vec<Exception>,
    /// Documents that did not parse: who (`ns/name` or the file) and why.
    pub unreadable: Vec<(String, Vec<Problem>)>,
}

#[derive(Debug, Default)]
struct Inputs {
    sources: BTreeMap<Source, Loaded>,
    catalogue: Catalogue,
    governance: Governance,
    help: Option<String>,
    /// What each exception's status was at the last build, to log changes once.
    statuses: BTreeMap<String, String>,
}

/// The exceptions of this process.
#[derive(Debug)]
pub struct Registry {
    inputs: Mutex<Inputs>,
    current: ArcSwap<ExceptionSet>,
    help: ArcSwap<Option<String>>,
    generation: watch::Sender<u64>,
    metrics: Metrics,
}

impl Registry {
    /// No exception, the default governance.
    pub fn new(metrics: Metrics) -> Self {
        Self {
            inputs: Mutex::new(Inputs::default()),
            current: ArcSwap::from_pointee(ExceptionSet::empty()),
            help: ArcSwap::from_pointee(None),
            generation: watch::Sender::new(0),
            metrics,
        }
    }

    fn inputs(&self) -> std::sync::MutexGuard<'_, Inputs> {
        self.inputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the governance and the help text (before the sources start).
    pub fn configure(&self, governance: Governance, help: Option<String>) {
        let mut i = self.inputs();
        i.governance = governance;
        i.help = help.clone();
        self.help.store(Arc::new(help));
        drop(i);
        self.rebuild();
    }

    /// The governance.
    pub fn governance(&self) -> Governance {
        self.inputs().governance.clone()
    }

    /// The exceptions in force (read on the request path: no lock).
    pub fn current(&self) -> Arc<ExceptionSet> {
        self.current.load_full()
    }

    /// How to ask for an exception (`--exception-help`).
    pub fn help(&self) -> Arc<Option<String>> {
        self.help.load_full()
    }

    /// Changes whenever the set in force changes (a source, a bundle, an
    /// exception that ended): the audit judges every object again.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// A source's latest exceptions.
    pub fn set_source(&self, source: Source, loaded: Loaded) {
        self.inputs().sources.insert(source, loaded);
        self.rebuild();
    }

    /// The live bundle's policies (on every swap).
    pub fn set_catalogue(&self, catalogue: Catalogue) {
        self.inputs().catalogue = catalogue;
        self.rebuild();
    }

    /// The catalogue exceptions are validated against.
    pub fn catalogue(&self) -> Catalogue {
        self.inputs().catalogue.clone()
    }

    /// Validates every source's exceptions now and installs the result.
    pub fn rebuild(&self) -> Arc<ExceptionSet> {
        let now = exceptions::now();
        let mut inputs = self.inputs();
        let mut all = Vec::new();
        let mut unreadable = Vec::new();
        for loaded in inputs.sources.values() {
            all.extend(loaded.exceptions.iter().cloned());
            unreadable.extend(loaded.unreadable.iter().cloned());
        }
        let set = ExceptionSet::build(all, unreadable, &inputs.governance, &inputs.catalogue, now);
        // Metrics: counts by status, each valid exception's end.
        let m = &self.metrics.exceptions;
        m.loaded.reset();
        m.expiry.reset();
        let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        for (e, status) in set.all() {
            *counts.entry(status.as_str()).or_default() += 1;
            if *status == Status::Valid {
                m.expiry.with_label_values(&[&e.id()]).set(e.expires as f64);
            }
            let text = match status {
                Status::Invalid(p) => format!("invalid: {}", join(p)),
                other => other.as_str().to_string(),
            };
            statuses.insert(e.id(), text);
        }
        *counts.entry("invalid").or_default() += set.unreadable().len() as i64;
        for (who, problems) in set.unreadable() {
            statuses.insert(who.clone(), format!("invalid: {}", join(problems)));
        }
        for status in ["valid", "expired", "invalid"] {
            m.loaded
                .with_label_values(&[status])
                .set(counts.get(status).copied().unwrap_or(0));
        }
        // The log says what changed, once.
        for (id, text) in &statuses {
            if inputs.statuses.get(id) != Some(text) {
                if text.starts_with("invalid") {
                    tracing::warn!(exception = %id, status = %text, "policy exception is invalid and applies to nothing");
                } else {
                    tracing::info!(exception = %id, status = %text, "policy exception");
                }
            }
        }
        inputs.statuses = statuses;
        drop(inputs);
        let set = Arc::new(set);
        // A change that changes nothing (a status written back, the same
        // file saved again) does not make the audit judge everything again.
        let previous = self.current.swap(set.clone());
        if previous.all() != set.all() || previous.unreadable() != set.unreadable() {
            self.generation.send_modify(|g| *g += 1);
        }
        set
    }

    /// Rebuilds at each moment an exception ends, so decisions and the
    /// audit's reports change then (no reload, no restart).
    pub async fn run_expiries(self: Arc<Self>) {
        let mut changes = self.subscribe();
        loop {
            let now = exceptions::now();
            let next = self.current().next_expiry(now);
            let wait = next.map(|t| std::time::Duration::from_secs((t - now).max(0) as u64));
            tokio::select! {
                _ = async {
                    match wait {
                        Some(w) => tokio::time::sleep(w).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    tracing::info!("a policy exception ended");
                    self.rebuild();
                    changes.borrow_and_update();
                }
                changed = changes.changed() => {
                    if changed.is_err() { return; }
                }
            }
        }
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
