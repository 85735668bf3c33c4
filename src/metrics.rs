//! Prometheus metrics, registered once in an explicit registry (no globals)
//! and served on the admin port. Labels stay low-cardinality: webhook, kind
//! (only the kinds regent knows, else `other`), operation, decision, policy.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use regent_core::compose::decision::{Decision, Verdict};
use regent_core::native::policy::{Enforcement, POD_KINDS};

/// Every metric regent exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `regent_admission_requests_total{webhook,kind,operation,decision}`
    pub requests: IntCounterVec,
    /// `regent_admission_request_duration_seconds{webhook}`
    pub duration: HistogramVec,
    /// `regent_invalid_requests_total{webhook,reason}`: bodies that are not a usable review.
    pub invalid: IntCounterVec,
    /// `regent_evaluation_failures_total{webhook,reason}`: errors and timeouts.
    pub failures: IntCounterVec,
    /// `regent_policy_evaluations_total{policy}`: a policy applied to a request.
    pub policy_evaluations: IntCounterVec,
    /// `regent_policy_violations_total{policy,enforcement}`
    pub policy_violations: IntCounterVec,
    /// `regent_policy_mutations_total{policy}`: a mutating policy changed an object.
    pub policy_mutations: IntCounterVec,
    /// `regent_policy_errors_total{policy,reason}`: a Constraint failed to
    /// evaluate on its own while the others decided.
    pub policy_errors: IntCounterVec,
    /// `regent_bundle_info{revision,origin}`: 1 for the live bundle.
    pub bundle_info: IntGaugeVec,
    /// `regent_bundle_policies{kind}`
    pub bundle_policies: IntGaugeVec,
    /// `regent_bundle_compile_duration_seconds`: compile and warm-up time of the live bundle.
    pub bundle_compile_seconds: Gauge,
    /// `regent_bundle_reloads_total{result}`: success or failure of each new revision.
    pub reloads: IntCounterVec,
    /// `regent_bundle_reload_duration_seconds`: compile, warm-up and test gate of each attempt.
    pub reload_duration: prometheus::Histogram,
    /// `regent_bundle_last_reload_success_timestamp_seconds`
    pub last_reload_success: Gauge,
    /// `regent_source_errors_total{source}`: watch and read errors of bundle sources.
    pub source_errors: IntCounterVec,
    /// `regent_tls_reloads_total{result}`: serving certificate rotations.
    pub tls_reloads: IntCounterVec,
    /// `regent_status_report_errors_total`: failed Event or annotation writes.
    pub status_errors: prometheus::IntCounter,
    /// `regent_inventory_objects{kind}`: objects held for `data.inventory`.
    pub inventory_objects: IntGaugeVec,
    /// `regent_connections_open`: admission connections open now.
    pub connections_open: prometheus::IntGauge,
    /// `regent_connections_closed_total{reason}`: admission connections closed
    /// by a limit (handshake_timeout, handshake_failed, header_timeout,
    /// idle_timeout).
    pub connections_closed: IntCounterVec,
    /// The audit process's metrics.
    pub audit: AuditMetrics,
    /// The candidate bundle's metrics (shadow evaluation).
    pub candidate: CandidateMetrics,
    /// Policy exceptions.
    pub exceptions: ExceptionMetrics,
    /// The decision log.
    pub decision_log: DecisionLogMetrics,
}

/// Metrics of the decision log, per sink (`stdout`, `file`, `http`).
#[derive(Debug, Clone)]
pub struct DecisionLogMetrics {
    /// `regent_decision_log_records_total{sink,result}`: records `queued`
    /// for a sink, `sent` to it, `dropped` (its queue was full: oldest
    /// first) or `failed` (given up after the retries).
    pub records: IntCounterVec,
    /// `regent_decision_log_batch_duration_seconds{sink}`: one batch's write
    /// (with its retries).
    pub batch_duration: HistogramVec,
    /// `regent_decision_log_queue_records{sink}`: records waiting.
    pub queue_records: IntGaugeVec,
    /// `regent_decision_log_queue_bytes{sink}`: their size.
    pub queue_bytes: IntGaugeVec,
}

