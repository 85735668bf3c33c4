//! `regent check`: compile a bundle (test modules included) and say what is
//! in it, or where it is broken.

use std::path::PathBuf;

use regent_core::compose::CompileOptions;
use regent_core::native::policy::PolicyKind;
use regent_core::outcome::Enforcement;

/// Arguments of `regent check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Bundle directories, composed in the order given (later data
    /// overrides earlier); the embedded default bundle when omitted.
    #[arg(env = "REGENT_POLICIES", value_delimiter = ',')]
    pub dirs: Vec<PathBuf>,
    /// Compose the embedded default bundle under the directories.
    #[arg(long, env = "REGENT_WITH_DEFAULT_BUNDLE")]
    pub with_default_bundle: bool,
    /// The limits the bundle's warm-up runs under, as at the server.
    #[command(flatten)]
    pub limits: super::common::LimitArgs,
    /// Also validate PolicyException files against this bundle, under the
    /// governance flags (a CI job for an exceptions repository): exit 1 if
    /// any is invalid.
    #[command(flatten)]
    pub exceptions: super::common::OfflineExceptionArgs,
}

impl CheckArgs {
    /// Compiles and reports.
    pub fn run(self) -> u8 {
        let Self {
            dirs,
            with_default_bundle,
            limits,
            exceptions,
        } = self;
        let limits = limits.limits();
        match super::common::load_bundle(
            &dirs,
            with_default_bundle,
            CompileOptions {
                include_tests: true,
                interpreter_only: false,
                limits,
            },
        ) {
            Ok(bundle) => {
                // What the server would run: compiled without the tests.
                let serving = super::common::load_bundle(
                    &dirs,
                    with_default_bundle,
                    CompileOptions {
                        limits,
                        ..Default::default()
                    },
                )
                .map(|b| b.evaluator());
                let count =
                    |kind: PolicyKind| bundle.policies().iter().filter(|p| p.kind == kind).count();
                let tests = bundle.tests().len();
                println!(
                    "ok: {} (revision {}): {}, {}, {}, compiled in {:.1} ms, evaluator {}",
                    bundle.origin(),
                    bundle.revision(),
                    plural(
                        count(PolicyKind::Validate),
                        "validating policy",
                        "validating policies"
                    ),
                    plural(
                        count(PolicyKind::Mutate),
                        "mutating policy",
                        "mutating policies"
                    ),
                    plural(tests, "test", "tests"),
                    bundle.compile_time().as_secs_f64() * 1e3,
                    serving.map(|e| e.as_str()).unwrap_or("unknown")
                );
                for p in bundle.policies() {
                    let what = match (p.kind, p.enforcement) {
                        (PolicyKind::Mutate, Enforcement::Off) => "off".to_string(),
                        (PolicyKind::Mutate, _) => format!("order {}", p.order),
                        (PolicyKind::Validate, e) => e.as_str().to_string(),
                    };
                    println!(
                        "  {:<8} {:<28} {:<9} {}{}",
                        p.kind.root(),
                        p.name,
                        what,
                        p.source,
                        if p.exceptions_forbidden {
                            " (exceptions forbidden)"
                        } else {
                            ""
                        }
                    );
                }
                let gk = bundle.gatekeeper();
                if !gk.is_empty() {
                    let n = gk.constraints().len();
                    println!(
                        "  {} Gatekeeper template(s), {n} Gatekeeper constraint{}, {} Gatekeeper mutator(s):",
                        gk.templates().len(),
                        if n == 1 { "" } else { "s" },
                        gk.mutators().list().len()
                    );
                    // The server compiles templates the same way with or
                    // without test modules: say which evaluator runs each.
                    for t in gk.template_evaluators() {
                        println!(
                            "  {:<8} {:<28} {:<7} ({})",
                            "template",
                            t.name,
                            t.evaluator.as_str(),
                            t.kind
                        );
                        for copy in &t.specialized {
                            println!("  {:<8} {:<28} specialized {copy}", "", "");
                        }
                    }
                    for c in gk.constraints() {
                        let action = match &c.action {
                            regent_core::gatekeeper::Action::All(e) => e.as_str().to_string(),
                            regent_core::gatekeeper::Action::Scoped(_) => format!(
                                "scoped ({} at the webhook)",
                                c.action.at(regent_core::gatekeeper::WEBHOOK_POINT).as_str()
                            ),
                        };
                        println!(
                            "  {:<8} {:<28} {:<7} {} ({}){}",
                            "gk",
                            c.name,
                            action,
                            c.path,
                            c.kind,
                            if c.exceptions_forbidden {
                                " (exceptions forbidden)"
                            } else {
                                ""
                            }
                        );
                    }
                }
                for m in gk.mutators().list() {
                    println!(
                        "  {:<8} {:<28} {:<7} {}:{} ({})",
                        "mutator",
                        m.name,
                        "mutate",
                        m.origin.0,
                        m.origin.1,
                        m.kind.as_str()
                    );
                }
                for o in bundle.overrides() {
                    println!("override: {o}");
                }
                for warning in bundle.warnings() {
                    println!("warning: {warning}");
                }
                match exceptions.exceptions.as_deref() {
                    Some(path) => check_exceptions(path, &exceptions.governance, &bundle),
                    None => super::common::EXIT_OK,
                }
            }
            Err(e) => {
                super::common::print_compile_error(&e);
                super::common::EXIT_FAILED
            }
        }
    }
}

/// Validates the PolicyExceptions at `path` against `bundle`: one line
/// each; exit 1 when any is invalid (an expired one is only said).
fn check_exceptions(
    path: &std::path::Path,
    governance: &crate::exceptions::GovernanceArgs,
    bundle: &regent_core::compose::CompiledBundle,
) -> u8 {
    let loaded = match crate::exceptions::files::read(path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return super::common::EXIT_USAGE;
        }
    };
    let set = regent_core::exceptions::ExceptionSet::build(
        loaded.exceptions,
        loaded.unreadable,
        &governance.governance(),
        &bundle.catalogue(),
        regent_core::exceptions::now(),
    );
    let lines = set.report();
    let invalid = set.invalid_count();
    println!(
        "exceptions: {} read from {}, {} in force, {} invalid",
        lines.len(),
        path.display(),
        lines.iter().filter(|l| l.in_force).count(),
        invalid
    );
    for l in &lines {
        println!("  {:<40} {} ({})", l.exception, l.text, l.source);
    }
    if invalid > 0 {
        super::common::EXIT_FAILED
    } else {
        super::common::EXIT_OK
    }
}

/// `1 policy`, `2 policies`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
