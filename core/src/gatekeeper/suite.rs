//! gator's test suites: `kind: Suite` files (`test.gatekeeper.sh/v1alpha1`)
//! run the way `gator verify` runs them.
//!
//! Per test: the template and the Constraint are loaded (a test marked
//! `invalid` expects the Constraint to be refused); per case: the object is
//! read (exactly one; an `AdmissionReview` is reviewed as its request), the
//! inventory objects become `data.inventory`, and the review's results are
//! checked against every assertion (`violations: yes | no | <n>`, optional
//! `message` regex). Paths are relative to the suite file. The review itself
//! is [`Set::review`], the same call the webhook makes.

use std::path::{Path, PathBuf};

use regorus::Value;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{inventory, Set, GATOR_POINT};
use crate::objects::{parse_policy_objects, split_documents, ObjectDoc};
use crate::runtime::Limits;

/// Errors finding or reading suites (per-case problems are case failures).
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A path could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// One case's outcome, as `regent verify --output json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    /// The suite file.
    pub suite: String,
    /// The test's name.
    pub test: String,
    /// The case's name (`(load)` for a test's template and Constraint).
    pub case: String,
    /// Every assertion held.
    pub passed: bool,
    /// Marked `skip`: neither passed nor failed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Why not, when it did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The violation messages the review produced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Suite {
    #[serde(default)]
    tests: Vec<Test>,
}

#[derive(Debug, Deserialize)]
struct Test {
    #[serde(default)]
    name: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    constraint: String,
    #[serde(default)]
    cases: Vec<Case>,
    #[serde(default)]
    invalid: bool,
    #[serde(default)]
    skip: bool,
}

#[derive(Debug, Deserialize)]
struct Case {
    #[serde(default)]
    name: String,
    #[serde(default)]
    object: String,
    #[serde(default)]
    inventory: Vec<String>,
    #[serde(default)]
    assertions: Vec<Assertion>,
    #[serde(default)]
    skip: bool,
}

/// One expectation on a case's results.
#[derive(Debug, Clone, Deserialize)]
pub struct Assertion {
    /// `yes` (at least one, the default), `no` (none), or an exact count.
    #[serde(default)]
    pub violations: Option<Json>,
    /// Only results whose message matches this regex count.
    #[serde(default)]
    pub message: Option<String>,
}

impl Assertion {
    /// Checks the messages of a review; the error says what was wanted.
    pub fn check(&self, messages: &[String]) -> Result<(), String> {
        let (matching, about) = match &self.message {
            Some(pattern) => {
                let re = regex::Regex::new(pattern).map_err(|e| {
                    format!("assertion message {pattern:?} is not a valid regex: {e}")
                })?;
                (
                    messages.iter().filter(|m| re.is_match(m)).count(),
                    format!(" matching {pattern:?}"),
                )
            }
            None => (messages.len(), String::new()),
        };
        let got = || {
            let mut s = format!("got {matching} violation(s){about}");
            if !messages.is_empty() {
                s.push_str(&format!(": {}", messages.join(" | ")));
            }
            s
        };
        match &self.violations {
            None => at_least_one(matching, got),
            Some(Json::String(s)) if s == "yes" => at_least_one(matching, got),
            Some(Json::String(s)) if s == "no" => {
                if matching == 0 {
                    Ok(())
                } else {
                    Err(format!("{}, want none", got()))
                }
            }
            Some(v) => {
                let want = v
                    .as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    .ok_or_else(|| {
                        format!("assertion violations must be yes, no or a count, got {v}")
                    })?;
                if matching as u64 == want {
                    Ok(())
                } else {
                    Err(format!("{}, want exactly {want}", got()))
                }
            }
        }
    }
}

fn at_least_one(matching: usize, got: impl Fn() -> String) -> Result<(), String> {
    if matching > 0 {
        Ok(())
    } else {
        Err(format!("{}, want at least one", got()))
    }
}

