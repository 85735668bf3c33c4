//! `regent diff`: what changes if bundle NEW replaces bundle OLD, on the
//! same manifests or AdmissionReviews, decided as `regent eval` decides them
//! (mutate, then validate: the same code as admission). Prints only what
//! changes, per object; `-o markdown` is short enough for a pull request
//! comment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::common::DecideArgs;
use super::inputs::Operation;
use regent_core::compose::decision;
use regent_core::compose::{CompileOptions, CompiledBundle};
use regent_core::diff::{self, Change, Diff, Side};
use regent_core::review;

/// Arguments of `regent diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The bundle running now (a directory; repeatable, composed in order);
    /// the embedded default bundle when omitted.
    #[arg(long)]
    pub from: Vec<PathBuf>,
    /// The bundle to ship (a directory; repeatable, composed in order);
    /// the `--from` bundle when omitted (to diff exception changes alone).
    #[arg(long, required_unless_present = "to_exceptions")]
    pub to: Vec<PathBuf>,
    /// Compose the embedded default bundle under both sides, as the server
    /// does with `--with-default-bundle`: the diff shows only what your
    /// bundles change.
    #[arg(long, env = "REGENT_WITH_DEFAULT_BUNDLE")]
    pub with_default_bundle: bool,
    /// Manifests or AdmissionReviews: files, directories or `-`.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// The operation plain manifests are reviewed as.
    #[arg(long, value_enum, default_value_t = Operation::Create)]
    pub operation: Operation,
    /// The namespace of a namespaced object whose manifest names none, as
    /// `kubectl apply -n` would put it (cluster-scoped kinds stay without).
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = DiffOutput::Text)]
    pub output: DiffOutput,
    /// What fails the run (exit 1): objects newly denied, or also new warnings.
    #[arg(long, value_enum, default_value_t = FailOn::Deny)]
    pub fail_on: FailOn,
    /// Most objects listed per change in `-o markdown` (and text).
    #[arg(long, default_value_t = 10)]
    pub max_objects: usize,
    /// Failure mode and limits, as for `serve`.
    #[command(flatten)]
    pub decide: DecideArgs,
    /// Policy exceptions on both sides (`--exceptions`), as at the server.
    #[command(flatten)]
    pub exceptions: super::common::OfflineExceptionArgs,
    /// Policy exceptions on the new side instead of `--exceptions`: an
    /// added, changed or removed exception shows as a decision change.
    #[arg(long)]
    pub to_exceptions: Option<PathBuf>,
}

/// Output formats of `regent diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffOutput {
    /// Each changed object with its changes, then counts.
    Text,
    /// One JSON document: counts and every changed object.
    Json,
    /// Counts, then a few objects per change: for a pull request comment.
    Markdown,
}

/// What fails a `regent diff` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// An object newly denied.
    Deny,
    /// An object newly denied, or a new warning.
    Warn,
}

/// One compared object, as `-o json` prints it.
#[derive(Debug, Serialize)]
struct Compared {
    source: String,
    kind: String,
    namespace: String,
    name: String,
    before: Side,
    after: Side,
    #[serde(flatten)]
    diff: Diff,
}

/// The whole report, as `-o json` prints it.
#[derive(Debug, Serialize)]
struct Report<'a> {
    from: String,
    to: String,
    compared: usize,
    counts: BTreeMap<&'static str, usize>,
    stricter: bool,
    objects: Vec<&'a Compared>,
}

