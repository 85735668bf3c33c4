//! What changes between two bundles' decisions on the same review: which
//! objects become denied or stop being denied, which warnings come and go,
//! which patches differ, and which policies cause each change.
//!
//! Pure: `regent diff` compares the [`Admission`]s of two bundles in CI;
//! the server compares the live bundle's decision with the candidate's
//! (shadow evaluation); the audit compares their results on every object.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value as Json;

use crate::compose::decision::{Admission, Decision};
use crate::outcome::{AuditOutcome, AuditResult, Enforcement};

/// A kind of change between two decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Admitted before, refused now.
    NewlyDenied,
    /// Refused before, admitted now.
    NoLongerDenied,
    /// Refused both times, for other reasons.
    DenialChanged,
    /// A warning that was not there.
    NewWarning,
    /// A warning that is gone.
    RemovedWarning,
    /// The mutation patch differs.
    PatchDiffers,
}

impl Change {
    /// The metric and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewlyDenied => "newly_denied",
            Self::NoLongerDenied => "no_longer_denied",
            Self::DenialChanged => "denial_changed",
            Self::NewWarning => "new_warning",
            Self::RemovedWarning => "removed_warning",
            Self::PatchDiffers => "patch_differs",
        }
    }

    /// Every change, in report order.
    pub const ALL: [Self; 6] = [
        Self::NewlyDenied,
        Self::NoLongerDenied,
        Self::DenialChanged,
        Self::NewWarning,
        Self::RemovedWarning,
        Self::PatchDiffers,
    ];
}

/// One bundle's decision on one review, as compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    /// Admitted.
    pub allowed: bool,
    /// The denial lines (`[policy] ...`), sorted.
    pub denials: Vec<String>,
    /// The warnings, sorted.
    pub warnings: Vec<String>,
    /// The patch operations.
    pub patch: Vec<Json>,
    /// Policies that deny.
    #[serde(skip)]
    pub denied_by: BTreeSet<String>,
    /// Policies that changed the object.
    #[serde(skip)]
    pub mutated_by: BTreeSet<String>,
}

impl Side {
    /// The validating half of a decision (`/validate`).
    pub fn of_validation(d: &Decision) -> Self {
        let mut side = Self {
            allowed: d.response.allowed,
            ..Self::default()
        };
        side.add_validation(d);
        side
    }

    /// The mutating half of a decision (`/mutate`).
    pub fn of_mutation(d: &Decision, patch: Option<&json_patch::Patch>) -> Self {
        Self {
            allowed: d.response.allowed,
            patch: ops(patch),
            mutated_by: d.mutated_by.iter().cloned().collect(),
            warnings: d.response.warnings.clone(),
            ..Self::default()
        }
    }

    /// A whole apply (mutation, then validation).
    pub fn of_admission(a: &Admission) -> Self {
        let mut side = Self {
            allowed: a.allowed,
            patch: ops(a.patch.as_ref()),
            mutated_by: a.mutation.mutated_by.iter().cloned().collect(),
            ..Self::default()
        };
        side.add_validation(&a.validation);
        if !a.mutation.response.allowed {
            if let Some(status) = &a.mutation.response.status {
                side.denials.push(status.message.clone());
            }
        }
        side.warnings
            .extend(a.mutation.response.warnings.iter().cloned());
        side.warnings.sort();
        side.warnings.dedup();
        side.denials.sort();
        side.denials.dedup();
        side
    }

    /// An audit of an object as it is: its denying violations (and
    /// evaluation errors, which refuse at admission under the default
    /// failure mode) are denials, its warning ones warnings. Audit does not
    /// mutate; dry-run violations deny nothing.
    pub fn of_audit(results: &[AuditResult]) -> Self {
        let mut side = Self::default();
        for r in results {
            match (r.result, r.enforcement) {
                (AuditOutcome::Fail, Enforcement::Deny) => {
                    side.denials.push(r.message.clone());
                    side.denied_by.insert(r.policy.clone());
                }
                (AuditOutcome::Error, Enforcement::Deny) => {
                    side.denials
                        .push(format!("[{}] evaluation failed: {}", r.policy, r.message));
                    side.denied_by.insert(r.policy.clone());
                }
                (AuditOutcome::Warn, _) => side.warnings.push(r.message.clone()),
                _ => {}
            }
        }
        side.allowed = side.denials.is_empty();
        side.denials.sort();
        side.denials.dedup();
        side.warnings.sort();
        side.warnings.dedup();
        side
    }

    fn add_validation(&mut self, d: &Decision) {
        for f in &d.fired {
            for v in &f.violations {
                if f.enforcement == Enforcement::Deny {
                    self.denials.push(f.line(v));
                    self.denied_by.insert(f.policy.clone());
                }
            }
        }
        if let Some(e) = &d.error {
            // A failed evaluation refuses or warns through the failure mode.
            if !d.response.allowed {
                self.denials.push(format!("(evaluation failed) {e}"));
            }
        }
        self.warnings.extend(d.response.warnings.iter().cloned());
        self.warnings.sort();
        self.warnings.dedup();
        self.denials.sort();
        self.denials.dedup();
    }
}

