//! Hot reload: bundle sources report their files, the reloader assembles one
//! bundle, compiles and warms it off the request path, optionally runs its
//! tests as a gate, and swaps it in atomically. A bundle that fails any step
//! is rejected and the last good one keeps serving; nothing is ever cleared.
//!
//! Sources ([`dir`] for a watched directory, [`configmaps`] for labelled
//! ConfigMaps) send [`SourceUpdate`]s on a channel; the [`Reloader`] owns the
//! latest files of each source and is the only writer of the live bundle.
//! Readiness stays false until every configured source has reported once and
//! the assembled bundle is live, so a restarted replica never serves an empty
//! or partial policy set.
//!
//! The same reloader keeps a second, **candidate** bundle when a source has
//! one (`--candidate-policies`, or ConfigMaps labelled
//! `regent.dev/stage=candidate`): the bundle the live one would become after
//! promotion, compiled, warmed and gated the same way, installed with
//! [`Live::install_candidate`] for shadow evaluation, rejected on the same
//! errors (the live bundle untouched) and dropped when its source is gone.

pub mod certs;
pub mod configmaps;
pub mod dir;
pub mod embedded;
pub mod inventory;
pub mod source;
pub mod sources;

pub use source::{BundleSource, SourceId, SourceUpdate, View};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::serve::state::Live;
use regent_core::bundle::{BundleError, BundleFiles};
use regent_core::compose::{CompileError, CompileOptions, CompiledBundle};
use regent_core::runtime::Limits;

pub use crate::serve::state::ConfigMapRef;

/// Which bundle a reload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The bundle that decides requests.
    Live,
    /// The candidate: compiled the same way, shadow-evaluated, never deciding.
    Candidate,
}

impl Slot {
    /// A label for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Candidate => "candidate",
        }
    }
}

/// Why a revision was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A source could not be read.
    #[error("{kind} source: {message}")]
    Source {
        /// Which source.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The assembled files are not a bundle.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The bundle does not compile or warm up.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The bundle's own tests failed (with `--reload-require-tests`).
    #[error("bundle tests failed: {0}")]
    Tests(String),
    /// The compile task died.
    #[error("compile task failed: {0}")]
    Task(String),
}

/// The outcome of one reload, as reported to sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Which bundle.
    pub slot: Slot,
    /// The revision that was tried.
    pub attempted: String,
    /// The revision in this slot after the attempt (None: nothing yet).
    pub serving: Option<String>,
    /// The error, when the attempt was rejected.
    pub error: Option<String>,
}

/// Something that wants to hear about each reload (ConfigMap status).
pub trait StatusSink: Send + Sync {
    /// Called after each attempt with the ConfigMaps behind it.
    fn report(&self, outcome: Outcome, configmaps: Vec<ConfigMapRef>);
}

/// Reload settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReloadOptions {
    /// Run the bundle's `test_*` rules and reject it if any fails.
    pub require_tests: bool,
    /// The limits of every evaluation while a bundle is compiled, warmed and
    /// tested: those of the request path.
    pub limits: Limits,
}

/// Owns the latest files of each source and the lifecycle of the live and
/// the candidate bundle.
pub struct Reloader {
    live: Arc<Live>,
    options: ReloadOptions,
    expected: Vec<SourceId>,
    latest: BTreeMap<SourceId, SourceUpdate>,
    last_attempted: Option<String>,
    last_candidate: Option<String>,
    reporter: Option<Arc<dyn StatusSink>>,
}

impl Reloader {
    /// A reloader that waits for every source in `expected` before its first bundle.
    pub fn new(live: Arc<Live>, options: ReloadOptions, expected: Vec<SourceId>) -> Self {
        Self {
            live,
            options,
            expected,
            latest: BTreeMap::new(),
            last_attempted: None,
            last_candidate: None,
            reporter: None,
        }
    }

    /// Adds a reporter (ConfigMap status).
    pub fn with_reporter(mut self, reporter: Arc<dyn StatusSink>) -> Self {
        self.reporter = Some(reporter);
        self
    }

