//! `regent audit`: what already runs, judged by the same policies.
//!
//! Offline (`-f PATH...`) it reviews objects as they are (no mutation first,
//! unlike `eval`, which simulates an apply) with every applicable
//! validating policy and Constraint whatever its enforcement, and prints a
//! table per object and a summary per policy, one JSON record per result, or
//! the very report objects the in-cluster audit would write. With
//! `--cluster` it is the audit process ([`crate::audit::cluster`]).

use std::path::PathBuf;

use super::common::LimitArgs;
use crate::audit::report::{self, ReportFormat, ReportOptions, ReportResults, Subject};
use crate::audit::sink::{JsonSink, Judged, ReportSink, TextSink, YamlSink};
use regent_core::compose::CompileOptions;
use regent_core::outcome::{AuditOutcome, AuditResult};

/// Arguments of `regent audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Manifests to audit: files, directories or `-` (multi-document YAML,
    /// JSON, `kind: List` as `kubectl get -o yaml` prints).
    #[arg(short = 'f', long = "filename", required_unless_present = "cluster")]
    pub files: Vec<String>,
    /// A bundle directory; repeatable, composed in the order given (with
    /// `--with-default-bundle`, over the embedded default bundle). The
    /// embedded default bundle when omitted.
    #[arg(long, env = "REGENT_POLICIES", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// Output: a table per object and a summary per policy, one JSON record
    /// per result, or the report objects the in-cluster audit would write.
    #[arg(long, short = 'o', value_enum, default_value_t = AuditOutput::Text)]
    pub output: AuditOutput,
    /// Report resources (`-o yaml` and `--cluster`).
    #[arg(long, env = "REGENT_REPORT_FORMAT", value_enum, default_value_t = ReportFormat::Wgpolicy)]
    pub report_format: ReportFormat,
    /// Which results reports list (`-o yaml` and `--cluster`).
    #[arg(long, env = "REGENT_REPORT_RESULTS", value_enum, default_value_t = ReportResults::Failing)]
    pub report_results: ReportResults,
    /// Evaluation limits.
    #[command(flatten)]
    pub limits: LimitArgs,
    /// The namespace of a namespaced object whose manifest names none, as
    /// `kubectl apply -n` would put it (offline).
    #[arg(short = 'n', long = "default-namespace", default_value = "default")]
    pub default_namespace: String,
    /// Review as `gator test` does, for byte-identical CI results during a
    /// migration: only the Gatekeeper objects given are policies, an object
    /// without a namespace is matched against gator's empty Namespace, and
    /// the exit code is gator's (1 only for a `deny` Constraint violated).
    #[arg(long, conflicts_with_all = ["policies", "cluster"])]
    pub gator_compat: bool,
    /// Run as the in-cluster audit process instead.
    #[arg(long)]
    pub cluster: bool,
    /// Settings of the in-cluster audit.
    #[command(flatten)]
    pub cluster_args: crate::audit::args::ClusterArgs,
}

/// Output formats of `regent audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditOutput {
    /// A table per object, then a summary per policy.
    Text,
    /// One JSON record per object and result.
    Json,
    /// The report objects, as the in-cluster audit writes them.
    Yaml,
}

impl AuditArgs {
    /// Runs the audit; exit 0 without `fail` results, 1 with some, 2 on a
    /// usage or input error.
    pub async fn run(self) -> anyhow::Result<u8> {
        if self.cluster {
            return crate::audit::cluster::run(
                self.cluster_args,
                self.policies,
                self.limits.limits(),
                ReportOptions {
                    format: self.report_format,
                    results: self.report_results,
                },
            )
            .await;
        }
        Ok(self.offline())
    }