impl DecisionLogMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            records: IntCounterVec::new(
                Opts::new(
                    "regent_decision_log_records_total",
                    "Decision log records, by sink and result (queued, sent, dropped, failed).",
                ),
                &["sink", "result"],
            )?,
            batch_duration: HistogramVec::new(
                HistogramOpts::new(
                    "regent_decision_log_batch_duration_seconds",
                    "Time to write one batch of decision log records to a sink, retries included.",
                )
                .buckets(vec![0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0]),
                &["sink"],
            )?,
            queue_records: IntGaugeVec::new(
                Opts::new(
                    "regent_decision_log_queue_records",
                    "Decision log records waiting for a sink (\"pending\": records that carry their object, waiting for the encoder).",
                ),
                &["sink"],
            )?,
            queue_bytes: IntGaugeVec::new(
                Opts::new(
                    "regent_decision_log_queue_bytes",
                    "Bytes of decision log records waiting for a sink (\"pending\": records that carry their object, counted with the request body's size).",
                ),
                &["sink"],
            )?,
        };
        for c in [
            Box::new(m.records.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.batch_duration.clone()),
            Box::new(m.queue_records.clone()),
            Box::new(m.queue_bytes.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }
}

/// Metrics of the candidate bundle: its reloads and what its shadow
/// evaluation on live traffic finds.
#[derive(Debug, Clone)]
pub struct CandidateMetrics {
    /// `regent_candidate_info{revision,origin}`: 1 for the candidate being
    /// shadow-evaluated; absent when there is none.
    pub info: IntGaugeVec,
    /// `regent_candidate_reloads_total{result}`: candidate revisions
    /// compiled (success) or rejected (failure).
    pub reloads: IntCounterVec,
    /// `regent_candidate_evaluations_total{result}`: shadow evaluations of
    /// admission requests: `same`, `diverged`, `failed`, or `dropped` (the
    /// server was saturated, or no candidate was live any more).
    pub evaluations: IntCounterVec,
    /// `regent_candidate_divergence_total{policy,change}`: what the
    /// candidate would have decided differently (`newly_denied`,
    /// `no_longer_denied`, `denial_changed`, `new_warning`,
    /// `removed_warning`, `patch_differs`), by the policy behind it.
    pub divergence: IntCounterVec,
    /// `regent_audit_candidate_objects{policy,change}`: audited objects the
    /// candidate currently judges differently (audit process).
    pub audit_objects: IntGaugeVec,
}

/// Metrics of policy exceptions.
#[derive(Debug, Clone)]
pub struct ExceptionMetrics {
    /// `regent_exceptions{status}`: exceptions loaded, by status (`valid`,
    /// `expired`, `invalid`).
    pub loaded: IntGaugeVec,
    /// `regent_exception_expiry_timestamp_seconds{exception}`: when each
    /// valid exception (`namespace/name`) ends, to alert on.
    pub expiry: GaugeVec,
    /// `regent_exceptions_applied_total{policy}`: violations an exception
    /// covered, by policy.
    pub applied: IntCounterVec,
}

impl ExceptionMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            loaded: IntGaugeVec::new(
                Opts::new("regent_exceptions", "Policy exceptions loaded, by status (valid, expired, invalid)."),
                &["status"],
            )?,
            expiry: GaugeVec::new(
                Opts::new(
                    "regent_exception_expiry_timestamp_seconds",
                    "When each valid policy exception ends (seconds since the epoch), by exception (namespace/name).",
                ),
                &["exception"],
            )?,
            applied: IntCounterVec::new(
                Opts::new(
                    "regent_exceptions_applied_total",
                    "Violations a policy exception covered (admitted, or warned instead), by policy.",
                ),
                &["policy"],
            )?,
        };
        for c in [
            Box::new(m.loaded.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.expiry.clone()),
            Box::new(m.applied.clone()),
        ] {
            registry.register(c)?;
        }
        for status in ["valid", "expired", "invalid"] {
            m.loaded.with_label_values(&[status]).set(0);
        }
        Ok(m)
    }
}