impl DiffArgs {
    /// Compares; exit 0 when nothing got stricter, 1 when some object is
    /// newly denied (or warned, with `--fail-on warn`), 2 on an error.
    pub fn run(self) -> u8 {
        let limits = self.decide.limits.limits();
        let compile = |dirs: &[PathBuf]| {
            super::common::load_bundle(
                dirs,
                self.with_default_bundle,
                CompileOptions {
                    limits,
                    ..Default::default()
                },
            )
        };
        let to = if self.to.is_empty() {
            &self.from
        } else {
            &self.to
        };
        let (old, new) = match (compile(&self.from), compile(to)) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(e), _) | (_, Err(e)) => {
                super::common::print_compile_error(&e);
                return super::common::EXIT_USAGE;
            }
        };
        // Each side's exceptions are judged against that side's policies.
        let governance = &self.exceptions.governance;
        let before_path = self.exceptions.exceptions.as_deref();
        let after_path = self.to_exceptions.as_deref().or(before_path);
        let (old_exceptions, new_exceptions) = match (
            super::common::load_exceptions(before_path, governance, &old),
            super::common::load_exceptions(after_path, governance, &new),
        ) {
            (Ok(o), Ok(n)) => (o, n),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: {e}");
                return super::common::EXIT_USAGE;
            }
        };
        let mut docs = match super::inputs::read_objects(&self.files) {
            Ok(d) => d,
            Err(code) => return code,
        };
        let options = self.decide.options();
        let rule = super::inputs::namespacing(&self.namespace, false);
        let inventory = regorus::Value::from(super::inputs::prepare(&mut docs, &rule));
        let mut compared = Vec::new();
        for (i, (source, doc)) in docs.into_iter().enumerate() {
            let json = super::inputs::review_for(doc, i, self.operation, "");
            let bytes = serde_json::to_vec(&json).unwrap_or_default();
            let parsed = match review::parse(&bytes) {
                Ok(r) => r,
                Err(Ok(rejected)) => {
                    eprintln!("error: {source}: {}", rejected.error);
                    return super::common::EXIT_USAGE;
                }
                Err(Err(e)) => {
                    eprintln!("error: {source}: {e}");
                    return super::common::EXIT_USAGE;
                }
            };
            let side = |b: &CompiledBundle, x: &super::common::OfflineExceptions| {
                Side::of_admission(&decision::admit_in(
                    b,
                    &parsed,
                    &options,
                    &inventory,
                    &x.in_force(),
                ))
            };
            let (before, after) = (side(&old, &old_exceptions), side(&new, &new_exceptions));
            let diff = diff::compare(&before, &after);
            let m = &parsed.meta;
            compared.push(Compared {
                source,
                kind: m.kind.clone(),
                namespace: m.namespace.clone(),
                name: m.name.clone(),
                before,
                after,
                diff,
            });
        }
        let changed: Vec<&Compared> = compared.iter().filter(|c| !c.diff.is_empty()).collect();
        let count = |change: Change| {
            changed
                .iter()
                .filter(|c| c.diff.changes.contains(&change))
                .count()
        };
        let counts: BTreeMap<&'static str, usize> = Change::ALL
            .iter()
            .map(|c| (c.as_str(), count(*c)))
            .collect();
        let stricter = count(Change::NewlyDenied) > 0
            || (self.fail_on == FailOn::Warn && count(Change::NewWarning) > 0);
        let with = |origin: &str, path: Option<&std::path::Path>| match path {
            Some(p) => format!("{origin} with exceptions {}", p.display()),
            None => origin.to_string(),
        };
        let from = with(old.origin(), before_path);
        let to = with(new.origin(), after_path);
        match self.output {
            DiffOutput::Json => {
                let report = Report {
                    from: format!("{from} (revision {})", old.revision()),
                    to: format!("{to} (revision {})", new.revision()),
                    compared: compared.len(),
                    counts,
                    stricter,
                    objects: changed,
                };
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return super::common::EXIT_USAGE;
                    }
                }
            }
            DiffOutput::Text => print_text(&changed, compared.len(), &counts),
            DiffOutput::Markdown => print!(
                "{}",
                markdown(
                    &from,
                    &to,
                    &changed,
                    compared.len(),
                    &counts,
                    self.max_objects
                )
            ),
        }
        if stricter {
            super::common::EXIT_FAILED
        } else {
            super::common::EXIT_OK
        }
    }
}

