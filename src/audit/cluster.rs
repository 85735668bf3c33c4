//! `regent audit --cluster`: the audit process. A Deployment of its own, so
//! audit load never competes with admission for CPU.
//!
//! It takes its bundle from the same sources as `regent serve` (hot reload,
//! last known good, `--inventory`). One replica writes: the holder of a
//! `coordination.k8s.io/v1` Lease (kube-lease-manager); the others stand by
//! and take over when the Lease expires. The holder:
//! - finds out which report resources the cluster serves, and reads the
//!   reports already written (their content hashes) so a restart rewrites
//!   nothing that has not changed;
//! - watches, with paginated lists and kube-runtime watchers, only the kinds
//!   the bundle's policies and Constraints can match ([`super::kinds`]); a
//!   kind that cannot be listed is reported and the rest are audited;
//! - evaluates each object with [`CompiledBundle::audit`] on every watch
//!   event, on as many threads as the machine has cores, and again for every
//!   object when the bundle revision changes and every `--audit-interval`;
//! - keeps a small record per object ([`super::store`]), never the object;
//! - writes a report only when its content changed, at most `--report-qps`
//!   writes a second; the backlog is a metric.
//!
//! `/readyz` turns true on the holder after its first full scan, on a
//! standby once its bundle is live; `/status` says what it audits.
//!
//! With a candidate bundle installed, every object is judged by the
//! candidate too ([`crate::rollout::candidate_audit`]): a new or changed difference is
//! logged with the object's kind, namespace and name, and after each full
//! scan (then at most once a minute while it changes) the sum goes to the
//! candidate's ConfigMaps (an Event and an annotation) and to
//! `regent_audit_candidate_objects`. A new candidate revision starts a full
//! scan.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::{json, Value as Json};
use tokio::sync::Semaphore;

use super::args::ClusterArgs;
use super::kinds::{self, AuditKind};
use super::report::{self, ReportOptions, Subject};
use super::sink::{Judged, ReportSink, StoreSink};
use super::store::Store;
use super::writer::Writer;
use crate::metrics::Metrics;
use crate::reload::configmaps::{self, StatusReporter};
use crate::rollout::candidate_audit::Tracker;
use crate::serve::state::Live;
use regent_core::compose::CompiledBundle;
use regent_core::diff::{self, Side};
use regent_core::runtime::Limits;

/// What `/status` shows.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    leader: bool,
    revision: Option<String>,
    report_format: String,
    writes_enabled: bool,
    why_not_writing: Option<String>,
    kinds: Vec<String>,
    unavailable: Vec<(String, String)>,
    scans: u64,
    last_scan_seconds: Option<f64>,
    objects: usize,
    backlog: usize,
}

/// Everything the audit tasks share.
struct Ctx {
    client: Client,
    live: Arc<Live>,
    metrics: Metrics,
    limits: Limits,
    reports: ReportOptions,
    args: ClusterArgs,
    workers: usize,
    writer: Arc<Writer>,
    status: Mutex<Status>,
    /// What the candidate bundle judges differently, per object.
    candidate: Mutex<Tracker>,
    /// Writes the candidate's impact to its ConfigMaps.
    reporter: Arc<StatusReporter>,
}

