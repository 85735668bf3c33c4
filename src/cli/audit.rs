//! `regent audit`: what already runs, judged by the same policies.
//!
//! Offline (`-f PATH...`) it reviews objects as they are (no mutation first,
//! unlike `eval`, which simulates an apply) with every applicable
//! validating policy and Constraint whatever its enforcement, and prints a
//! table per object and a summary per policy, one JSON record per result, or
//! the very report objects the in-cluster audit would write. With
//! `--cluster` it is the audit process ([`crate::audit::cluster`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::common::LimitArgs;
use crate::audit::report::{self, ReportFormat, ReportOptions, ReportResults, Subject};
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
    /// Run as the in-cluster audit process instead.
    #[arg(long)]
    pub cluster: bool,
    /// Settings of the in-cluster audit.
    #[command(flatten)]
    pub cluster_args: crate::audit::cluster::ClusterArgs,
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

/// One result, as `-o json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    source: &'a str,
    api_version: &'a str,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<&'a str>,
    #[serde(flatten)]
    result: &'a AuditResult,
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
        let bundle = match super::common::load_bundle(
            &self.policies,
            self.cluster_args.sources.with_default_bundle,
            CompileOptions {
                limits,
                ..Default::default()
            },
        ) {
            Ok(b) => b,
            Err(e) => {
                super::common::print_compile_error(&e);
                return super::common::EXIT_USAGE;
            }
        };
        let docs = match super::inputs::read_inputs(&self.files) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                return super::common::EXIT_USAGE;
            }
        };
        if docs.is_empty() {
            eprintln!("error: no objects found in {}", self.files.join(", "));
            return super::common::EXIT_USAGE;
        }
        // The objects given are the cluster as far as referential
        // Constraints can know: they are also `data.inventory`.
        let inventory = regorus::Value::from(regent_core::gatekeeper::inventory(
            docs.iter().map(|(_, d)| d),
        ));
        let mut audited: Vec<(String, Subject, Vec<AuditResult>)> = Vec::new();
        let mut input_error = false;
        for (source, object) in &docs {
            let Some(subject) = Subject::of(object) else {
                eprintln!("error: {source}: an object needs apiVersion, kind and metadata.name (or metadata.generateName)");
                input_error = true;
                continue;
            };
            let mut results = bundle.audit(object, &inventory, limits);
            report::sort(&mut results);
            audited.push((source.clone(), subject, results));
        }
        let options = ReportOptions {
            format: self.report_format,
            results: self.report_results,
        };
        match self.output {
            AuditOutput::Text => print_text(&audited),
            AuditOutput::Json => {
                let records: Vec<Record<'_>> = audited
                    .iter()
                    .flat_map(|(source, s, results)| {
                        results.iter().map(move |r| Record {
                            source,
                            api_version: &s.api_version,
                            kind: &s.kind,
                            namespace: s.namespace.as_deref(),
                            name: &s.name,
                            uid: s.uid.as_deref(),
                            result: r,
                        })
                    })
                    .collect();
                match serde_json::to_string_pretty(&records) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return super::common::EXIT_USAGE;
                    }
                }
            }
            AuditOutput::Yaml => {
                let now = now_seconds();
                let mut first = true;
                for (_, subject, results) in &audited {
                    let Some(r) = report::build(subject, results, options, bundle.revision(), now)
                    else {
                        continue;
                    };
                    if !first {
                        println!("---");
                    }
                    first = false;
                    print!("{}", serde_yaml_ng::to_string(&r.body).unwrap_or_default());
                }
            }
        }
        if input_error {
            super::common::EXIT_USAGE
        } else if audited
            .iter()
            .any(|(_, _, rs)| rs.iter().any(|r| r.result == AuditOutcome::Fail))
        {
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

fn print_text(audited: &[(String, Subject, Vec<AuditResult>)]) {
    #[derive(Default)]
    struct Tally {
        checked: usize,
        failing: usize,
        warning: usize,
        skipped: usize,
        errors: usize,
        mutated: usize,
    }
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    for (source, subject, results) in audited {
        println!("{} ({source})", subject.describe());
        if results.is_empty() {
            println!("  no policy applies");
        }
        let width = results
            .iter()
            .map(|r| r.policy.len())
            .max()
            .unwrap_or(6)
            .max(6);
        for r in results {
            println!(
                "  {:<6} {:<width$} {:<7} {}",
                r.result.as_str(),
                r.policy,
                if r.result == AuditOutcome::Mutate {
                    "-"
                } else {
                    r.enforcement.as_str()
                },
                r.message
            );
        }
        let mut seen: BTreeMap<&str, Vec<AuditOutcome>> = BTreeMap::new();
        for r in results {
            seen.entry(&r.policy).or_default().push(r.result);
        }
        for (policy, outcomes) in seen {
            let t = tallies.entry(policy).or_default();
            t.checked += 1;
            let has = |o: AuditOutcome| outcomes.contains(&o);
            t.failing += usize::from(has(AuditOutcome::Fail));
            t.warning += usize::from(has(AuditOutcome::Warn));
            t.skipped += usize::from(has(AuditOutcome::Skip));
            t.errors += usize::from(has(AuditOutcome::Error));
            t.mutated += usize::from(has(AuditOutcome::Mutate));
        }
    }
    let mut rows: Vec<(&str, Tally)> = tallies.into_iter().collect();
    rows.sort_by(|a, b| {
        (b.1.failing, b.1.warning, b.1.errors)
            .cmp(&(a.1.failing, a.1.warning, a.1.errors))
            .then(a.0.cmp(b.0))
    });
    let width = rows.iter().map(|(p, _)| p.len()).max().unwrap_or(6).max(6);
    println!(
        "\nby policy, most failures first ({} objects):",
        audited.len()
    );
    println!(
        "  {:<width$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "POLICY", "CHECKED", "FAILING", "WARNING", "SKIPPED", "ERRORS", "MUTATE"
    );
    for (policy, t) in rows {
        println!(
            "  {:<width$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
            policy, t.checked, t.failing, t.warning, t.skipped, t.errors, t.mutated
        );
    }
}
