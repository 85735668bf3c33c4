//! Shadow evaluation: while a candidate bundle is installed, every admission
//! request is decided again under it, off the response path, and what it
//! would have decided differently is counted and logged.
//!
//! The request path only hands the parsed review and the live decision to a
//! bounded queue ([`Shadow::offer`], a `try_send`): the response never waits
//! for the candidate. A few threads of their own, at the lowest scheduling
//! priority, take jobs off the queue; when they fall behind (the server is
//! saturated) the queue fills and new jobs are dropped and counted, never
//! queued without bound. The comparison is [`crate::diff`]'s, the decision
//! code [`crate::decision`]'s: the candidate is judged exactly as it would
//! judge at admission.

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::decision::{self, DecideOptions, Decision, Verdict, Webhook};
use crate::diff::{self, Side};
use crate::review::Review;
use crate::state::Live;

/// The nice value of the shadow threads: the scheduler runs them only with
/// what admission leaves over.
const NICE: i32 = 19;

/// One request to decide again.
#[derive(Debug)]
pub struct Job {
    /// The webhook it came to.
    pub webhook: Webhook,
    /// The parsed review.
    pub review: Review,
    /// The live bundle's decision, as sent.
    pub decision: Decision,
    /// The options it was decided with.
    pub options: DecideOptions,
}

/// The shadow-evaluation queue and its threads.
#[derive(Debug)]
pub struct Shadow {
    tx: SyncSender<Job>,
    live: Arc<Live>,
}

/// Shadow-evaluation settings.
#[derive(Debug, Clone, Copy)]
pub struct ShadowOptions {
    /// Threads evaluating the candidate.
    pub workers: usize,
    /// Requests waiting at most; more are dropped.
    pub queue: usize,
}

impl Default for ShadowOptions {
    fn default() -> Self {
        Self {
            workers: 1,
            queue: 256,
        }
    }
}

impl Shadow {
    /// Starts the shadow threads.
    pub fn start(live: Arc<Live>, options: ShadowOptions) -> std::io::Result<Arc<Self>> {
        let (tx, rx) = mpsc::sync_channel(options.queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..options.workers.max(1) {
            let rx = rx.clone();
            let live = live.clone();
            std::thread::Builder::new()
                .name(format!("regent-shadow-{i}"))
                .spawn(move || work(&rx, &live))?;
        }
        Ok(Arc::new(Self { tx, live }))
    }

    /// Whether a candidate is installed (the request path asks before
    /// handing anything over).
    pub fn active(&self) -> bool {
        self.live.has_candidate()
    }

    /// Hands a decided request over without waiting; drops it (counted)
    /// when the queue is full.
    pub fn offer(&self, job: Job) {
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.live
                    .metrics()
                    .candidate
                    .evaluations
                    .with_label_values(&["dropped"])
                    .inc();
            }
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>, live: &Live) {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), NICE) {
        tracing::debug!(error = %e, "could not lower the shadow thread's priority");
    }
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|e| e.into_inner());
            match guard.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        evaluate(live, job);
    }
}

/// Decides `job` under the candidate and records how it differs.
pub fn evaluate(live: &Live, job: Job) {
    let metrics = &live.metrics().candidate;
    let Some(candidate) = live.candidate() else {
        // The candidate went away while the job waited.
        metrics.evaluations.with_label_values(&["dropped"]).inc();
        return;
    };
    let Job {
        webhook,
        review,
        decision: before,
        options,
    } = job;
    let bundle = &candidate.bundle;
    let after = match webhook {
        Webhook::Validate => {
            decision::validate_with_inventory(bundle, &review, &options, &live.inventory())
        }
        Webhook::Mutate => decision::mutate(bundle, &review, &options),
    };
    let m = &review.meta;
    if after.verdict == Verdict::Failed {
        metrics.evaluations.with_label_values(&["failed"]).inc();
        tracing::warn!(
            webhook = webhook.as_str(), candidate = bundle.revision(), uid = %m.uid, kind = %m.kind,
            namespace = %m.namespace, name = %m.name,
            error = ?after.error.as_ref().map(ToString::to_string),
            "candidate bundle failed to evaluate a request"
        );
        return;
    }
    let sides = |d: &Decision| match webhook {
        Webhook::Validate => Side::of_validation(d),
        Webhook::Mutate => Side::of_mutation(d, decision::patch_of(&review, d).as_ref()),
    };
    let diff = diff::compare(&sides(&before), &sides(&after));
    if diff.is_empty() {
        metrics.evaluations.with_label_values(&["same"]).inc();
        return;
    }
    metrics.evaluations.with_label_values(&["diverged"]).inc();
    let mut changes = Vec::new();
    for change in &diff.changes {
        let policies: Vec<&str> = diff
            .policies
            .get(change)
            .map(|p| p.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if policies.is_empty() {
            metrics
                .divergence
                .with_label_values(&["unknown", change.as_str()])
                .inc();
        }
        for p in &policies {
            metrics
                .divergence
                .with_label_values(&[p, change.as_str()])
                .inc();
        }
        changes.push(format!("{}: {}", change.as_str(), policies.join(",")));
    }
    tracing::info!(
        webhook = webhook.as_str(), candidate = bundle.revision(), uid = %m.uid, kind = %m.kind,
        namespace = %m.namespace, name = %m.name, operation = %m.operation,
        changes = ?changes, "candidate bundle diverges"
    );
}
