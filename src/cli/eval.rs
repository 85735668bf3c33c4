//! `regent eval`: decide manifests or whole AdmissionReviews offline with the
//! same engine and decision code the server uses.
//!
//! Like the API server, it runs the mutating policies first and validates the
//! object they produce. Plain manifests are wrapped in a v1 AdmissionReview
//! (operation from `--operation`, user `regent-eval`); reviews are used as
//! they are.

use serde::Serialize;
use serde_json::{json, Value as Json};

use super::common::DecideArgs;
pub use super::inputs::Operation;
use regent_core::compose::decision;
use regent_core::compose::CompileOptions;
use regent_core::review;

/// The webhook name kubectl shows in denials (the chart registers this name).
pub const WEBHOOK_NAME: &str = "validate.regent.dev";

/// Arguments of `regent eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Manifest or AdmissionReview files, directories, or `-` for stdin (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// The bundles to decide with.
    #[command(flatten)]
    pub bundles: super::common::BundleArgs,
    /// The operation plain manifests are reviewed as.
    #[arg(long, value_enum, default_value_t = Operation::Create)]
    pub operation: Operation,
    /// The namespace of a namespaced object whose manifest names none, as
    /// `kubectl apply -n` would put it (cluster-scoped kinds stay without).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Match as `gator test` does, for byte-identical CI results during a
    /// migration: only the Gatekeeper objects given are policies, and an
    /// object without a namespace is matched against gator's empty
    /// Namespace.
    #[arg(long, conflicts_with_all = ["policies", "with_default_bundle"])]
    pub gator_compat: bool,
    /// Also print the JSON patch and the mutated object.
    #[arg(long)]
    pub mutate: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Failure mode and time limit, as for `serve`.
    #[command(flatten)]
    pub decide: DecideArgs,
    /// Policy exceptions applied, as at the server.
    #[command(flatten)]
    pub exceptions: super::common::OfflineExceptionArgs,
    /// Print (`stdout`, instead of the usual output) or append
    /// (`file:PATH`) the decision records the server would log: one per
    /// webhook and object, every decision.
    #[arg(long = "decision-log", value_parser = parse_offline_sink)]
    pub decision_log: Option<crate::decision_log::SinkSpec>,
    /// Include the object in the records, masked.
    #[arg(long)]
    pub decision_log_include_object: bool,
    /// A JSON pointer removed from logged objects (repeatable).
    #[arg(long = "decision-log-mask", value_delimiter = ',')]
    pub decision_log_mask: Vec<String>,
}

