//! Shadow evaluation: while a candidate bundle is installed, every admission
//! request is decided again under it, off the response path, and what it
//! would have decided differently is counted and logged.
//!
//! The request path only hands the request body and the live decision to a
//! bounded lock-free queue ([`Shadow::offer`]): the response never waits for
//! the candidate, and no lock is shared with the shadow threads. A few threads of their own, at the lowest scheduling
//! priority (nice 19 and the shortest slice, [`crate::rollout::background`]), take jobs off the queue; when they fall behind (the server is
//! saturated) the queue fills and new jobs are dropped and counted, never
//! queued without bound. The comparison is [`regent_core::diff`]'s, the decision
//! code [`regent_core::compose::decision`]'s: the candidate is judged exactly as it would
//! judge at admission.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use crate::serve::state::Live;
use regent_core::compose::decision::{self, DecideOptions, Decision, Verdict, Webhook};
use regent_core::compose::Load;
use regent_core::diff::{self, Side};

/// One request to decide again.
///
/// It carries the request body, not the review parsed on the admission
/// thread, and the shadow thread parses it again: a full queue of bodies
/// holds far less than one of parsed reviews (peak RSS with a candidate
/// 43 MiB with reviews, 30 MiB with bodies, benches/RESULTS.md), and the
/// parsed review's keys, shared with the admission thread's key cache, stay
/// on that thread.
#[derive(Debug)]
pub struct Job {
    /// The webhook it came to.
    pub webhook: Webhook,
    /// The request body, as received.
    pub body: axum::body::Bytes,
    /// The live bundle's decision, as sent.
    pub decision: Decision,
    /// The options it was decided with.
    pub options: DecideOptions,
}

/// The shadow-evaluation queue and its threads.
#[derive(Debug)]
pub struct Shadow {
    queue: Arc<ArrayQueue<Job>>,
    workers: Vec<std::thread::Thread>,
    closed: Arc<AtomicBool>,
    live: Arc<Live>,
    dropped: prometheus::IntCounter,
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
        let queue = Arc::new(ArrayQueue::new(options.queue.max(1)));
        let closed = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..options.workers.max(1) {
            let queue = queue.clone();
            let closed = closed.clone();
            let live = live.clone();
            let handle = std::thread::Builder::new()
                .name(format!("regent-shadow-{i}"))
                .spawn(move || work(&queue, &closed, &live))?;
            workers.push(handle.thread().clone());
        }
        let dropped = live
            .metrics()
            .candidate
            .evaluations
            .with_label_values(&["dropped"]);
        Ok(Arc::new(Self {
            queue,
            workers,
            closed,
            live,
            dropped,
        }))
    }

    /// Whether a candidate is installed (the request path asks before
    /// handing anything over).
    pub fn active(&self) -> bool {
        self.live.has_candidate()
    }

    /// Hands a decided request over without waiting or locking; drops it
    /// (counted) when the queue is full.
    pub fn offer(&self, job: Job) {
        match self.queue.push(job) {
            Ok(()) => {
                for w in &self.workers {
                    w.unpark();
                }
            }
            Err(_) => self.dropped.inc(),
        }
    }
}

impl Drop for Shadow {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::Release);
        for w in &self.workers {
            w.unpark();
        }
    }
}

fn work(queue: &ArrayQueue<Job>, closed: &AtomicBool, live: &Live) {
    // Nice 19 and the shortest slice ([`crate::rollout::background`]). Not
    // `SCHED_IDLE`, which measured worse: p99 at one connection 3.0× the
    // run without a candidate, against 1.4× at nice 19 alone
    // (`benches/load.sh --candidate`, see benches/RESULTS.md).
    for e in crate::rollout::background::lower_this_thread() {
        tracing::warn!(error = %e, "the shadow thread competes with admission for CPU more than intended");
    }
    while !closed.load(Ordering::Acquire) {
        while let Some(job) = queue.pop() {
            evaluate(live, job);
        }
        // An unpark between the last pop and here makes park return at once.
        std::thread::park();
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
        body,
        decision: before,
        options,
    } = job;
    let review = match regent_core::review::parse(&body) {
        Ok(review) => review,
        Err(rejected) => {
            // The live bundle parsed these same bytes, so this should not
            // happen; counted and explained rather than assumed.
            let error = match rejected {
                Ok(rejected) => rejected.error,
                Err(error) => error,
            };
            metrics.evaluations.with_label_values(&["failed"]).inc();
            tracing::warn!(
                webhook = webhook.as_str(), error = %error,
                "a request the live bundle decided could not be parsed again for the candidate"
            );
            return;
        }
    };
    let bundle = &candidate.bundle;
    // Candidate templates are never handed to the review helper: it runs
    // at normal priority and belongs to admission requests.
    let options = DecideOptions {
        load: Load::Background,
        ..options
    };
    let after = match webhook {
        Webhook::Validate => {
            decision::validate_with_inventory(bundle, &review, &options, &live.inventory())
        }
        Webhook::Mutate => {
            decision::mutate_with_inventory(bundle, &review, &options, &live.inventory())
        }
    };
    let m = &review.meta;
    if after.verdict == Verdict::Failed {
        metrics.evaluations.with_label_values(&["failed"]).inc();
        tracing::warn!(
            webhook = webhook.as_str(), candidate = bundle.revision(), uid = %m.uid, kind = %m.kind,
            namespace = %m.namespace, name = %m.name,
            error = %after.error.as_ref().map(ToString::to_string).unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use regent_core::bundle::BundleFiles;
    use regent_core::compose::{CompileOptions, CompiledBundle};

    fn failed(live: &Live) -> u64 {
        live.metrics()
            .candidate
            .evaluations
            .with_label_values(&["failed"])
            .get()
    }

    #[test]
    fn a_body_that_does_not_parse_again_is_counted_as_failed_not_evaluated(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let live = Live::new(crate::metrics::Metrics::new()?);
        let bundle = CompiledBundle::compile(&BundleFiles::embedded()?, CompileOptions::default())?;
        live.install_candidate(bundle, Vec::new());
        let options = DecideOptions::default();
        let job = |body: &'static [u8]| Job {
            webhook: Webhook::Validate,
            body: axum::body::Bytes::from_static(body),
            decision: decision::no_bundle("u-1", &options),
            options,
        };
        evaluate(&live, job(b"{\"apiVersion\": \"admission.k8s.io/v1\""));
        assert_eq!(failed(&live), 1);
        evaluate(&live, job(b"\xff\xfe"));
        assert_eq!(failed(&live), 2);
        Ok(())
    }
}