fn ops(patch: Option<&json_patch::Patch>) -> Vec<Json> {
    patch
        .and_then(|p| serde_json::to_value(p).ok())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// What changed for one review.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    /// The kinds of change, in order.
    pub changes: Vec<Change>,
    /// Denial lines only the new bundle has.
    pub denials_added: Vec<String>,
    /// Denial lines only the old bundle had.
    pub denials_removed: Vec<String>,
    /// Warnings only the new bundle has.
    pub warnings_added: Vec<String>,
    /// Warnings only the old bundle had.
    pub warnings_removed: Vec<String>,
    /// Patch operations only the new bundle makes.
    pub patch_added: Vec<Json>,
    /// Patch operations only the old bundle made.
    pub patch_removed: Vec<Json>,
    /// The policies behind each change.
    pub policies: BTreeMap<Change, BTreeSet<String>>,
}

impl Diff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

fn minus<T: PartialEq + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().filter(|x| !b.contains(x)).cloned().collect()
}

/// The policy a line names (`[policy] ...`), if it names one.
pub fn policy_of(line: &str) -> Option<String> {
    let rest = line.strip_prefix('[')?;
    let (name, _) = rest.split_once(']')?;
    (!name.is_empty() && !name.contains(' ')).then(|| name.to_string())
}

/// Compares two decisions on the same review.
pub fn compare(before: &Side, after: &Side) -> Diff {
    let mut d = Diff {
        denials_added: minus(&after.denials, &before.denials),
        denials_removed: minus(&before.denials, &after.denials),
        warnings_added: minus(&after.warnings, &before.warnings),
        warnings_removed: minus(&before.warnings, &after.warnings),
        patch_added: minus(&after.patch, &before.patch),
        patch_removed: minus(&before.patch, &after.patch),
        ..Diff::default()
    };
    let mut note = |change: Change, policies: BTreeSet<String>| {
        d.changes.push(change);
        d.policies.insert(change, policies);
    };
    match (before.allowed, after.allowed) {
        (true, false) => note(
            Change::NewlyDenied,
            after
                .denied_by
                .difference(&before.denied_by)
                .cloned()
                .collect(),
        ),
        (false, true) => note(
            Change::NoLongerDenied,
            before
                .denied_by
                .difference(&after.denied_by)
                .cloned()
                .collect(),
        ),
        (false, false) if before.denials != after.denials => note(
            Change::DenialChanged,
            before
                .denied_by
                .symmetric_difference(&after.denied_by)
                .cloned()
                .collect(),
        ),
        _ => {}
    }
    // A warning line names its policy: `[policy] ...`.
    let warn_policies = |lines: &[String]| -> BTreeSet<String> {
        lines.iter().filter_map(|l| policy_of(l)).collect()
    };
    if !d.warnings_added.is_empty() {
        let p = warn_policies(&d.warnings_added);
        note(Change::NewWarning, p);
    }
    if !d.warnings_removed.is_empty() {
        let p = warn_policies(&d.warnings_removed);
        note(Change::RemovedWarning, p);
    }
    if !d.patch_added.is_empty() || !d.patch_removed.is_empty() {
        // The mutators that changed the object under one bundle only are
        // the cause; when the same ones ran on both sides, any of them may be.
        let only_one_side: BTreeSet<String> = before
            .mutated_by
            .symmetric_difference(&after.mutated_by)
            .cloned()
            .collect();
        let p = if only_one_side.is_empty() {
            before
                .mutated_by
                .union(&after.mutated_by)
                .cloned()
                .collect()
        } else {
            only_one_side
        };
        note(Change::PatchDiffers, p);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(allowed: bool, denied: &[&str], warnings: &[&str]) -> Side {
        Side {
            allowed,
            denials: denied.iter().map(|p| format!("[{p}] x.")).collect(),
            denied_by: denied.iter().map(|p| p.to_string()).collect(),
            warnings: warnings.iter().map(|p| format!("[{p}] w.")).collect(),
            ..Side::default()
        }
    }

    #[test]
    fn classifies_each_change_with_its_policies() {
        let d = compare(&side(true, &[], &["a"]), &side(false, &["tag"], &["b"]));
        assert_eq!(
            d.changes,
            [
                Change::NewlyDenied,
                Change::NewWarning,
                Change::RemovedWarning
            ]
        );
        assert_eq!(
            d.policies[&Change::NewlyDenied],
            BTreeSet::from(["tag".to_string()])
        );
        assert_eq!(d.denials_added, ["[tag] x."]);
        let d = compare(&side(false, &["tag"], &[]), &side(true, &[], &[]));
        assert_eq!(d.changes, [Change::NoLongerDenied]);
        let d = compare(
            &side(false, &["tag"], &[]),
            &side(false, &["tag", "priv"], &[]),
        );
        assert_eq!(d.changes, [Change::DenialChanged]);
        assert_eq!(
            d.policies[&Change::DenialChanged],
            BTreeSet::from(["priv".to_string()])
        );
        assert!(compare(&side(true, &[], &["a"]), &side(true, &[], &["a"])).is_empty());
        let mut patched = side(true, &[], &[]);
        patched.patch = vec![serde_json::json!({"op": "add", "path": "/a", "value": 1})];
        patched.mutated_by.insert("defaults".into());
        let d = compare(&side(true, &[], &[]), &patched);
        assert_eq!(d.changes, [Change::PatchDiffers]);
        assert_eq!(d.patch_added.len(), 1);
    }
}