fn parse_offline_sink(s: &str) -> Result<crate::decision_log::SinkSpec, String> {
    match crate::decision_log::SinkSpec::parse(s)? {
        crate::decision_log::SinkSpec::Http(_) => {
            Err("regent eval writes decision records to stdout or file:PATH".to_string())
        }
        other => Ok(other),
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// kubectl-like lines.
    Text,
    /// One JSON array of records.
    Json,
}

/// One decided object, as printed with `--output json`.
#[derive(Debug, Serialize)]
struct Record {
    source: String,
    kind: String,
    namespace: String,
    name: String,
    operation: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    warnings: Vec<String>,
    violations: Vec<Json>,
    /// Violations a policy exception covers (they neither deny nor warn as
    /// such; a warning names the exception).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    excepted: Vec<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mutated: Option<Json>,
    /// The mutating policies and Gatekeeper mutators (`Kind/name`) that
    /// changed the object, in order (with `--mutate`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mutated_by: Vec<String>,
}

impl EvalArgs {
    /// Decides every input; exit 0 all admitted, 1 any denied, 2 usage or input error.
    pub fn run(self) -> u8 {
        let mut docs = match super::inputs::read_objects(&self.files) {
            Ok(d) => d,
            Err(code) => return code,
        };
        let options = CompileOptions {
            limits: self.decide.limits.limits(),
            ..Default::default()
        };
        let compiled = if self.gator_compat {
            super::inputs::gatekeeper_bundle(&docs)
                .map_err(regent_core::compose::CompileError::from)
                .and_then(|files| regent_core::compose::CompiledBundle::compile(&files, options))
        } else {
            super::common::load_bundle(
                &self.bundles.policies,
                self.bundles.with_default_bundle,
                options,
            )
        };
        let bundle = match compiled {
            Ok(b) => b,
            Err(e) => {
                super::common::print_compile_error(&e);
                return super::common::EXIT_USAGE;
            }
        };
        let exceptions = match super::common::load_exceptions(
            self.exceptions.exceptions.as_deref(),
            &self.exceptions.governance,
            &bundle,
        ) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("error: {e}");
                return super::common::EXIT_USAGE;
            }
        };
        // Namespaces applied (or gator's empty one); the objects given, with
        // their Namespaces, are what referential Constraints, namespace
        // selectors and Pod Security's namespace labels can know.
        let rule = super::inputs::namespacing(&self.namespace, self.gator_compat);
        let inventory = regorus::Value::from(super::inputs::prepare(&mut docs, &rule));
        let options = self.decide.options();
        let mut records = Vec::new();
        let mut log_lines: Vec<String> = Vec::new();
        let mut input_error = false;
        for (i, (source, doc)) in docs.into_iter().enumerate() {
            let unnamespaced = doc["kind"] != "AdmissionReview"
                && doc["metadata"]["namespace"]
                    .as_str()
                    .is_none_or(str::is_empty);
            let mut review_json = super::inputs::review_for(doc, i, self.operation, "");
            if self.gator_compat && unnamespaced && review_json["request"].is_object() {
                review_json["request"]["_unstable"] =
                    json!({"namespace": regent_core::gatekeeper::gator_empty_namespace()});
            }
            let bytes = serde_json::to_vec(&review_json).unwrap_or_default();
            let parsed = match review::parse(&bytes) {
                Ok(r) => r,
                Err(Ok(rejected)) => {
                    eprintln!("error: {source}: {}", rejected.error);
                    input_error = true;
                    continue;
                }
                Err(Err(e)) => {
                    eprintln!("error: {source}: {e}");
                    input_error = true;
                    continue;
                }
            };
            // Mutate first, then validate what the mutation produced, as the API server does.
            let started = std::time::Instant::now();
            let admission = decision::admit_in(
                &bundle,
                &parsed,
                &options,
                &inventory,
                &exceptions.in_force(),
            );
            if self.decision_log.is_some() {
                log_lines.extend(self.decision_records(
                    &bundle,
                    &parsed,
                    &admission,
                    started.elapsed(),
                ));
            }
            let excepted = admission
                .validation
                .excepted
                .iter()
                .map(|x| {
                    json!({"policy": x.policy, "enforcement": x.enforcement.as_str(),
                           "exception": x.exception, "owner": x.owner, "expires": x.expires,
                           "path": x.violation.path, "msg": x.violation.msg})
                })
                .collect();
            let violations = admission
                .validation
                .fired
                .iter()
                .flat_map(|f| {
                    f.violations.iter().map(move |v| {
                        json!({"policy": f.policy, "enforcement": f.enforcement.as_str(),
                               "path": v.path, "msg": v.msg, "fix": v.fix})
                    })
                })
                .collect();
            let m = &parsed.meta;
            records.push(Record {
                source,
                kind: m.kind.clone(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                operation: m.operation.clone(),
                allowed: admission.allowed,
                message: admission.message.clone(),
                warnings: admission.warnings.clone(),
                violations,
                excepted,
                patch: if self.mutate {
                    admission
                        .patch
                        .as_ref()
                        .and_then(|p| serde_json::to_value(p).ok())
                } else {
                    None
                },
                mutated: (self.mutate && !admission.mutation.mutated_by.is_empty())
                    .then(|| admission.mutation.mutated_object.clone()),
                mutated_by: if self.mutate {
                    admission.mutation.mutated_by.clone()
                } else {
                    Vec::new()
                },
            });
        }
        match &self.decision_log {
            Some(crate::decision_log::SinkSpec::Stdout) => {
                for l in &log_lines {
                    println!("{l}");
                }
            }
            other => {
                if let Some(crate::decision_log::SinkSpec::File(path)) = other {
                    let mut text = log_lines.join("\n");
                    text.push('\n');
                    let appended = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)
                        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
                    if let Err(e) = appended {
                        eprintln!("error: {}: {e}", path.display());
                        return super::common::EXIT_USAGE;
                    }
                }
                match self.output {
                    Output::Json => match serde_json::to_string_pretty(&records) {
                        Ok(s) => println!("{s}"),
                        Err(e) => eprintln!("error: {e}"),
                    },
                    Output::Text => print_text(&records, self.mutate),
                }
            }
        }
        if input_error {
            super::common::EXIT_USAGE
        } else if records.iter().any(|r| !r.allowed) {
            super::common::EXIT_FAILED
        } else {
            super::common::EXIT_OK
        }
    }
}

