//! The decision log: every admission decision exported, bounded, never
//! slowing admission. A request writes its record after its response is
//! built (straight from the review and the decision into a reused buffer,
//! one copy out) and pushes it to each sink's lock-free queue, which drops
//! its oldest when full and never waits; each sink drains its own queue in
//! batches (standard output, a rotated file, HTTP with gzip and retries) on
//! its own background thread. A record that carries its object goes to an
//! encoder thread first, which converts and masks the object (the one
//! costly part) off the request path. A slow or dead sink loses its oldest
//! records, counted per sink, and resumes when it recovers; nothing it does
//! reaches a request. Shutdown flushes within the grace period.
//!
//! What a record holds is the core's ([`regent_core::decision_log`]).

mod drain;
mod queue;
pub mod sinks;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;

use drain::{drain, Sink, Writer};
pub use queue::Bounded;
use regent_core::compose::CompiledBundle;
use regent_core::decision_log::{append_object, notable, Record};
pub use sinks::SinkSpec;
use sinks::{FileSink, HttpOptions, HttpSink};
use worker::Worker;

use crate::metrics::Metrics;

/// Which plain admissions (no denial, warning, exception or mutation) are
/// logged; the others always are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// Every one.
    All,
    /// None.
    None,
    /// This share of them (0 to 1).
    Rate(f64),
}

/// `all`, `none`, or a rate such as `0.01`.
pub fn parse_sampling(s: &str) -> Result<Sampling, String> {
    match s {
        "all" => Ok(Sampling::All),
        "none" => Ok(Sampling::None),
        _ => match s.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(Sampling::Rate(r)),
            _ => Err(format!(
                "{s:?}: all, none, or a rate between 0 and 1 (0.01)"
            )),
        },
    }
}

/// A duration above zero (a zero flush interval would have each sink spin,
/// a zero timeout fail every batch).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match regent_core::units::parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "{s:?}: must be more than zero (examples: 1s, 500ms)"
        )),
        d => Ok(d),
    }
}

fn parse_pointer(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a JSON pointer into the object (/spec/containers/*/env/*/value)"
        ))
    }
}

/// The decision log's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DecisionLogArgs {
    /// Where decision records go: stdout, file:PATH, http://URL or
    /// https://URL (repeatable).
    #[arg(long = "decision-log", env = "REGENT_DECISION_LOG", value_delimiter = ',', value_parser = SinkSpec::parse)]
    pub sinks: Vec<SinkSpec>,
    /// Plain admissions logged (denied, warned, excepted and mutated
    /// decisions always are): all, none, or a rate (0.01).
    #[arg(long, env = "REGENT_DECISION_LOG_ALLOWED", default_value = "none", value_parser = parse_sampling)]
    pub decision_log_allowed: Sampling,
    /// Include the object under review, masked.
    #[arg(long, env = "REGENT_DECISION_LOG_INCLUDE_OBJECT")]
    pub decision_log_include_object: bool,
    /// A JSON pointer removed from logged objects (`*` for any key or
    /// index; repeatable), besides the bundle's `data.regent.log.mask`.
    #[arg(long = "decision-log-mask", env = "REGENT_DECISION_LOG_MASK", value_delimiter = ',', value_parser = parse_pointer)]
    pub decision_log_mask: Vec<String>,
    /// Records held per queue (each sink has one, and one holds records
    /// not yet encoded); the oldest go when it is full.
    #[arg(long, env = "REGENT_DECISION_LOG_BUFFER", default_value_t = 8192)]
    pub decision_log_buffer: usize,
    /// Bytes held per queue.
    #[arg(long, env = "REGENT_DECISION_LOG_BUFFER_BYTES", default_value = "8Mi", value_parser = regent_core::units::parse_bytes)]
    pub decision_log_buffer_bytes: u64,
    /// A file sink's size before it is rotated.
    #[arg(long, env = "REGENT_DECISION_LOG_MAX_FILE_SIZE", default_value = "100Mi", value_parser = regent_core::units::parse_bytes)]
    pub decision_log_max_file_size: u64,
    /// Files a file sink keeps, the current one included.
    #[arg(long, env = "REGENT_DECISION_LOG_MAX_FILES", default_value_t = 5)]
    pub decision_log_max_files: usize,
    /// Most records per batch.
    #[arg(long, env = "REGENT_DECISION_LOG_BATCH", default_value_t = 500)]
    pub decision_log_batch: usize,
    /// An HTTP batch waits at most this long to fill.
    #[arg(long, env = "REGENT_DECISION_LOG_FLUSH_INTERVAL", default_value = "1s", value_parser = parse_positive_duration)]
    pub decision_log_flush_interval: Duration,
    /// Each HTTP request's time limit.
    #[arg(long, env = "REGENT_DECISION_LOG_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub decision_log_timeout: Duration,
    /// Attempts per HTTP batch before it is given up (and counted failed).
    #[arg(long, env = "REGENT_DECISION_LOG_ATTEMPTS", default_value_t = 5)]
    pub decision_log_attempts: u32,
    /// A CA to trust for https sinks instead of the system roots.
    #[arg(long, env = "REGENT_DECISION_LOG_CA")]
    pub decision_log_ca: Option<PathBuf>,
    /// A file with a bearer token for HTTP sinks (re-read when it changes).
    #[arg(long, env = "REGENT_DECISION_LOG_TOKEN_FILE")]
    pub decision_log_token_file: Option<PathBuf>,
    /// Gzip HTTP bodies.
    #[arg(long, env = "REGENT_DECISION_LOG_GZIP", default_value_t = true, action = clap::ArgAction::Set)]
    pub decision_log_gzip: bool,
}