impl CandidateMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            info: IntGaugeVec::new(
                Opts::new(
                    "regent_candidate_info",
                    "The candidate bundle being shadow-evaluated (value 1).",
                ),
                &["revision", "origin"],
            )?,
            reloads: IntCounterVec::new(
                Opts::new(
                    "regent_candidate_reloads_total",
                    "Candidate bundle revisions compiled (success) or rejected (failure).",
                ),
                &["result"],
            )?,
            evaluations: IntCounterVec::new(
                Opts::new(
                    "regent_candidate_evaluations_total",
                    "Shadow evaluations of admission requests under the candidate bundle, by result (same, diverged, failed, dropped).",
                ),
                &["result"],
            )?,
            divergence: IntCounterVec::new(
                Opts::new(
                    "regent_candidate_divergence_total",
                    "Admission requests the candidate bundle would have decided differently, by policy and change.",
                ),
                &["policy", "change"],
            )?,
            audit_objects: IntGaugeVec::new(
                Opts::new(
                    "regent_audit_candidate_objects",
                    "Audited objects the candidate bundle currently judges differently, by policy and change.",
                ),
                &["policy", "change"],
            )?,
        };
        for c in [
            Box::new(m.info.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.reloads.clone()),
            Box::new(m.evaluations.clone()),
            Box::new(m.divergence.clone()),
            Box::new(m.audit_objects.clone()),
        ] {
            registry.register(c)?;
        }
        // Present from the start, so rate() works from the first event.
        for result in ["same", "diverged", "failed", "dropped"] {
            m.evaluations.with_label_values(&[result]);
        }
        for result in ["success", "failure"] {
            m.reloads.with_label_values(&[result]);
        }
        Ok(m)
    }
}

/// Metrics of `regent audit --cluster`.
#[derive(Debug, Clone)]
pub struct AuditMetrics {
    /// `regent_audit_evaluations_total{kind}`: objects evaluated.
    pub evaluations: IntCounterVec,
    /// `regent_audit_objects{kind}`: objects currently audited.
    pub objects: IntGaugeVec,
    /// `regent_audit_results{policy,result}`: current results (pass, fail,
    /// warn, skip, error, mutate) over every audited object.
    pub results: IntGaugeVec,
    /// `regent_audit_namespace_results{policy,namespace,result}`: current
    /// non-pass results by namespace ("" for cluster-scoped objects).
    pub namespace_results: IntGaugeVec,
    /// `regent_audit_last_scan_start_timestamp_seconds`
    pub scan_start: Gauge,
    /// `regent_audit_last_scan_end_timestamp_seconds`
    pub scan_end: Gauge,
    /// `regent_audit_last_scan_duration_seconds`: the last full scan.
    pub scan_duration: Gauge,
    /// `regent_audit_scans_total`: full scans completed.
    pub scans: prometheus::IntCounter,
    /// `regent_audit_report_writes_total{op,result}`: report creates,
    /// updates and deletes.
    pub writes: IntCounterVec,
    /// `regent_audit_report_backlog`: reports waiting to be written.
    pub backlog: prometheus::IntGauge,
    /// `regent_audit_kind_unavailable{kind,reason}`: 1 for each kind that
    /// could not be listed (not served, forbidden, ...).
    pub unavailable: IntGaugeVec,
    /// `regent_audit_leader`: 1 while this process holds the audit Lease.
    pub leader: prometheus::IntGauge,
}

