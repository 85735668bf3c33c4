//! A second pair of hands for one webhook review at a time: when the caller
//! says the request is alone (no other admission request in progress: the
//! server counts them, from the start of each handler, the body still
//! being received, to its answer), half of the matching templates are
//! evaluated on a helper thread while the request's own thread evaluates the
//! other half. A lone request (the common case of admission traffic) so uses
//! both cores; under load, when requests overlap, every review stays on its
//! own thread and nothing is split (splitting would only add hand-over
//! cost). Background evaluations (shadow evaluation of a candidate bundle)
//! never split: their work must not reach the helper, which runs at normal
//! priority. The core keeps no count of requests: the load is the caller's
//! word ([`crate::compose::Load`]).
//!
//! The helper keeps its own prepared VMs (they are per thread), runs each
//! evaluation under the request's budget, and is started on first use, only
//! on machines with more than one core.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use regorus::Value;

use super::template::Template;
use crate::runtime::{Budget, RunError};

/// One template evaluation: the template and its input.
pub type Work = (Arc<Template>, Value);

/// What the helper gives back, in the order of the work.
pub type Results = Vec<Result<Vec<Value>, RunError>>;

struct Job {
    work: Vec<Work>,
    budget: Budget,
    reply: SyncSender<Results>,
}

struct Helper {
    jobs: Mutex<SyncSender<Job>>,
    busy: AtomicBool,
}

thread_local! {
    /// Reviews this thread split with the helper (for tests).
    static SPLITS_HERE: Cell<usize> = const { Cell::new(0) };
}

static HELPER: OnceLock<Option<Helper>> = OnceLock::new();

/// How many reviews this thread split with the helper so far.
#[cfg(test)]
pub fn splits_here() -> usize {
    SPLITS_HERE.with(Cell::get)
}

/// Fewer template evaluations than this are not worth a hand-over.
const MIN_SPLIT: usize = 4;

fn helper() -> Option<&'static Helper> {
    HELPER
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            if cores < 2 {
                return None;
            }
            let (tx, rx) = mpsc::sync_channel::<Job>(1);
            std::thread::Builder::new()
                .name("regent-review-helper".to_string())
                .spawn(move || serve(rx))
                .ok()?;
            Some(Helper {
                jobs: Mutex::new(tx),
                busy: AtomicBool::new(false),
            })
        })
        .as_ref()
}

fn serve(rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        let results = evaluate(&job.work, job.budget);
        let _ = job.reply.send(results);
    }
}

/// Evaluates each template of `work` for its input, in order.
pub fn evaluate(work: &[Work], budget: Budget) -> Results {
    work.iter()
        .map(|(template, input)| template.evaluate(input.clone(), budget))
        .collect()
}

/// Evaluates `work`, splitting it with the helper when the caller allows it
/// (`split`: the request is alone) and the helper is free; otherwise on this
/// thread.
pub fn evaluate_split(work: Vec<Work>, budget: Budget, split: bool) -> Results {
    if work.len() < MIN_SPLIT || !split {
        return evaluate(&work, budget);
    }
    let Some(helper) = helper() else {
        return evaluate(&work, budget);
    };
    if helper
        .busy
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return evaluate(&work, budget);
    }
    // The helper takes every other evaluation: heavy templates are spread.
    let mut mine = Vec::with_capacity(work.len() / 2 + 1);
    let mut theirs = Vec::with_capacity(work.len() / 2);
    for (i, w) in work.into_iter().enumerate() {
        if i % 2 == 0 {
            mine.push(w);
        } else {
            theirs.push(w);
        }
    }
    SPLITS_HERE.with(|n| n.set(n.get() + 1));
    let (reply, answer) = mpsc::sync_channel(1);
    let sent = helper.jobs.lock().map(|jobs| {
        jobs.send(Job {
            work: theirs.clone(),
            budget,
            reply,
        })
    });
    let own = evaluate(&mine, budget);
    let other = match sent {
        Ok(Ok(())) => answer.recv().unwrap_or_else(|_| evaluate(&theirs, budget)),
        _ => evaluate(&theirs, budget),
    };
    helper.busy.store(false, Ordering::Release);
    // Interleave back into the original order.
    let mut out = Vec::with_capacity(own.len() + other.len());
    let mut own = own.into_iter();
    let mut other = other.into_iter();
    loop {
        match (own.next(), other.next()) {
            (None, None) => break,
            (a, b) => {
                out.extend(a);
                out.extend(b);
            }
        }
    }
    out
}
