//! What evaluating policies yields, in words every kind of policy shares:
//! an [`Enforcement`] (what a violation does), [`Violation`]s, and the
//! [`EvalError`]s that are webhook failures rather than verdicts.
//!
//! Native policies, Gatekeeper Constraints and the decisions built from
//! them all speak this vocabulary; it depends on nothing but the runtime's
//! error and the mutation layer's.

use std::time::Duration;

use serde::Deserialize;

use crate::mutation::MutationError;
use crate::runtime::RunError;

/// What a policy's violations do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Enforcement {
    /// Reject the request.
    #[default]
    Deny,
    /// Admit it with a warning kubectl prints.
    Warn,
    /// Admit it silently; log and count the violation.
    Dryrun,
    /// Do not evaluate the policy at all.
    Off,
}

impl Enforcement {
    /// The lower-case name used in data, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::Dryrun => "dryrun",
            Self::Off => "off",
        }
    }
}

/// One violation reported by a validating policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Violation {
    /// The field path in the object under review, when the policy gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong.
    pub msg: String,
    /// How to fix it, when the policy said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Errors evaluating a request. These are webhook failures, not verdicts on
/// the object; the configured failure mode decides what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The evaluation ran out of time.
    #[error("policy evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// The evaluation allocated more than its memory budget (bytes).
    #[error("policy evaluation exceeded its memory limit of {}", crate::runtime::limits::bytes(*.0))]
    MemoryLimit(u64),
    /// regorus reported an error (a builtin failed, a conflict, ...).
    #[error("policy evaluation failed: {0}")]
    Failed(String),
    /// A policy returned something of the wrong shape.
    #[error("policy {policy} returned a malformed result: {message}")]
    Malformed {
        /// The policy.
        policy: String,
        /// What was wrong.
        message: String,
    },
    /// A mutating policy's patch cannot be applied.
    #[error(transparent)]
    Mutation(#[from] MutationError),
    /// Mutating policies kept changing the object.
    #[error(
        "mutation did not settle after {rounds} rounds; still changing the object: {policies}"
    )]
    NotConverging {
        /// Rounds run.
        rounds: usize,
        /// The policies applied in the last rounds.
        policies: String,
    },
}

impl From<RunError> for EvalError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Timeout(d) => Self::Timeout(d),
            RunError::MemoryLimit(n) => Self::MemoryLimit(n),
            RunError::Failed(text) => Self::Failed(text),
        }
    }
}

impl EvalError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::MemoryLimit(_) => "memory",
            Self::Failed(_) => "error",
            Self::Malformed { .. } => "malformed",
            Self::Mutation(_) => "patch",
            Self::NotConverging { .. } => "not_converging",
        }
    }
}