/// Finds the suite files under the given files and directories (walked
/// recursively): YAML files whose kind is `Suite`.
pub fn find_suites(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SuiteError> {
    let mut out = Vec::new();
    for root in paths {
        if root.is_file() {
            out.push(root.clone());
            continue;
        }
        if !root.exists() {
            return Err(SuiteError::Read {
                path: root.display().to_string(),
                message: "no such file or directory".to_string(),
            });
        }
        for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
            let entry = entry.map_err(|e| SuiteError::Read {
                path: root.display().to_string(),
                message: e.to_string(),
            })?;
            let name = entry.file_name().to_string_lossy();
            if !entry.file_type().is_file() || !(name.ends_with(".yaml") || name.ends_with(".yml"))
            {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if is_suite(&text) {
                out.push(entry.path().to_path_buf());
            }
        }
    }
    Ok(out)
}

fn is_suite(text: &str) -> bool {
    text.contains("test.gatekeeper.sh/")
        && split_documents(text).iter().any(|(_, doc)| {
            serde_yaml_ng::from_str::<Json>(doc).is_ok_and(|v| {
                v["kind"] == "Suite"
                    && v["apiVersion"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("test.gatekeeper.sh/"))
            })
        })
}

/// Runs one suite file. Only an unreadable or malformed suite file is an
/// error; everything else is a case that did not pass.
pub fn run_suite(path: &Path) -> Result<Vec<CaseResult>, SuiteError> {
    let label = path.display().to_string();
    let read_err = |message: String| SuiteError::Read {
        path: label.clone(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
    let suite: Suite = serde_yaml_ng::from_str(&text).map_err(|e| read_err(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for test in &suite.tests {
        let record = |case: &str, passed: bool, skipped: bool, why: Option<String>| CaseResult {
            suite: label.clone(),
            test: test.name.clone(),
            case: case.to_string(),
            passed,
            skipped,
            why,
            messages: Vec::new(),
        };
        if test.skip {
            out.push(record("(test)", false, true, None));
            continue;
        }
        let loaded = load_test(dir, test);
        if test.invalid {
            out.push(match loaded {
                Err(LoadError::Constraint(_)) => record("(invalid constraint)", true, false, None),
                Err(LoadError::Template(e)) => {
                    record("(invalid constraint)", false, false, Some(e))
                }
                Ok(_) => record(
                    "(invalid constraint)",
                    false,
                    false,
                    Some("the constraint loaded, but the test says it is invalid".to_string()),
                ),
            });
            continue;
        }
        let set = match loaded {
            Ok(set) => set,
            Err(LoadError::Template(e) | LoadError::Constraint(e)) => {
                if test.cases.is_empty() {
                    out.push(record("(load)", false, false, Some(e.clone())));
                }
                for case in &test.cases {
                    out.push(record(&case.name, false, false, Some(e.clone())));
                }
                continue;
            }
        };
        if let Some(note) = set.notes().first() {
            for case in &test.cases {
                out.push(record(&case.name, false, false, Some(note.clone())));
            }
            continue;
        }
        for case in &test.cases {
            if case.skip {
                out.push(record(&case.name, false, true, None));
                continue;
            }
            let (outcome, messages) = run_case(dir, &set, case);
            let mut r = match outcome {
                Ok(()) => record(&case.name, true, false, None),
                Err(why) => record(&case.name, false, false, Some(why)),
            };
            r.messages = messages;
            out.push(r);
        }
    }
    Ok(out)
}

enum LoadError {
    Template(String),
    Constraint(String),
}

fn read_docs(dir: &Path, file: &str) -> Result<(String, Vec<Json>), String> {
    let path = dir.join(file);
    let label = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{label}: {e}"))?;
    let mut out = Vec::new();
    for (start, doc) in split_documents(&text) {
        if doc.trim().is_empty() {
            continue;
        }
        let v: Json = serde_yaml_ng::from_str(&doc).map_err(|e| format!("{label}:{start}: {e}"))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok((label, out))
}

fn load_test(dir: &Path, test: &Test) -> Result<Set, LoadError> {
    let read = |file: &str| -> Result<Vec<ObjectDoc>, String> {
        let path = dir.join(file);
        let label = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{label}: {e}"))?;
        parse_policy_objects(&label, &text).map_err(|e| e.to_string())
    };
    let mut docs = read(&test.template).map_err(LoadError::Template)?;
    if docs.is_empty() {
        return Err(LoadError::Template(format!(
            "{}: no ConstraintTemplate",
            dir.join(&test.template).display()
        )));
    }
    Set::compile(&docs, Limits::default()).map_err(|e| LoadError::Template(e.to_string()))?;
    if !test.constraint.is_empty() {
        docs.extend(read(&test.constraint).map_err(LoadError::Constraint)?);
    }
    Set::compile(&docs, Limits::default()).map_err(|e| LoadError::Constraint(e.to_string()))
}

fn run_case(dir: &Path, set: &Set, case: &Case) -> (Result<(), String>, Vec<String>) {
    let mut messages = Vec::new();
    let outcome = check_case(dir, set, case, &mut messages);
    (outcome, messages)
}

fn check_case(
    dir: &Path,
    set: &Set,
    case: &Case,
    messages: &mut Vec<String>,
) -> Result<(), String> {
    let (label, objects) = read_docs(dir, &case.object)?;
    let [object] = objects.as_slice() else {
        return Err(format!(
            "{label}: holds {} objects; a case needs exactly one",
            objects.len()
        ));
    };
    let mut inventory_objects = Vec::new();
    for file in &case.inventory {
        inventory_objects.extend(read_docs(dir, file)?.1);
    }
    let inventory = Value::from(inventory(&inventory_objects));
    let request = request_for(object).map_err(|e| format!("{label}: {e}"))?;
    let reviewed = set
        .review_all(
            &request,
            &inventory,
            GATOR_POINT,
            Limits::default().start(),
            true,
        )
        .map_err(|e| format!("review failed: {e}"))?;
    messages.extend(reviewed.hits.into_iter().flat_map(|h| h.messages));
    // An evaluation error fails the case whatever the assertions say (as
    // in gator), one line per Constraint, as the webhook prints it.
    let mut failures: Vec<String> = reviewed
        .errors
        .iter()
        .map(|(c, e)| crate::outcome::error_line(&c.constraint, e))
        .collect();
    for (i, assertion) in case.assertions.iter().enumerate() {
        if let Err(e) = assertion.check(messages) {
            failures.push(format!("assertion {i}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// The `input.review` gator builds for an object under test (see
/// [`super::request_for_object`]).
pub fn request_for(object: &Json) -> Result<Value, String> {
    super::request_for_object(object)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn a(yaml: &str) -> Assertion {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn assertions_follow_gator() {
        let two = vec![
            "missing label owner".to_string(),
            "missing label team".to_string(),
        ];
        assert!(a("{}").check(&two).is_ok());
        assert!(a("{}").check(&[]).is_err());
        assert!(a("violations: yes").check(&two).is_ok());
        assert!(a("violations: no").check(&[]).is_ok());
        assert!(a("violations: no").check(&two).is_err());
        assert!(a("violations: 2").check(&two).is_ok());
        let e = a("violations: 1").check(&two).unwrap_err();
        assert!(e.contains("got 2") && e.contains("exactly 1"), "{e}");
        assert!(a("{violations: 1, message: owner}").check(&two).is_ok());
        assert!(a("{violations: no, message: '^team'}").check(&two).is_ok());
        assert!(a("{message: 'x('}").check(&two).is_err());
        assert!(a("violations: maybe").check(&two).is_err());
    }

    #[test]
    fn plain_objects_become_requests_like_gator_builds() {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"}});
        let r = request_for(&pod).unwrap();
        assert_eq!(r["kind"]["kind"], Value::from("Pod"));
        assert_eq!(r["kind"]["group"], Value::from(""));
        assert_eq!(r["namespace"], Value::from("ns"));
        assert_eq!(r["operation"], Value::from(""));
        let d = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d"}});
        let r = request_for(&d).unwrap();
        assert_eq!(r["kind"]["group"], Value::from("apps"));
        assert_eq!(r["namespace"], Value::Undefined);
    }
}