    /// Processes updates until every sender is gone.
    pub async fn run(mut self, mut updates: mpsc::Receiver<SourceUpdate>) {
        while let Some(update) = updates.recv().await {
            self.latest.insert(update.source, update);
            // Coalesce a burst: only the newest files of each source matter.
            while let Ok(more) = updates.try_recv() {
                self.latest.insert(more.source, more);
            }
            if self.expected.iter().all(|s| self.latest.contains_key(s)) {
                self.apply().await;
            }
        }
    }

    /// Assembles, compiles and installs the current files of the live
    /// bundle, then of the candidate; or rejects them. The live bundle goes
    /// first: a candidate never delays it.
    pub async fn apply(&mut self) {
        // Without a live source (the embedded bundle is live, a candidate
        // directory is watched) only the candidate is reloaded.
        if self.latest.keys().any(|k| k.candidate_for.is_none()) {
            let (files, configmaps) = self.assemble(Slot::Live);
            self.attempt(Slot::Live, files, configmaps).await;
        }
        if !self.has_candidate() {
            self.last_candidate = None;
            if self.live.has_candidate() {
                self.live.clear_candidate();
            }
            return;
        }
        let (files, configmaps) = self.assemble(Slot::Candidate);
        self.attempt(Slot::Candidate, files, configmaps).await;
    }

    /// Whether any source holds a candidate.
    fn has_candidate(&self) -> bool {
        self.latest.keys().any(|k| k.candidate_for.is_some())
            || self.latest.values().any(|u| u.candidate.is_some())
    }