impl AuditMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| Gauge::new(name, help);
        let m = Self {
            evaluations: IntCounterVec::new(
                Opts::new("regent_audit_evaluations_total", "Objects the audit evaluated, by kind."),
                &["kind"],
            )?,
            objects: IntGaugeVec::new(
                Opts::new("regent_audit_objects", "Objects currently audited, by kind."),
                &["kind"],
            )?,
            results: IntGaugeVec::new(
                Opts::new(
                    "regent_audit_results",
                    "Current audit results over every audited object, by policy and result (pass, fail, warn, skip, error).",
                ),
                &["policy", "result"],
            )?,
            namespace_results: IntGaugeVec::new(
                Opts::new(
                    "regent_audit_namespace_results",
                    "Current non-pass audit results by policy, namespace and result.",
                ),
                &["policy", "namespace", "result"],
            )?,
            scan_start: gauge(
                "regent_audit_last_scan_start_timestamp_seconds",
                "Unix time the last full audit scan started.",
            )?,
            scan_end: gauge(
                "regent_audit_last_scan_end_timestamp_seconds",
                "Unix time the last full audit scan ended.",
            )?,
            scan_duration: gauge(
                "regent_audit_last_scan_duration_seconds",
                "Duration of the last full audit scan.",
            )?,
            scans: prometheus::IntCounter::new(
                "regent_audit_scans_total",
                "Full audit scans completed.",
            )?,
            writes: IntCounterVec::new(
                Opts::new(
                    "regent_audit_report_writes_total",
                    "Report writes by operation (create, update, delete) and result (success, failure).",
                ),
                &["op", "result"],
            )?,
            backlog: prometheus::IntGauge::new(
                "regent_audit_report_backlog",
                "Reports waiting to be written (bounded by --report-qps).",
            )?,
            unavailable: IntGaugeVec::new(
                Opts::new(
                    "regent_audit_kind_unavailable",
                    "1 for each kind a policy matches that could not be listed, with the reason.",
                ),
                &["kind", "reason"],
            )?,
            leader: prometheus::IntGauge::new(
                "regent_audit_leader",
                "1 while this audit process holds the audit Lease and writes reports.",
            )?,
        };
        for c in [
            Box::new(m.evaluations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.objects.clone()),
            Box::new(m.results.clone()),
            Box::new(m.namespace_results.clone()),
            Box::new(m.scan_start.clone()),
            Box::new(m.scan_end.clone()),
            Box::new(m.scan_duration.clone()),
            Box::new(m.scans.clone()),
            Box::new(m.writes.clone()),
            Box::new(m.backlog.clone()),
            Box::new(m.unavailable.clone()),
            Box::new(m.leader.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(m)
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "regent_admission_requests_total",
                "Admission reviews answered, by webhook, kind, operation and decision.",
            ),
            &["webhook", "kind", "operation", "decision"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "regent_admission_request_duration_seconds",
                "Time from a parsed request to its encoded response.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                2.5,
            ]),
            &["webhook"],
        )?;
        let invalid = IntCounterVec::new(
            Opts::new(
                "regent_invalid_requests_total",
                "Request bodies that were not a usable AdmissionReview.",
            ),
            &["webhook", "reason"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "regent_evaluation_failures_total",
                "Policy evaluations that failed or timed out; the failure mode decided.",
            ),
            &["webhook", "reason"],
        )?;
        let policy_evaluations = IntCounterVec::new(
            Opts::new(
                "regent_policy_evaluations_total",
                "Requests each policy applied to.",
            ),
            &["policy"],
        )?;
        let policy_violations = IntCounterVec::new(
            Opts::new(
                "regent_policy_violations_total",
                "Violations reported, by policy and enforcement.",
            ),
            &["policy", "enforcement"],
        )?;
        let policy_errors = IntCounterVec::new(
            Opts::new(
                "regent_policy_errors_total",
                "Evaluation errors confined to one policy (the others still decided), by policy and reason.",
            ),
            &["policy", "reason"],
        )?;
        let policy_mutations = IntCounterVec::new(
            Opts::new(
                "regent_policy_mutations_total",
                "Objects each mutating policy changed.",
            ),
            &["policy"],
        )?;
        let bundle_info = IntGaugeVec::new(
            Opts::new("regent_bundle_info", "The live policy bundle (value 1)."),
            &["revision", "origin"],
        )?;
        let bundle_policies = IntGaugeVec::new(
            Opts::new(
                "regent_bundle_policies",
                "Policies in the live bundle, by kind.",
            ),
            &["kind"],
        )?;
        let bundle_compile_seconds = Gauge::new(
            "regent_bundle_compile_duration_seconds",
            "Compile and warm-up time of the live bundle.",
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "regent_bundle_reloads_total",
                "New bundle revisions tried, by result (success, failure).",
            ),
            &["result"],
        )?;
        let reload_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "regent_bundle_reload_duration_seconds",
                "Compile, warm-up and test-gate time of each bundle reload.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        let last_reload_success = Gauge::new(
            "regent_bundle_last_reload_success_timestamp_seconds",
            "Unix time of the last successful bundle reload.",
        )?;
        let source_errors = IntCounterVec::new(
            Opts::new(
                "regent_source_errors_total",
                "Errors watching or reading bundle sources.",
            ),
            &["source"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "regent_tls_reloads_total",
                "Serving certificate reloads, by result.",
            ),
            &["result"],
        )?;
        let status_errors = prometheus::IntCounter::new(
            "regent_status_report_errors_total",
            "Failed writes of Events or status annotations to source ConfigMaps.",
        )?;
        let inventory_objects = IntGaugeVec::new(
            Opts::new(
                "regent_inventory_objects",
                "Objects held as Gatekeeper referential data (data.inventory), by watched kind.",
            ),
            &["kind"],
        )?;
        let connections_open = prometheus::IntGauge::new(
            "regent_connections_open",
            "Admission (TLS) connections open now.",
        )?;
        let connections_closed = IntCounterVec::new(
            Opts::new(
                "regent_connections_closed_total",
                "Admission connections closed by a limit, by reason (handshake_timeout, handshake_failed, header_timeout, idle_timeout).",
            ),
            &["reason"],
        )?;
        for c in [
            Box::new(connections_open.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_closed.clone()),
            Box::new(inventory_objects.clone()),
            Box::new(reloads.clone()),
            Box::new(reload_duration.clone()),
            Box::new(last_reload_success.clone()),
            Box::new(source_errors.clone()),
            Box::new(tls_reloads.clone()),
            Box::new(status_errors.clone()),
        ] {
            registry.register(c)?;
        }
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(invalid.clone()),
            Box::new(failures.clone()),
            Box::new(policy_evaluations.clone()),
            Box::new(policy_violations.clone()),
            Box::new(policy_mutations.clone()),
            Box::new(policy_errors.clone()),
            Box::new(bundle_info.clone()),
            Box::new(bundle_policies.clone()),
            Box::new(bundle_compile_seconds.clone()),
        ] {
            registry.register(c)?;
        }
        Ok(Self {
            requests,
            duration,
            invalid,
            failures,
            policy_evaluations,
            policy_violations,
            policy_mutations,
            policy_errors,
            bundle_info,
            bundle_policies,
            bundle_compile_seconds,
            reloads,
            reload_duration,
            last_reload_success,
            source_errors,
            tls_reloads,
            status_errors,
            inventory_objects,
            connections_open,
            connections_closed,
            audit: AuditMetrics::new(&registry)?,
            candidate: CandidateMetrics::new(&registry)?,
            exceptions: ExceptionMetrics::new(&registry)?,
            decision_log: DecisionLogMetrics::new(&registry)?,
            registry,
        })
    }

    /// The registry, for collectors registered elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one decided request.
    pub fn record(
        &self,
        webhook: &str,
        kind: &str,
        operation: &str,
        decision: &Decision,
        seconds: f64,
    ) {
        let kind = if POD_KINDS.contains(&kind) {
            kind
        } else {
            "other"
        };
        let operation = match operation {
            "CREATE" | "UPDATE" | "DELETE" | "CONNECT" => operation,
            _ => "other",
        };
        self.requests
            .with_label_values(&[webhook, kind, operation, decision.verdict.as_str()])
            .inc();
        self.duration.with_label_values(&[webhook]).observe(seconds);
        if decision.verdict == Verdict::Failed {
            let reason = decision
                .error
                .as_ref()
                .map(|e| e.reason())
                .unwrap_or("error");
            self.failures.with_label_values(&[webhook, reason]).inc();
        }
        for p in &decision.evaluated {
            self.policy_evaluations.with_label_values(&[p]).inc();
        }
        for f in &decision.fired {
            self.policy_violations
                .with_label_values(&[&f.policy, f.enforcement.as_str()])
                .inc_by(f.violations.len() as u64);
        }
        for p in &decision.mutated_by {
            self.policy_mutations.with_label_values(&[p]).inc();
        }
        for e in &decision.excepted {
            self.exceptions
                .applied
                .with_label_values(&[&e.policy])
                .inc();
        }
        for e in &decision.policy_errors {
            self.policy_errors
                .with_label_values(&[&e.policy, e.error.reason()])
                .inc();
        }
    }

    /// Marks `revision` as the live bundle.
    pub fn set_bundle(&self, bundle: &regent_core::compose::CompiledBundle) {
        self.bundle_info.reset();
        self.bundle_info
            .with_label_values(&[bundle.revision(), bundle.origin()])
            .set(1);
        for kind in [
            regent_core::native::policy::PolicyKind::Validate,
            regent_core::native::policy::PolicyKind::Mutate,
        ] {
            let n = bundle
                .policies()
                .iter()
                .filter(|p| p.kind == kind && p.enforcement != Enforcement::Off)
                .count();
            self.bundle_policies
                .with_label_values(&[kind.root()])
                .set(n as i64);
        }
        self.bundle_policies
            .with_label_values(&["constraint"])
            .set(bundle.gatekeeper().constraints().len() as i64);
        self.bundle_compile_seconds
            .set(bundle.compile_time().as_secs_f64());
    }

    /// Marks `bundle` as the candidate (`None`: there is none).
    pub fn set_candidate(&self, bundle: Option<&regent_core::compose::CompiledBundle>) {
        self.candidate.info.reset();
        if let Some(b) = bundle {
            self.candidate
                .info
                .with_label_values(&[b.revision(), b.origin()])
                .set(1);
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, prometheus::Error> {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}
