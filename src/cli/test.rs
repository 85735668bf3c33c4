//! `regent test`: run every `test_*` rule of a bundle, like `opa test`.

use std::path::PathBuf;
use std::time::Instant;

use regent_core::compose::CompileOptions;

/// Arguments of `regent test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Bundle directories, composed in the order given; the embedded
    /// default bundle when omitted.
    #[arg(env = "REGENT_POLICIES", value_delimiter = ',')]
    pub dirs: Vec<PathBuf>,
    /// Compose the embedded default bundle under the directories (its tests
    /// run too).
    #[arg(long, env = "REGENT_WITH_DEFAULT_BUNDLE")]
    pub with_default_bundle: bool,
    /// Print passing tests too.
    #[arg(long, short)]
    pub verbose: bool,
    /// Only run tests whose rule path contains this text.
    #[arg(long)]
    pub run: Option<String>,
    /// The limits each test rule (and the bundle's warm-up) runs under.
    #[command(flatten)]
    pub limits: super::common::LimitArgs,
}

impl TestArgs {
    /// Runs the tests; exit 1 when any fails.
    pub fn run(self) -> u8 {
        let Self {
            dirs,
            with_default_bundle,
            verbose,
            run,
            limits,
        } = self;
        let limits = limits.limits();
        let bundle = match super::common::load_bundle(
            &dirs,
            with_default_bundle,
            CompileOptions {
                include_tests: true,
                interpreter_only: false,
                limits,
            },
        ) {
            Ok(b) => b,
            Err(e) => {
                super::common::print_compile_error(&e);
                return super::common::EXIT_FAILED;
            }
        };
        let (mut passed, mut failed) = (0usize, 0usize);
        for case in bundle.tests() {
            if run.as_deref().is_some_and(|r| !case.name.contains(r)) {
                continue;
            }
            let started = Instant::now();
            let result = bundle.run_test_printing(case, limits);
            let took = started.elapsed();
            let show_prints = |prints: &[String]| {
                for p in prints {
                    println!("  print: {p}");
                }
            };
            match result.outcome {
                Ok(true) => {
                    passed += 1;
                    if verbose {
                        println!("PASS: {} ({:.1?})", case.name, took);
                        show_prints(&result.prints);
                    }
                }
                Ok(false) => {
                    failed += 1;
                    println!(
                        "FAIL: {} at {}:{} ({:.1?})",
                        case.name, case.path, case.line, took
                    );
                    for line in bundle.explain_test(case, limits) {
                        println!("  {line}");
                    }
                    show_prints(&result.prints);
                }
                Err(e) => {
                    failed += 1;
                    println!(
                        "ERROR: {} at {}:{}: {}",
                        case.name,
                        case.path,
                        case.line,
                        e.trim()
                    );
                    show_prints(&result.prints);
                }
            }
        }
        println!("{}", "-".repeat(80));
        let total = passed + failed;
        if total == 0 {
            println!("no tests found in {}", bundle.origin());
            return super::common::EXIT_FAILED;
        }
        println!("PASS: {passed}/{total}");
        if failed > 0 {
            println!("FAIL: {failed}/{total}");
            super::common::EXIT_FAILED
        } else {
            super::common::EXIT_OK
        }
    }
}