/// Most records the encoder handles before it sets the pending queue's
/// gauges.
const ENCODE_RUN: usize = 256;

/// How often the encoder looks for records by itself: a record waits at
/// most this long to be encoded unless [`WAKE_AT`] are waiting. Waking a
/// thread per request costs more than encoding the record, and each burst
/// of background work shares a core with requests: fewer, longer bursts
/// (a sink's flush interval is a second anyway).
const ENCODER_TICK: Duration = Duration::from_millis(100);

/// Records pending that wake the encoder before its tick.
const WAKE_AT: usize = 512;

/// The encoder is working: requests leave it alone.
const BUSY: u8 = 0;
/// The encoder waits for its tick: a request wakes it only when
/// [`WAKE_AT`] records wait.
const TICKING: u8 = 1;
/// A tick found nothing: the encoder sleeps until a request hands over a
/// record (an idle server wakes nothing, ever).
const ASLEEP: u8 = 2;

/// The first pause of a sink after a batch it could not deliver; doubled
/// for each further failed batch in a row, up to [`MAX_PAUSE`]. Records
/// that arrive meanwhile wait in the sink's queue (the oldest dropped, and
/// counted, when it is full): a receiver that is down costs one attempt per
/// pause, not one per batch (each a gzip of up to half a megabyte and a
/// warning).
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// The longest pause: how long a receiver that came back may wait for its
/// first batch.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// One sink: its queue of encoded records and what wakes it.
struct SinkQueue {
    spec: SinkSpec,
    queue: Bounded<Bytes>,
    /// Records per batch: a push that fills one wakes the sink
    /// (otherwise the sink looks every flush interval).
    batch: usize,
    wake: tokio::sync::Notify,
    /// The sink is taking and writing a batch (it looks at the queue
    /// again when done: nobody needs to wake it).
    busy: AtomicBool,
    /// The sink waits out a pause after a failed batch: records are queued
    /// without waking it (its queue stays full; only closing wakes it
    /// early).
    paused: AtomicBool,
    /// Records queued and dropped (resolved once: a request that queues
    /// one does no label lookup).
    queued: prometheus::IntCounter,
    dropped: prometheus::IntCounter,
}

impl SinkQueue {
    /// Queues an encoded record (dropping the oldest when full, counted)
    /// and wakes the sink when a batch is waiting and it is neither writing
    /// (it looks again when done) nor pausing after a failure: the
    /// runtime's threads, where requests are served, wake once per batch,
    /// and not at all for a sink whose receiver is down.
    fn push(&self, line: Bytes) {
        let size = line.len();
        let dropped = self.queue.push(line, size);
        self.queued.inc();
        if dropped > 0 {
            self.dropped.inc_by(dropped);
        }
        if self.queue.len() >= self.batch
            && !self.busy.load(Ordering::Acquire)
            && !self.paused.load(Ordering::Acquire)
        {
            self.wake.notify_one();
        }
    }
}

/// A record that carries its object, handed over by a request: the record
/// written without it, the object and the review (shared handles), and the
/// bundle that decided it (for its mask rule).
struct Handed {
    line: Vec<u8>,
    object: regorus::Value,
    input: regorus::Value,
    bundle: Option<Arc<CompiledBundle>>,
}