impl EvalArgs {
    /// The records the server would log for one object: its mutating
    /// decision, then its validating one (on the mutated object).
    fn decision_records(
        &self,
        bundle: &regent_core::compose::CompiledBundle,
        review: &review::Review,
        admission: &decision::Admission,
        took: std::time::Duration,
    ) -> Vec<String> {
        use regent_core::compose::decision::Webhook;
        use regent_core::decision_log::{append_object, Context, Record};
        let mutated = if admission.mutation.mutated_object.is_null() {
            None
        } else {
            review.with_object(&admission.mutation.mutated_object)
        };
        let mut out = Vec::new();
        for (webhook, d, r) in [
            (Webhook::Mutate, &admission.mutation, review),
            (
                Webhook::Validate,
                &admission.validation,
                mutated.as_ref().unwrap_or(review),
            ),
        ] {
            let ctx = Context {
                webhook,
                duration: took,
                revision: bundle.revision(),
                replica: "regent-eval",
                at: std::time::SystemTime::now(),
            };
            let mut line = Vec::new();
            Record::of(r, d, &ctx).write(&mut line);
            if self.decision_log_include_object {
                match bundle.log_mask(&r.input, self.decide.limits.limits()) {
                    Ok(more) => {
                        let mut masks = self.decision_log_mask.clone();
                        masks.extend(more);
                        if let Err(e) =
                            append_object(&mut line, &r.input["request"]["object"], &masks)
                        {
                            eprintln!("warning: the object could not be added to its decision record ({e}); the record goes without it");
                        }
                    }
                    Err(e) => {
                        eprintln!("warning: data.regent.log.mask failed ({e}); the record goes without its object");
                    }
                }
            }
            out.push(String::from_utf8_lossy(&line).into_owned());
        }
        out
    }
}

fn print_text(records: &[Record], show_mutation: bool) {
    for r in records {
        for w in &r.warnings {
            println!("Warning: {w}");
        }
        let what = format!(
            "{}/{}",
            r.kind.to_lowercase(),
            if r.name.is_empty() {
                "(generated)"
            } else {
                &r.name
            }
        );
        if r.allowed {
            println!(
                "{what} admitted ({} {})",
                r.operation.to_lowercase(),
                r.source
            );
        } else {
            println!(
                "Error from server (Forbidden): error when {} {:?}: admission webhook {WEBHOOK_NAME:?} denied the request: {}",
                match r.operation.as_str() {
                    "UPDATE" => "applying",
                    "DELETE" => "deleting",
                    _ => "creating",
                },
                r.source,
                r.message.as_deref().unwrap_or("")
            );
        }
        if show_mutation {
            match (&r.patch, &r.mutated) {
                (Some(p), Some(obj)) => {
                    println!("--- patch for {what} (by {}):", r.mutated_by.join(", "));
                    println!("{}", serde_json::to_string_pretty(p).unwrap_or_default());
                    println!("--- mutated {what}:");
                    print!("{}", serde_yaml_ng::to_string(obj).unwrap_or_default());
                }
                _ => println!("--- no mutation for {what}"),
            }
        }
    }
}