fn describe(c: &Compared) -> String {
    let name = if c.name.is_empty() {
        "(generated name)"
    } else {
        &c.name
    };
    if c.namespace.is_empty() {
        format!("{} {name}", c.kind)
    } else {
        format!("{} {}/{name}", c.kind, c.namespace)
    }
}

fn policies(c: &Compared, change: Change) -> String {
    c.diff
        .policies
        .get(&change)
        .map(|p| p.iter().cloned().collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn print_text(changed: &[&Compared], total: usize, counts: &BTreeMap<&'static str, usize>) {
    for c in changed {
        let changes: Vec<&str> = c.diff.changes.iter().map(|x| x.as_str()).collect();
        println!("{} ({}): {}", describe(c), c.source, changes.join(", "));
        for l in &c.diff.denials_added {
            println!("  + deny  {l}");
        }
        for l in &c.diff.denials_removed {
            println!("  - deny  {l}");
        }
        for l in &c.diff.warnings_added {
            println!("  + warn  {l}");
        }
        for l in &c.diff.warnings_removed {
            println!("  - warn  {l}");
        }
        for op in &c.diff.patch_added {
            println!("  + patch {op}");
        }
        for op in &c.diff.patch_removed {
            println!("  - patch {op}");
        }
    }
    let summary: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{n} {}", k.replace('_', " ")))
        .collect();
    println!(
        "{total} objects compared; {}",
        if summary.is_empty() {
            "no decision changes".to_string()
        } else {
            summary.join(", ")
        }
    );
}

/// Counts first, then at most `max` objects per change.
fn markdown(
    from: &str,
    to: &str,
    changed: &[&Compared],
    total: usize,
    counts: &BTreeMap<&'static str, usize>,
    max: usize,
) -> String {
    let mut out =
        format!("### Regent policy diff\n\n`{from}` → `{to}`: {total} objects compared.\n\n");
    out.push_str("| change | objects |\n|---|---|\n");
    for c in Change::ALL {
        out.push_str(&format!(
            "| {} | {} |\n",
            c.as_str().replace('_', " "),
            counts[c.as_str()]
        ));
    }
    for change in Change::ALL {
        let with: Vec<&&Compared> = changed
            .iter()
            .filter(|c| c.diff.changes.contains(&change))
            .collect();
        if with.is_empty() {
            continue;
        }
        let mut by_policy: BTreeMap<String, usize> = BTreeMap::new();
        for c in &with {
            for p in c.diff.policies.get(&change).into_iter().flatten() {
                *by_policy.entry(p.clone()).or_default() += 1;
            }
        }
        let policies_line: Vec<String> = by_policy
            .iter()
            .map(|(p, n)| format!("`{p}` {n}"))
            .collect();
        out.push_str(&format!(
            "\n#### {} ({}){}\n\n",
            change.as_str().replace('_', " "),
            with.len(),
            if policies_line.is_empty() {
                String::new()
            } else {
                format!(": {}", policies_line.join(", "))
            }
        ));
        for c in with.iter().take(max) {
            let detail = match change {
                Change::NewlyDenied | Change::DenialChanged => {
                    c.diff.denials_added.first().cloned()
                }
                Change::NoLongerDenied => c.diff.denials_removed.first().cloned(),
                Change::NewWarning => c.diff.warnings_added.first().cloned(),
                Change::RemovedWarning => c.diff.warnings_removed.first().cloned(),
                Change::PatchDiffers => c
                    .diff
                    .patch_added
                    .first()
                    .or(c.diff.patch_removed.first())
                    .map(|op| op.to_string()),
            };
            out.push_str(&format!(
                "- {} ({}){}\n",
                describe(c),
                policies(c, change),
                detail
                    .map(|d| format!(": `{}`", truncate(&d, 160)))
                    .unwrap_or_default()
            ));
        }
        if with.len() > max {
            out.push_str(&format!("- … and {} more\n", with.len() - max));
        }
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.replace('`', "'");
    }
    let cut: String = s.chars().take(max).collect();
    format!("{}…", cut.replace('`', "'"))
}