    fn offline(&self) -> u8 {
        let limits = self.limits.limits();
        let mut docs = match super::inputs::read_objects(&self.files) {
            Ok(d) => d,
            Err(code) => return code,
        };
        let compiled = if self.gator_compat {
            super::inputs::gatekeeper_bundle(&docs)
                .map_err(regent_core::compose::CompileError::from)
                .and_then(|files| {
                    regent_core::compose::CompiledBundle::compile(
                        &files,
                        CompileOptions {
                            limits,
                            ..Default::default()
                        },
                    )
                })
        } else {
            super::common::load_bundle(
                &self.policies,
                self.cluster_args.sources.with_default_bundle,
                CompileOptions {
                    limits,
                    ..Default::default()
                },
            )
        };
        let bundle = match compiled {
            Ok(b) => b,
            Err(e) => {
                super::common::print_compile_error(&e);
                return super::common::EXIT_USAGE;
            }
        };
        let args = &self.cluster_args.exceptions;
        let exceptions = match super::common::load_exceptions(
            args.exceptions.as_deref(),
            &args.governance,
            &bundle,
        ) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return super::common::EXIT_USAGE;
            }
        };
        // Objects without a namespace get one (or gator's empty one); the
        // objects given are the cluster as far as referential Constraints
        // and namespaceSelectors can know: they are also `data.inventory`.
        let rule = super::inputs::namespacing(&self.default_namespace, self.gator_compat);
        let inventory = regorus::Value::from(super::inputs::prepare(&mut docs, &rule));
        let mut audited: Vec<(String, Subject, Vec<AuditResult>)> = Vec::new();
        let mut input_error = false;
        for (source, object) in &docs {
            // A name is needed to say which object a result is about; gator
            // reviews a nameless object too, so compat does (as "").
            let subject = match Subject::of(object) {
                Some(s) => s,
                None if self.gator_compat && object["kind"].is_string() => Subject {
                    api_version: object["apiVersion"].as_str().unwrap_or("v1").to_string(),
                    kind: object["kind"].as_str().unwrap_or_default().to_string(),
                    namespace: object["metadata"]["namespace"].as_str().map(str::to_string),
                    name: String::new(),
                    uid: None,
                },
                None => {
                    eprintln!("error: {source}: an object needs apiVersion, kind and metadata.name (or metadata.generateName)");
                    input_error = true;
                    continue;
                }
            };
            let mut results = bundle.audit_in(
                object,
                &inventory,
                &exceptions.in_force(),
                limits,
                self.gator_compat,
            );
            report::sort(&mut results);
            audited.push((source.clone(), subject, results));
        }
        let options = ReportOptions {
            format: self.report_format,
            results: self.report_results,
        };
        let stdout = std::io::stdout().lock();
        let mut sink: Box<dyn ReportSink> = match self.output {
            AuditOutput::Text => Box::new(TextSink::new(stdout)),
            AuditOutput::Json => Box::new(JsonSink::new(stdout)),
            AuditOutput::Yaml => Box::new(YamlSink::new(
                stdout,
                options,
                bundle.revision(),
                now_seconds(),
            )),
        };
        let written = audited
            .iter()
            .try_for_each(|(source, subject, results)| {
                sink.put(&Judged {
                    source,
                    subject,
                    results,
                    version: 0,
                })
            })
            .and_then(|()| sink.finish());
        if let Err(e) = written {
            eprintln!("error: {e}");
            return super::common::EXIT_USAGE;
        }
        // gator's exit code: only a `deny` Constraint fails it, for a
        // violation or an evaluation error (gator reports errors as results).
        let failing = |r: &AuditResult| {
            if self.gator_compat {
                matches!(r.result, AuditOutcome::Fail | AuditOutcome::Error)
                    && r.enforcement == regent_core::outcome::Enforcement::Deny
            } else {
                r.result == AuditOutcome::Fail
            }
        };
        if input_error {
            super::common::EXIT_USAGE
        } else if audited.iter().any(|(_, _, rs)| rs.iter().any(failing)) {
            super::common::EXIT_FAILED
        } else {
            super::common::EXIT_OK
        }
    }
}

/// Seconds since the epoch.
pub fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
