//! One sink's loop: waits for a full batch or the flush interval, has the
//! sink's own background thread take the batch from the queue and write it
//! (a file, standard output) or build its body (joined and gzipped, for
//! HTTP, which is then posted from here with retries), counts it, and
//! pauses after a failure; until the log closes and the queue is empty.
//!
//! The split keeps the runtime's threads, where requests are served, to
//! a wake-up and a hand-over per batch: taking the records, writing them,
//! compressing them and freeing them all happen at the background
//! thread's priority ([`super::worker`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::sinks::{self, FileSink, HttpSink};
use super::worker::Worker;
use super::{set_gauges, DecisionLog, SinkQueue, FIRST_PAUSE, MAX_PAUSE};

/// How a sink writes a batch.
pub(super) enum Writer {
    Stdout,
    File(Arc<Mutex<FileSink>>),
    Http(Box<HttpSink>),
}

/// A sink's writer and the background thread its blocking work runs on.
pub(super) struct Sink {
    pub(super) writer: Writer,
    pub(super) worker: Worker,
}

/// What the background thread does with a batch it took.
enum Target {
    Stdout,
    File(Arc<Mutex<FileSink>>),
    /// Builds an HTTP body, gzipped or not.
    Body {
        gzip: bool,
    },
}

impl Sink {
    /// Takes up to a batch of records from `q` and writes (or posts) them:
    /// how many, and whether they were delivered.
    async fn write(&mut self, q: &Arc<SinkQueue>) -> (usize, Result<(), String>) {
        let target = match &self.writer {
            Writer::Stdout => Target::Stdout,
            Writer::File(f) => Target::File(f.clone()),
            Writer::Http(h) => Target::Body { gzip: h.gzip() },
        };
        let queue = q.clone();
        let done = self
            .worker
            .run(move || {
                let mut batch = Vec::with_capacity(queue.batch.min(queue.queue.len()));
                while batch.len() < queue.batch {
                    match queue.queue.pop() {
                        Some((b, _)) => batch.push(b),
                        None => break,
                    }
                }
                let n = batch.len();
                let result = match target {
                    Target::Stdout => write_stdout(&batch).map(|()| None),
                    Target::File(f) => match f.lock() {
                        Ok(mut f) => f.write(&batch).map(|()| None).map_err(|e| e.to_string()),
                        Err(_) => Err("the file sink's lock is poisoned".to_string()),
                    },
                    Target::Body { gzip } => sinks::encode_body(&batch, gzip)
                        .map(|b| Some(Bytes::from(b)))
                        .map_err(|e| format!("encoding the batch: {e}")),
                };
                (n, result)
            })
            .await;
        let (n, body) = match done {
            Ok(done) => done,
            Err(e) => return (0, Err(e.to_string())),
        };
        match (body, &mut self.writer) {
            (Ok(Some(body)), Writer::Http(h)) => (n, h.send(body).await.map_err(|e| e.to_string())),
            (Ok(_), _) => (n, Ok(())),
            (Err(e), _) => (n, Err(e)),
        }
    }
}

fn write_stdout(batch: &[Bytes]) -> Result<(), String> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    for b in batch {
        out.write_all(b).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// The loop (see the module's doc).
pub(super) async fn drain(
    log: Arc<DecisionLog>,
    q: Arc<SinkQueue>,
    mut sink: Sink,
    flush_interval: Duration,
) {
    let m = log.metrics.decision_log.clone();
    let label = q.spec.label();
    let mut pause = FIRST_PAUSE;
    loop {
        if q.queue.is_empty()
            && log.closing.load(Ordering::Acquire)
            && log.encoded_all.load(Ordering::Acquire)
        {
            return;
        }
        if q.queue.len() < q.batch && !log.closing.load(Ordering::Acquire) {
            // A full batch wakes this sink (so does closing); fewer records
            // wait at most the flush interval.
            tokio::select! {
                _ = q.wake.notified() => {}
                _ = tokio::time::sleep(flush_interval) => {}
            }
            set_gauges(&m, label, &q.queue);
            if q.queue.is_empty() {
                continue;
            }
        }
        q.busy.store(true, Ordering::Release);
        let started = Instant::now();
        let (n, written) = sink.write(&q).await;
        m.batch_duration
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        set_gauges(&m, label, &q.queue);
        q.busy.store(false, Ordering::Release);
        match written {
            Ok(()) => {
                m.records
                    .with_label_values(&[label, "sent"])
                    .inc_by(n as u64);
                pause = FIRST_PAUSE;
            }
            Err(e) => {
                m.records
                    .with_label_values(&[label, "failed"])
                    .inc_by(n as u64);
                let wait = sinks::jitter(pause);
                tracing::warn!(sink = label, records = n, error = %e,
                    next_attempt_in = ?wait, "decision log batch not delivered");
                q.paused.store(true, Ordering::Release);
                sleep_unless_closing(&log, &q, wait, flush_interval).await;
                q.paused.store(false, Ordering::Release);
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }
}

/// Waits `d`, or less if the log closes (a receiver back by then still
/// gets what is queued); the queue's gauges are set every flush interval
/// meanwhile (nothing else looks at a pausing sink's queue).
async fn sleep_unless_closing(log: &DecisionLog, q: &SinkQueue, d: Duration, every: Duration) {
    let m = &log.metrics.decision_log;
    let until = tokio::time::Instant::now() + d;
    while !log.closing.load(Ordering::Acquire) && tokio::time::Instant::now() < until {
        let next = until.min(tokio::time::Instant::now() + every);
        tokio::select! {
            _ = q.wake.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
        set_gauges(m, q.spec.label(), &q.queue);
    }
}
