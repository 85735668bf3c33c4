//! `regent check`: compile a bundle (test modules included) and say what is
//! in it, or where it is broken.

use std::path::PathBuf;

use crate::compiled::CompileOptions;

/// Arguments of `regent check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The bundle directory; the embedded default bundle when omitted.
    #[arg(env = "REGENT_POLICIES")]
    pub dir: Option<PathBuf>,
    /// The limits the bundle's warm-up runs under, as at the server.
    #[command(flatten)]
    pub limits: super::common::LimitArgs,
}

impl CheckArgs {
    /// Compiles and reports.
    pub fn run(self) -> u8 {
        let Self { dir, limits } = self;
        let limits = limits.limits();
        match super::common::load_bundle(
            dir.as_ref(),
            CompileOptions {
                include_tests: true,
                interpreter_only: false,
                limits,
            },
        ) {
            Ok(bundle) => {
                // What the server would run: compiled without the tests.
                let serving = super::common::load_bundle(
                    dir.as_ref(),
                    CompileOptions {
                        limits,
                        ..Default::default()
                    },
                )
                .map(|b| b.evaluator());
                println!(
                    "ok: {} (revision {}): {} policies, {} tests, compiled in {:.1} ms, evaluator {}",
                    bundle.origin(),
                    bundle.revision(),
                    bundle.policies().len(),
                    bundle.tests().len(),
                    bundle.compile_time().as_secs_f64() * 1e3,
                    serving.map(|e| e.as_str()).unwrap_or("unknown")
                );
                for p in bundle.policies() {
                    println!(
                        "  {:<8} {:<28} {:<7} {}",
                        p.kind.root(),
                        p.name,
                        p.enforcement.as_str(),
                        p.source
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
                            crate::gatekeeper::Action::All(e) => e.as_str().to_string(),
                            crate::gatekeeper::Action::Scoped(_) => format!(
                                "scoped ({} at the webhook)",
                                c.action.at(crate::gatekeeper::WEBHOOK_POINT).as_str()
                            ),
                        };
                        println!(
                            "  {:<8} {:<28} {:<7} {} ({})",
                            "gk", c.name, action, c.path, c.kind
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
                for note in gk.notes() {
                    println!("note: {note}");
                }
                super::common::EXIT_OK
            }
            Err(e) => {
                super::common::print_compile_error(&e);
                super::common::EXIT_FAILED
            }
        }
    }
}