    async fn attempt(
        &mut self,
        slot: Slot,
        files: Result<BundleFiles, ReloadError>,
        configmaps: Vec<ConfigMapRef>,
    ) {
        let last = match slot {
            Slot::Live => &mut self.last_attempted,
            Slot::Candidate => &mut self.last_candidate,
        };
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                let attempted = format!("unreadable:{}", short_hash(&e.to_string()));
                if last.as_deref() == Some(attempted.as_str()) {
                    return;
                }
                *last = Some(attempted.clone());
                self.reject(slot, attempted, e, configmaps);
                return;
            }
        };
        if last.as_deref() == Some(files.revision.as_str()) {
            // Same content as last time (an annotation or resourceVersion
            // changed, or a directory was touched): nothing to do.
            return;
        }
        let revision = files.revision.clone();
        *last = Some(revision.clone());
        let started = Instant::now();
        let options = self.options;
        let compiled = tokio::task::spawn_blocking(move || compile_gated(&files, options))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))
            .and_then(|r| r);
        let metrics = self.live.metrics();
        match (slot, compiled) {
            (Slot::Live, Ok(bundle)) => {
                metrics
                    .reload_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics.reloads.with_label_values(&["success"]).inc();
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                metrics.last_reload_success.set(now);
                self.live.install(bundle);
            }
            (Slot::Candidate, Ok(bundle)) => {
                metrics
                    .candidate
                    .reloads
                    .with_label_values(&["success"])
                    .inc();
                self.live.install_candidate(bundle, configmaps.clone());
            }
            (_, Err(e)) => {
                if slot == Slot::Live {
                    metrics
                        .reload_duration
                        .observe(started.elapsed().as_secs_f64());
                }
                self.reject(slot, revision, e, configmaps);
                return;
            }
        }
        self.report(
            Outcome {
                slot,
                attempted: revision.clone(),
                serving: Some(revision),
                error: None,
            },
            configmaps,
        );
    }

    fn reject(
        &self,
        slot: Slot,
        attempted: String,
        error: ReloadError,
        configmaps: Vec<ConfigMapRef>,
    ) {
        let serving = match slot {
            Slot::Live => {
                self.live
                    .metrics()
                    .reloads
                    .with_label_values(&["failure"])
                    .inc();
                let serving = self.live.bundle().map(|b| b.revision().to_string());
                if serving.is_none() {
                    self.live.set_waiting_reason(format!(
                        "no policy bundle is live: revision {attempted} was rejected: {error}"
                    ));
                }
                tracing::error!(
                    revision = %attempted,
                    serving = serving.as_deref().unwrap_or("(none)"),
                    error = %error,
                    "policy bundle rejected; the last good bundle keeps serving"
                );
                serving
            }
            Slot::Candidate => {
                self.live
                    .metrics()
                    .candidate
                    .reloads
                    .with_label_values(&["failure"])
                    .inc();
                let shadowing = self
                    .live
                    .candidate()
                    .map(|c| c.bundle.revision().to_string());
                tracing::error!(
                    revision = %attempted,
                    shadowing = shadowing.as_deref().unwrap_or("(none)"),
                    error = %error,
                    "candidate bundle rejected; the live bundle is unaffected"
                );
                shadowing
            }
        };
        if let ReloadError::Compile(CompileError::Rego { detail, .. }) = &error {
            tracing::debug!(%detail, "compile error detail");
        }
        self.report(
            Outcome {
                slot,
                attempted,
                serving,
                error: Some(error.to_string()),
            },
            configmaps,
        );
    }

    fn report(&self, outcome: Outcome, configmaps: Vec<ConfigMapRef>) {
        if let Some(r) = &self.reporter {
            r.report(outcome, configmaps);
        }
    }

    /// The files of one bundle and the ConfigMaps to report its status on.
    /// The candidate is what the live bundle would be after promotion: the
    /// candidate directory instead of the live one, and the ConfigMap
    /// source's candidate view.
    fn assemble(&self, slot: Slot) -> (Result<BundleFiles, ReloadError>, Vec<ConfigMapRef>) {
        // The kinds of source a candidate-only source stands for.
        let replaced: Vec<&str> = self.latest.keys().filter_map(|k| k.candidate_for).collect();
        let mut layers = Vec::new();
        let mut configmaps = Vec::new();
        // Sources in their order: each is one bundle of the composition.
        for update in self.latest.values() {
            let id = update.source;
            let view = match slot {
                Slot::Live if id.candidate_for.is_some() => continue,
                Slot::Live => None,
                Slot::Candidate if replaced.contains(&id.kind) => continue,
                Slot::Candidate => update.candidate.as_ref().map(|v| (&v.files, &v.configmaps)),
            };
            let (files, cms) = view.unwrap_or((&update.files, &update.configmaps));
            if slot == Slot::Live || update.candidate.is_some() {
                configmaps.extend(cms.iter().cloned());
            }
            match files {
                Ok(files) => match BundleFiles::from_entries(&update.origin, files.clone()) {
                    Ok(mut b) => {
                        b.root = update.root.clone();
                        layers.push(b)
                    }
                    Err(e) => return (Err(e.into()), configmaps),
                },
                Err(e) => {
                    let error = ReloadError::Source {
                        kind: id.as_str(),
                        message: e.to_string(),
                    };
                    return (Err(error), configmaps);
                }
            }
        }
        let files = BundleFiles::compose(layers).map_err(ReloadError::from);
        (files, configmaps)
    }
}

/// Compiles a bundle; with `require_tests`, its tests must pass first.
pub fn compile_gated(
    files: &BundleFiles,
    options: ReloadOptions,
) -> Result<CompiledBundle, ReloadError> {
    if options.require_tests {
        let with_tests = CompiledBundle::compile(
            files,
            CompileOptions {
                include_tests: true,
                interpreter_only: false,
                limits: options.limits,
            },
        )?;
        let failures: Vec<String> = with_tests
            .tests()
            .iter()
            .filter_map(
                |case| match with_tests.run_test_within(case, options.limits) {
                    Ok(true) => None,
                    Ok(false) => Some(format!("{} at {}:{}", case.name, case.path, case.line)),
                    Err(e) => Some(format!(
                        "{} at {}:{}: {}",
                        case.name,
                        case.path,
                        case.line,
                        first_line(&e)
                    )),
                },
            )
            .collect();
        if !failures.is_empty() {
            return Err(ReloadError::Tests(failures.join("; ")));
        }
    }
    Ok(CompiledBundle::compile(
        files,
        CompileOptions {
            limits: options.limits,
            ..Default::default()
        },
    )?)
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}