/// The decision log of a running server.
pub struct DecisionLog {
    sampling: Sampling,
    include_object: bool,
    masks: Vec<String>,
    /// Records that carry their object, waiting for the encoder.
    pending: Bounded<Handed>,
    /// The encoder, when records carry their object.
    encoder: Option<std::thread::Thread>,
    /// [`BUSY`], [`TICKING`] or [`ASLEEP`]: set by the encoder before it
    /// parks, so that a request unparks it only when it should.
    encoder_state: AtomicU8,
    /// [`WAKE_AT`], or half the buffer when that is smaller.
    wake_at: usize,
    sinks: Vec<Arc<SinkQueue>>,
    closing: AtomicBool,
    /// The encoder has finished (or there is none) after the log closed.
    encoded_all: AtomicBool,
    /// Records dropped from the pending queue (resolved once: a request
    /// that drops one does no label lookup).
    pending_dropped: prometheus::IntCounter,
    metrics: Metrics,
}

impl std::fmt::Debug for DecisionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionLog")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.spec).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Errors starting the decision log.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A sink cannot be built.
    #[error("decision log sink {sink}: {source}")]
    Sink {
        /// The sink.
        sink: String,
        /// Why.
        source: sinks::SinkError,
    },
    /// The encoder thread, or a sink's thread, could not start.
    #[error("starting the decision log's threads: {0}")]
    Thread(std::io::Error),
}

impl DecisionLog {
    /// Starts the sinks and the encoder, or `None` without a sink.
    pub fn start(
        args: &DecisionLogArgs,
        metrics: Metrics,
    ) -> Result<Option<Arc<Self>>, StartError> {
        if args.sinks.is_empty() {
            return Ok(None);
        }
        let max_bytes = args.decision_log_buffer_bytes as usize;
        let mut writers = Vec::new();
        let mut sinks = Vec::new();
        for spec in &args.sinks {
            let q = Arc::new(SinkQueue {
                spec: spec.clone(),
                queue: Bounded::new(args.decision_log_buffer, max_bytes),
                batch: args.decision_log_batch.max(1),
                wake: tokio::sync::Notify::new(),
                busy: AtomicBool::new(false),
                paused: AtomicBool::new(false),
                queued: metrics
                    .decision_log
                    .records
                    .with_label_values(&[spec.label(), "queued"]),
                dropped: metrics
                    .decision_log
                    .records
                    .with_label_values(&[spec.label(), "dropped"]),
            });
            let writer = match spec {
                SinkSpec::Stdout => Writer::Stdout,
                SinkSpec::File(path) => {
                    Writer::File(Arc::new(std::sync::Mutex::new(FileSink::new(
                        path.clone(),
                        args.decision_log_max_file_size,
                        args.decision_log_max_files,
                    ))))
                }
                SinkSpec::Http(url) => Writer::Http(Box::new(
                    HttpSink::new(
                        url,
                        HttpOptions {
                            timeout: args.decision_log_timeout,
                            attempts: args.decision_log_attempts,
                            backoff: Duration::from_millis(200),
                            ca: args.decision_log_ca.clone(),
                            token_file: args.decision_log_token_file.clone(),
                            gzip: args.decision_log_gzip,
                        },
                    )
                    .map_err(|source| StartError::Sink {
                        sink: url.clone(),
                        source,
                    })?,
                )),
            };
            let worker = Worker::start(spec.label()).map_err(StartError::Thread)?;
            writers.push((q.clone(), writer, worker));
            sinks.push(q);
        }
        let include_object = args.decision_log_include_object;
        let (tx, rx) = std::sync::mpsc::channel::<Arc<DecisionLog>>();
        let encoder = if include_object {
            let thread = std::thread::Builder::new()
                .name("decision-log".into())
                .spawn(move || {
                    // Background work: never ahead of an admission request
                    // for a core (as the shadow evaluation; a failure costs
                    // latency, not records).
                    for e in crate::rollout::background::lower_this_thread() {
                        tracing::warn!(error = %e, "decision log encoder at normal priority");
                    }
                    if let Ok(log) = rx.recv() {
                        log.encode_loop();
                    }
                })
                .map_err(StartError::Thread)?;
            Some(thread.thread().clone())
        } else {
            None
        };
        let log = Arc::new(Self {
            sampling: args.decision_log_allowed,
            include_object,
            masks: args.decision_log_mask.clone(),
            pending: if include_object {
                Bounded::new(args.decision_log_buffer, max_bytes)
            } else {
                Bounded::new(1, 1)
            },
            encoder,
            encoder_state: AtomicU8::new(BUSY),
            wake_at: (args.decision_log_buffer / 2).clamp(1, WAKE_AT),
            sinks,
            closing: AtomicBool::new(false),
            encoded_all: AtomicBool::new(!include_object),
            pending_dropped: metrics
                .decision_log
                .records
                .with_label_values(&["pending", "dropped"]),
            metrics,
        });
        let _ = tx.send(log.clone());
        for (q, writer, worker) in writers {
            tokio::spawn(drain(
                log.clone(),
                q,
                Sink { writer, worker },
                args.decision_log_flush_interval,
            ));
        }
        tracing::info!(sinks = ?args.sinks, allowed = ?args.decision_log_allowed,
            include_object, "decision log on");
        Ok(Some(log))
    }

