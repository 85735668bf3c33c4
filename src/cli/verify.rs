//! `regent verify`: run gator test suites (`kind: Suite`), as `gator verify`.

use std::path::PathBuf;

use regent_core::gatekeeper::suite::{find_suites, run_suite, CaseResult};

/// Output format of `regent verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyOutput {
    /// One line per case.
    Text,
    /// A JSON array, one record per case.
    Json,
}

/// Arguments of `regent verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Suite files, or directories searched recursively for them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = VerifyOutput::Text)]
    pub output: VerifyOutput,
    /// Print passing cases too (text output).
    #[arg(long, short)]
    pub verbose: bool,
    /// Only run cases whose `test/case` name contains this text.
    #[arg(long)]
    pub run: Option<String>,
}

impl VerifyArgs {
    /// Runs the suites; exit 0 only when every assertion of every case held.
    pub fn run(self) -> u8 {
        let suites = match find_suites(&self.paths) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return super::common::EXIT_USAGE;
            }
        };
        if suites.is_empty() {
            eprintln!("error: no Suite files (kind: Suite, apiVersion: test.gatekeeper.sh/v1alpha1) found");
            return super::common::EXIT_USAGE;
        }
        let mut results: Vec<CaseResult> = Vec::new();
        let mut broken = 0usize;
        for suite in &suites {
            match run_suite(suite) {
                Ok(r) => results.extend(r),
                Err(e) => {
                    broken += 1;
                    results.push(CaseResult {
                        suite: suite.display().to_string(),
                        test: String::new(),
                        case: "(suite)".to_string(),
                        passed: false,
                        skipped: false,
                        why: Some(e.to_string()),
                        messages: Vec::new(),
                    });
                }
            }
        }
        if let Some(filter) = &self.run {
            results.retain(|r| format!("{}/{}", r.test, r.case).contains(filter.as_str()));
        }
        let passed = results.iter().filter(|r| r.passed).count();
        let skipped = results.iter().filter(|r| r.skipped).count();
        let failed = results.len() - passed - skipped;
        match self.output {
            VerifyOutput::Json => match serde_json::to_string_pretty(&results) {
                Ok(text) => println!("{text}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return super::common::EXIT_USAGE;
                }
            },
            VerifyOutput::Text => {
                for r in &results {
                    let name = format!("{} {}/{}", r.suite, r.test, r.case);
                    if r.skipped {
                        if self.verbose {
                            println!("SKIP {name}");
                        }
                    } else if r.passed {
                        if self.verbose {
                            println!("ok   {name}");
                        }
                    } else {
                        println!(
                            "FAIL {name}: {}",
                            r.why.as_deref().unwrap_or("assertion failed")
                        );
                    }
                }
                println!(
                    "{} suites{}, {} cases: {passed} passed, {failed} failed, {skipped} skipped",
                    suites.len(),
                    if broken > 0 {
                        format!(" ({broken} unreadable)")
                    } else {
                        String::new()
                    },
                    results.len()
                );
            }
        }
        if failed == 0 {
            super::common::EXIT_OK
        } else {
            super::common::EXIT_FAILED
        }
    }
}