/// Runs the audit process until SIGTERM or SIGINT.
pub async fn run(
    args: ClusterArgs,
    policies: Vec<PathBuf>,
    limits: Limits,
    reports: ReportOptions,
) -> anyhow::Result<u8> {
    let metrics = Metrics::new().context("registering metrics")?;
    let live = Live::new(metrics.clone());
    live.set_gate(Some(
        "the first full audit scan has not finished".to_string(),
    ));
    let admin = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding {}", args.admin_addr))?;
    tracing::info!(admin = %admin.local_addr()?, "audit listening");
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster config)")?;
    let pod = args
        .sources
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "regent-audit".to_string());
    let workers = args
        .workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        live: live.clone(),
        metrics: metrics.clone(),
        limits,
        reports,
        args: args.clone(),
        workers,
        writer: Writer::new(
            client.clone(),
            reports,
            Store::new(metrics.audit.clone()),
            metrics.audit.clone(),
            args.report_qps,
        ),
        status: Mutex::new(Status {
            report_format: reports.format.api_version(),
            ..Status::default()
        }),
        candidate: Mutex::new(Tracker::default()),
        reporter: StatusReporter::new(client.clone(), pod, metrics.clone()),
    });
    let status_ctx = ctx.clone();
    let router = crate::serve::admin::router(live.clone()).route(
        "/status",
        axum::routing::get(move || {
            let ctx = status_ctx.clone();
            async move {
                let body = serde_json::to_string_pretty(&ctx.snapshot()).unwrap_or_default();
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin, router).await {
            tracing::error!(error = %e, "admin server failed");
        }
    });
    crate::exceptions::start(
        live.exceptions(),
        &args.exceptions,
        args.sources.namespace.as_deref(),
        false,
    )
    .await?;
    crate::reload::sources::start(&live, policies, &args.sources, limits).await?;

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;

    if !args.leader_election {
        let task = tokio::spawn(lead(ctx.clone()));
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        task.abort();
        return Ok(0);
    }
    let namespace = configmaps::resolve_namespace(args.sources.namespace.as_deref())
        .context("no namespace for the audit Lease: pass --namespace or set POD_NAMESPACE")?;
    let identity = args
        .sources
        .pod_name
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "regent-audit".to_string());
    let seconds = args.lease_duration.as_secs().max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(seconds)
        .with_grace((seconds / 3).max(1))
        .build()
        .await
        .context("setting up the audit Lease")?;
    let (mut leading, lease_task) = manager.watch().await;
    tracing::info!(lease = %args.lease_name, %namespace, %identity, "waiting for the audit Lease");
    let mut task: Option<tokio::task::JoinHandle<()>> = None;
    let mut standby_ready = tokio::time::interval(Duration::from_secs(1));
    let started = Instant::now();
    loop {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    tracing::error!("the Lease watch ended; stepping down");
                    if let Some(t) = task.take() { t.abort(); }
                    break;
                }
                let now_leading = *leading.borrow_and_update();
                ctx.metrics.audit.leader.set(i64::from(now_leading));
                ctx.status.lock().unwrap_or_else(|e| e.into_inner()).leader = now_leading;
                if now_leading && task.is_none() {
                    tracing::info!(%identity, "holding the audit Lease: auditing");
                    live.set_gate(Some("the first full audit scan has not finished".to_string()));
                    task = Some(tokio::spawn(lead(ctx.clone())));
                } else if !now_leading {
                    if let Some(t) = task.take() {
                        tracing::warn!(%identity, "lost the audit Lease: standing by");
                        t.abort();
                    }
                }
            }
            _ = standby_ready.tick(), if task.is_none() => {
                // A standby is ready once its bundle is live and someone else
                // has held the Lease for a whole Lease duration: it can take
                // over.
                if started.elapsed() > args.lease_duration {
                    live.set_gate(None);
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if let Some(t) = task.take() {
        t.abort();
    }
    // Dropping the receiver makes the Lease manager release the Lease, so
    // a standby takes over at once rather than after it expires.
    drop(leading);
    let _ = tokio::time::timeout(Duration::from_secs(5), lease_task).await;
    Ok(0)
}

impl Ctx {
    fn snapshot(&self) -> Status {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let store = self.store();
        s.objects = store.len();
        s.backlog = store.backlog();
        s.writes_enabled = self.writer.enabled();
        s
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.writer.store()
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.candidate.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How often a changing candidate summary is published between scans.
const CANDIDATE_REFRESH: Duration = Duration::from_secs(60);

/// Publishes what the candidate would judge differently: metrics, a log
/// line, an Event and annotation on its ConfigMaps. `always`: after a full
/// scan; otherwise only when something changed since the last time.
async fn publish_candidate(ctx: &Ctx, always: bool) {
    let gauges = &ctx.metrics.candidate.audit_objects;
    let Some(candidate) = ctx.live.candidate() else {
        gauges.reset();
        return;
    };
    let summary = {
        let mut t = ctx.tracker();
        if t.revision() != Some(candidate.bundle.revision()) {
            // Not one object evaluated under this revision yet.
            return;
        }
        if !t.take_dirty() && !always {
            return;
        }
        t.summary()
    };
    gauges.reset();
    for (change, c) in &summary.changes {
        for (policy, n) in &c.policies {
            gauges
                .with_label_values(&[policy.as_str(), change.as_str()])
                .set(*n as i64);
        }
    }
    let text = summary.text();
    tracing::info!(candidate = %summary.revision, objects = summary.objects, "{text}");
    if candidate.configmaps.is_empty() {
        return;
    }
    let annotation = json!({
        "revision": summary.revision,
        "objects": summary.objects,
        "changes": summary.changes,
        "summary": text,
        "time": k8s_openapi::jiff::Timestamp::now().to_string(),
    });
    ctx.reporter
        .candidate_impact(
            &candidate.configmaps,
            &text,
            summary.stricter(),
            &annotation,
        )
        .await;
}

/// The work of the Lease holder: scan, watch, write; scan again when the
/// bundle changes or the interval passes.
async fn lead(ctx: Arc<Ctx>) {
    let writer = tokio::spawn(ctx.writer.clone().run());
    let refresher = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CANDIDATE_REFRESH);
            tick.tick().await;
            loop {
                tick.tick().await;
                publish_candidate(&ctx, false).await;
            }
        })
    };
    let mut revisions = ctx.live.subscribe();
    let mut candidates = ctx.live.subscribe_candidate();
    let mut exceptions = ctx.live.exceptions().subscribe();
    let mut first = true;
    loop {
        let bundle = loop {
            if let Some(b) = ctx.live.bundle() {
                break b;
            }
            if revisions.changed().await.is_err() {
                return;
            }
        };
        revisions.borrow_and_update();
        // A bundle swap also revalidates the exceptions: one scan for both.
        exceptions.borrow_and_update();
        let discovery = loop {
            match kube::discovery::Discovery::new(ctx.client.clone())
                .run()
                .await
            {
                Ok(d) => break d,
                Err(e) => {
                    tracing::warn!(error = %e, "API discovery failed; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        };
        check_report_format(&ctx, &discovery, first).await;
        first = false;
        // The kinds either bundle can match: a candidate may reach kinds the
        // live bundle does not.
        let mut wanted = kinds::wanted(&bundle);
        if let Some(c) = ctx.live.candidate() {
            wanted.extend(kinds::wanted(&c.bundle));
        }
        let (audited, missing) = kinds::resolve(&wanted, &discovery);
        ctx.metrics.audit.unavailable.reset();
        for (kind, reason) in &missing {
            tracing::warn!(%kind, %reason, "a kind the policies match cannot be audited");
            ctx.metrics
                .audit
                .unavailable
                .with_label_values(&[kind.as_str(), reason.as_str()])
                .set(1);
        }
        {
            let mut s = ctx.status();
            s.revision = Some(bundle.revision().to_string());
            s.kinds = audited.iter().map(AuditKind::label).collect();
            s.unavailable = missing.clone();
        }
        tracing::info!(revision = bundle.revision(), kinds = ?audited.iter().map(AuditKind::label).collect::<Vec<_>>(), "audit scan starting");
        let mut scan = Scan::start(ctx.clone(), bundle.clone(), audited);
        let interval = ctx.args.audit_interval;
        // The interval runs from the end of a full scan: a scan slower than
        // the interval is never cut short by the next one.
        let again = async {
            scan.finished().await;
            publish_candidate(&ctx, true).await;
            if scan.all_failed() {
                // Nothing could be listed: try again soon, not in an hour.
                tokio::time::sleep(Duration::from_secs(30)).await
            } else if interval.is_zero() {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(interval).await
            }
        };
        tokio::select! {
            changed = revisions.changed() => {
                if changed.is_err() { break; }
                tracing::info!("bundle changed: auditing every object again");
            }
            changed = candidates.changed() => {
                if changed.is_err() { break; }
                let revision = candidates.borrow_and_update().clone();
                if revision.is_none() {
                    ctx.tracker().reset(None);
                    ctx.metrics.candidate.audit_objects.reset();
                    tracing::info!("candidate bundle gone: auditing every object again without it");
                } else {
                    tracing::info!(candidate = ?revision, "candidate bundle changed: auditing every object again");
                }
            }
            changed = exceptions.changed() => {
                if changed.is_err() { break; }
                exceptions.borrow_and_update();
                tracing::info!("policy exceptions changed (or one ended): auditing every object again");
            }
            _ = again => tracing::info!("auditing every object again"),
        }
        scan.stop();
    }
    writer.abort();
    refresher.abort();
}

/// Whether the cluster serves the chosen report resources; writing is off
/// (and said clearly) when it does not. At the first check, the reports
/// already written are read, so nothing unchanged is written again.
async fn check_report_format(ctx: &Ctx, discovery: &kube::discovery::Discovery, first: bool) {
    let format = ctx.reports.format;
    let served = discovery.groups().any(|g| {
        g.name() == format.group()
            && g.versions().any(|v| v == format.version())
            && g.recommended_resources()
                .iter()
                .any(|(r, _)| r.plural == format.plural(true))
    });
    let was = ctx.writer.set_enabled(served);
    if !served {
        let why = format!(
            "the cluster does not serve {} {}: install its CRDs (chart value audit.installCRDs) or choose the other --report-format; auditing without writing reports",
            format.api_version(),
            format.kind(true)
        );
        if was || first {
            tracing::error!("{why}");
        }
        ctx.status().why_not_writing = Some(why);
        ctx.store().clear_queue();
        return;
    }
    ctx.status().why_not_writing = None;
    if !was {
        let found = ctx.writer.read_existing().await;
        tracing::info!(reports = found, format = %format.api_version(), "existing reports read");
    }
}

/// One full scan: a watcher per kind, evaluation on `workers` threads.
struct Scan {
    tasks: tokio::task::JoinSet<()>,
    state: Arc<ScanState>,
}

/// What the tasks of one scan share.
struct ScanState {
    ctx: Arc<Ctx>,
    bundle: Arc<CompiledBundle>,
    generation: u32,
    started: Instant,
    started_unix: f64,
    /// Kinds whose initial list has not finished (or failed).
    listing: AtomicUsize,
    /// Evaluation batches in flight.
    in_flight: AtomicUsize,
    /// Kinds that failed their initial list.
    failed: AtomicUsize,
    kinds: usize,
    done: AtomicBool,
    slots: Arc<Semaphore>,
    /// Notified once, when the scan is complete.
    finished: tokio::sync::Notify,
}

impl Scan {
    fn start(ctx: Arc<Ctx>, bundle: Arc<CompiledBundle>, kinds: Vec<AuditKind>) -> Self {
        let generation = ctx.store().begin_scan();
        let state = Arc::new(ScanState {
            slots: Arc::new(Semaphore::new(ctx.workers)),
            ctx: ctx.clone(),
            bundle,
            generation,
            started: Instant::now(),
            started_unix: unix_now(),
            listing: AtomicUsize::new(kinds.len()),
            in_flight: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            kinds: kinds.len(),
            done: AtomicBool::new(false),
            finished: tokio::sync::Notify::new(),
        });
        ctx.metrics.audit.scan_start.set(state.started_unix);
        let mut tasks = tokio::task::JoinSet::new();
        if kinds.is_empty() {
            state.finish_if_done();
        }
        for kind in kinds {
            tasks.spawn(watch_kind(state.clone(), kind));
        }
        Self { tasks, state }
    }

    /// Waits for the scan to be complete.
    async fn finished(&self) {
        if !self.state.done.load(Ordering::Acquire) {
            self.state.finished.notified().await;
        }
    }

    /// Whether every kind failed its list.
    fn all_failed(&self) -> bool {
        self.state.kinds > 0 && self.state.failed.load(Ordering::Acquire) == self.state.kinds
    }

    fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

impl ScanState {
    /// Marks the scan complete once every kind is listed and every batch
    /// evaluated.
    fn finish_if_done(&self) {
        if self.listing.load(Ordering::Acquire) != 0 || self.in_flight.load(Ordering::Acquire) != 0
        {
            return;
        }
        if self.done.swap(true, Ordering::AcqRel) {
            return;
        }
        let forgotten = self.ctx.store().end_scan(self.generation);
        let took = self.started.elapsed().as_secs_f64();
        let m = &self.ctx.metrics.audit;
        m.scan_end.set(unix_now());
        m.scan_duration.set(took);
        m.scans.inc();
        let objects = self.ctx.store().len();
        {
            let mut s = self.ctx.status();
            s.scans += 1;
            s.last_scan_seconds = Some(took);
        }
        self.ctx.live.set_gate(None);
        tracing::info!(
            objects,
            forgotten,
            seconds = took,
            backlog = self.ctx.store().backlog(),
            "full audit scan done"
        );
        // notify_one keeps a permit when nobody waits yet.
        self.finished.notify_one();
    }

    /// A kind's initial list ended (listed, or failed).
    fn listed(&self) {
        self.listing.fetch_sub(1, Ordering::AcqRel);
        self.finish_if_done();
    }
}

/// One kind: list (paginated) and watch; every object to an evaluation batch.
async fn watch_kind(state: Arc<ScanState>, kind: AuditKind) {
    let ctx = state.ctx.clone();
    let label = kind.label();
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &kind.resource);
    let stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .ready_chunks(64);
    futures::pin_mut!(stream);
    let mut listed = false;
    let mut reported_error = false;
    while let Some(chunk) = stream.next().await {
        let mut batch = Vec::with_capacity(chunk.len());
        let mut list_done = false;
        for event in chunk {
            match event {
                Ok(Event::Init) => {}
                Ok(Event::InitApply(o)) | Ok(Event::Apply(o)) => batch.push((o, false)),
                Ok(Event::Delete(o)) => batch.push((o, true)),
                Ok(Event::InitDone) => list_done = true,
                Err(e) => {
                    if !reported_error {
                        let reason = reason_of(&e);
                        tracing::warn!(kind = %label, error = %e, "cannot list or watch this kind; the others are still audited");
                        ctx.metrics
                            .audit
                            .unavailable
                            .with_label_values(&[label.as_str(), reason.as_str()])
                            .set(1);
                        ctx.status().unavailable.push((label.clone(), reason));
                        reported_error = true;
                    }
                    if !listed {
                        listed = true;
                        state.failed.fetch_add(1, Ordering::AcqRel);
                        state.listed();
                    }
                }
            }
        }
        if !batch.is_empty() {
            let Ok(permit) = state.slots.clone().acquire_owned().await else {
                return;
            };
            state.in_flight.fetch_add(1, Ordering::AcqRel);
            let s = state.clone();
            let k = kind.clone();
            tokio::task::spawn_blocking(move || {
                evaluate(&s, &k, batch);
                drop(permit);
                s.in_flight.fetch_sub(1, Ordering::AcqRel);
                s.finish_if_done();
            });
        }
        if list_done && !listed {
            listed = true;
            state.listed();
        }
    }
}

fn reason_of(e: &watcher::Error) -> String {
    let text = e.to_string();
    if text.contains("403") || text.to_lowercase().contains("forbidden") {
        "forbidden".to_string()
    } else if text.contains("404") {
        "not served".to_string()
    } else {
        "error".to_string()
    }
}

/// Evaluates a batch of objects of one kind and records what their reports need.
fn evaluate(state: &ScanState, kind: &AuditKind, batch: Vec<(DynamicObject, bool)>) {
    let ctx = &state.ctx;
    let label = kind.label();
    let inventory = ctx.live.inventory();
    let revision = state.bundle.revision().to_string();
    let candidate = ctx.live.candidate();
    if let Some(c) = &candidate {
        let mut t = ctx.tracker();
        if t.revision() != Some(c.bundle.revision()) {
            t.reset(Some(c.bundle.revision().to_string()));
        }
    }
    let now = unix_now() as i64;
    let exception_set = ctx.live.exceptions().current();
    let excepted = regent_core::compose::Exceptions {
        set: &exception_set,
        help: None,
        now: regent_core::exceptions::now(),
    };
    for (object, deleted) in batch {
        let Some(uid) = object.metadata.uid.clone() else {
            continue;
        };
        if deleted {
            ctx.store().forget(&uid);
            ctx.tracker().forget(&uid);
            continue;
        }
        let version = object
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut json = match serde_json::to_value(&object) {
            Ok(j) => j,
            Err(_) => continue,
        };
        // Items of a list carry no apiVersion and kind.
        if let Json::Object(map) = &mut json {
            map.insert("apiVersion".into(), json!(kind.resource.api_version));
            map.insert("kind".into(), json!(kind.resource.kind));
        }
        let Some(subject) = Subject::of(&json) else {
            continue;
        };
        let mut results = state
            .bundle
            .audit_with(&json, &inventory, &excepted, ctx.limits);
        report::sort(&mut results);
        if let Some(c) = &candidate {
            let theirs = c.bundle.audit(&json, &inventory, ctx.limits);
            let diff = diff::compare(&Side::of_audit(&results), &Side::of_audit(&theirs));
            let news = ctx
                .tracker()
                .observe(&uid, subject.namespace.as_deref(), &diff);
            if news {
                let changes: Vec<String> = diff
                    .changes
                    .iter()
                    .map(|c| {
                        let policies: Vec<&str> = diff
                            .policies
                            .get(c)
                            .map(|p| p.iter().map(String::as_str).collect())
                            .unwrap_or_default();
                        format!("{}: {}", c.as_str(), policies.join(","))
                    })
                    .collect();
                tracing::info!(
                    candidate = c.bundle.revision(), kind = %label,
                    namespace = subject.namespace.as_deref().unwrap_or(""),
                    name = %subject.name, changes = ?changes,
                    "candidate bundle judges this object differently"
                );
            }
        }
        ctx.metrics
            .audit
            .evaluations
            .with_label_values(&[label.as_str()])
            .inc();
        let writing = ctx.writer.enabled();
        let mut store = ctx.store();
        let mut sink = StoreSink::new(&mut store, ctx.reports, &revision, now, writing);
        // Queuing into the store does not fail.
        let _ = sink.put(&Judged {
            source: &label,
            subject: &subject,
            results: &results,
            version,
        });
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