    /// Whether plain admissions are ever logged.
    fn wants(&self, notable: bool) -> bool {
        notable
            || match self.sampling {
                Sampling::All => true,
                Sampling::None => false,
                Sampling::Rate(r) => random_unit() < r,
            }
    }

    /// Hands over a decided request's record: never waits. A plain
    /// admission that is not sampled costs nothing more; the others are
    /// written straight to JSON (a reused buffer per thread, one copy
    /// out) and queued for each sink, or, when records carry their object,
    /// for the encoder. `body_len` sizes such a record.
    pub fn record(
        &self,
        review: &regent_core::review::Review,
        decision: &regent_core::compose::decision::Decision,
        ctx: &regent_core::decision_log::Context<'_>,
        body_len: usize,
        bundle: Option<Arc<CompiledBundle>>,
    ) {
        if !self.wants(notable(decision, ctx.webhook)) {
            return;
        }
        let record = Record::of(review, decision, ctx);
        if self.include_object {
            let mut line = Vec::with_capacity(1024);
            record.write(&mut line);
            let size = line.len() + body_len;
            let request = &review.input["request"];
            self.hand_over(
                Handed {
                    line,
                    object: request["object"].clone(),
                    input: review.input.clone(),
                    bundle,
                },
                size,
            );
            return;
        }
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> =
                std::cell::RefCell::new(Vec::with_capacity(4096));
        }
        let write = |buf: &mut Vec<u8>| {
            buf.clear();
            record.write(buf);
            buf.push(b'\n');
            Bytes::copy_from_slice(buf)
        };
        let line = SCRATCH
            .try_with(|scratch| {
                let mut buf = scratch.try_borrow_mut().ok()?;
                let line = write(&mut buf);
                if buf.capacity() > 1 << 20 {
                    // One huge record is not kept around.
                    *buf = Vec::with_capacity(4096);
                }
                Some(line)
            })
            .ok()
            .flatten()
            // Only while the thread ends, or if it were ever re-entered.
            .unwrap_or_else(|| write(&mut Vec::new()));
        self.fan_out(line);
    }

    /// Queues an encoded record for every sink.
    fn fan_out(&self, line: Bytes) {
        for s in &self.sinks {
            s.push(line.clone());
        }
    }

    /// Queues a record that carries its object for the encoder, and wakes
    /// it when it should.
    fn hand_over(&self, handed: Handed, size: usize) {
        let Some(encoder) = &self.encoder else {
            return;
        };
        let dropped = self.pending.push(handed, size);
        if dropped > 0 {
            self.pending_dropped.inc_by(dropped);
        }
        // A ticking encoder wakes on its own every ENCODER_TICK (a request
        // wakes it early only when a run has piled up); a sleeping one
        // waits for this record. The fence orders the push above before the
        // state's load, against the encoder's store of its state before it
        // looks at the queue: one of the two sees the other.
        std::sync::atomic::fence(Ordering::SeqCst);
        let wake = match self.encoder_state.load(Ordering::SeqCst) {
            ASLEEP => true,
            TICKING => self.pending.len() >= self.wake_at,
            _ => false,
        };
        if wake && self.encoder_state.swap(BUSY, Ordering::SeqCst) != BUSY {
            encoder.unpark();
        }
    }

    /// The encoder thread: adds each waiting record's object, masked, and
    /// queues the record for every sink; sets the pending queue's gauges
    /// once per run of records (when the queue empties, or every
    /// [`ENCODE_RUN`] records). With nothing to do it waits a tick for
    /// records to gather, and after a tick that brought none it sleeps
    /// until a request hands one over.
    fn encode_loop(&self) {
        let m = &self.metrics.decision_log;
        let mut run = 0usize;
        let mut quiet_tick = false;
        loop {
            let Some((handed, _)) = self.pending.pop() else {
                if run > 0 {
                    set_gauges(m, "pending", &self.pending);
                    run = 0;
                }
                if self.closing.load(Ordering::Acquire) {
                    self.encoded_all.store(true, Ordering::Release);
                    for s in &self.sinks {
                        s.wake.notify_one();
                    }
                    return;
                }
                // The state is set before the queue is looked at: a request
                // that pushes in between sees it and unparks (an unpark
                // before the park makes the park return at once).
                if quiet_tick {
                    self.encoder_state.store(ASLEEP, Ordering::SeqCst);
                    std::sync::atomic::fence(Ordering::SeqCst);
                    if self.pending.is_empty() && !self.closing.load(Ordering::Acquire) {
                        std::thread::park();
                    }
                    quiet_tick = false;
                } else {
                    self.encoder_state.store(TICKING, Ordering::SeqCst);
                    if self.pending.len() < self.wake_at {
                        std::thread::park_timeout(ENCODER_TICK);
                    }
                    quiet_tick = true;
                }
                self.encoder_state.store(BUSY, Ordering::SeqCst);
                continue;
            };
            quiet_tick = false;
            let Handed {
                mut line,
                object,
                input,
                bundle,
            } = handed;
            let mut extended = Vec::new();
            let mut with_object = true;
            if let Some(bundle) = &bundle {
                match bundle.log_mask(&input, regent_core::runtime::Limits::default()) {
                    Ok(more) if !more.is_empty() => {
                        extended = self.masks.clone();
                        extended.extend(more);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // Unmasked would leak: leave the object out.
                        tracing::warn!(error = %e, "data.regent.log.mask failed; the record goes without its object");
                        with_object = false;
                    }
                }
            }
            let masks = if extended.is_empty() {
                &self.masks
            } else {
                &extended
            };
            if with_object {
                if let Err(e) = append_object(&mut line, &object, masks) {
                    tracing::warn!(error = %e, "adding the object to a decision record failed; the record goes without it");
                }
            }
            line.push(b'\n');
            self.fan_out(Bytes::from(line));
            run += 1;
            if run >= ENCODE_RUN {
                set_gauges(m, "pending", &self.pending);
                run = 0;
            }
        }
    }

    /// Stops taking records and writes what is queued, for at most
    /// `grace`; says how many were left unwritten.
    pub async fn close(&self, grace: Duration) {
        self.closing.store(true, Ordering::Release);
        if let Some(encoder) = &self.encoder {
            encoder.unpark();
        }
        let deadline = Instant::now() + grace;
        loop {
            let idle = self.encoded_all.load(Ordering::Acquire)
                && self
                    .sinks
                    .iter()
                    .all(|s| s.queue.is_empty() && !s.busy.load(Ordering::Acquire));
            if idle {
                tracing::info!("decision log flushed");
                return;
            }
            if Instant::now() >= deadline {
                let left: usize =
                    self.pending.len() + self.sinks.iter().map(|s| s.queue.len()).sum::<usize>();
                tracing::warn!(
                    records = left,
                    "decision log not flushed within the shutdown grace period; these records are lost"
                );
                return;
            }
            for s in &self.sinks {
                s.wake.notify_one();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sets a queue's record and byte gauges.
fn set_gauges<T>(m: &crate::metrics::DecisionLogMetrics, label: &str, queue: &Bounded<T>) {
    m.queue_records
        .with_label_values(&[label])
        .set(queue.len() as i64);
    m.queue_bytes
        .with_label_values(&[label])
        .set(queue.bytes() as i64);
}

/// A uniform number in [0, 1) from a per-thread xorshift, seeded from the
/// process's random hasher keys.
fn random_unit() -> f64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sampling_parses_and_samples_about_its_rate() {
        assert_eq!(parse_sampling("all").unwrap(), Sampling::All);
        assert_eq!(parse_sampling("0.25").unwrap(), Sampling::Rate(0.25));
        assert!(parse_sampling("2").is_err());
        let hits = (0..100_000).filter(|_| random_unit() < 0.25).count();
        assert!((23_000..27_000).contains(&hits), "{hits}");
        assert!(parse_pointer("spec").is_err());
    }

    #[test]
    fn flush_intervals_and_timeouts_are_above_zero() {
        assert_eq!(
            parse_positive_duration("500ms").unwrap(),
            Duration::from_millis(500)
        );
        let e = parse_positive_duration("0s").unwrap_err();
        assert!(e.contains("more than zero"), "{e}");
        assert!(parse_positive_duration("0").is_err());
        assert!(parse_positive_duration("soon").is_err());
    }
}
