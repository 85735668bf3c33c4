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
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize, Default,
)]
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
    /// The weaker of two (`deny` is the strongest, `off` the weakest): what
    /// a violation that lowers its policy's enforcement does.
    pub fn weaker(self, other: Self) -> Self {
        self.max(other)
    }

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
    /// The control of the policy it belongs to, when the policy has
    /// controls (`host_ports` of `pod_security`): an exception may name
    /// one control (`pod_security/host_ports`) rather than the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// A weaker enforcement for this violation than its policy's (`warn`,
    /// `dryrun`): a policy with several levels, such as Pod Security's
    /// warn and audit modes. Never stronger than the policy's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
}

impl Violation {
    /// The violation as the user sees it: `[policy] path: what is wrong. Fix: how.`
    pub fn line(&self, policy: &str) -> String {
        let mut s = format!("[{policy}] ");
        if let Some(path) = &self.path {
            s.push_str(path);
            s.push_str(": ");
        }
        s.push_str(self.msg.trim_end_matches('.'));
        if let Some(fix) = &self.fix {
            s.push_str(". Fix: ");
            s.push_str(fix.trim_end_matches('.'));
        }
        s.push('.');
        s
    }
}

/// The line for a policy (or Constraint) that could not be evaluated, as
/// a warning, a denial line or an audit result:
/// `[policy] could not be evaluated: <why>`.
pub fn error_line(policy: &str, error: &EvalError) -> String {
    match error {
        EvalError::Implied { by, error } => {
            format!("[{policy}] [Implied by {by}] could not be evaluated: {error}")
        }
        _ => format!("[{policy}] could not be evaluated: {error}"),
    }
}

/// How serious a policy's violation is, in PolicyReport words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// `critical`
    Critical,
    /// `high`
    High,
    /// `medium`
    Medium,
    /// `low`
    Low,
    /// `info`
    Info,
}

impl Severity {
    /// The lower-case name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
        }
    }

    /// Reads a name (`high`, `Medium`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Some(Self::Critical),
            "high" => Some(Self::High),
            "medium" => Some(Self::Medium),
            "low" => Some(Self::Low),
            "info" => Some(Self::Info),
            _ => None,
        }
    }
}

/// What audit says of one policy (or one of its violations) for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// The policy applies and finds nothing wrong.
    Pass,
    /// A violation of a policy that denies (or would, from `dryrun`).
    Fail,
    /// A violation of a policy that warns.
    Warn,
    /// The policy applies but cannot be judged on an object at rest.
    Skip,
    /// The evaluation failed.
    Error,
    /// Admitted now, the object would be changed by this mutating policy or
    /// Gatekeeper mutator: drift from today's defaults, not a failure.
    Mutate,
}

impl AuditOutcome {
    /// The name in metrics, logs and `regent audit`'s output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Warn => "warn",
            Self::Skip => "skip",
            Self::Error => "error",
            Self::Mutate => "mutate",
        }
    }

    /// The PolicyReport `result`, which has no value for a mutation: a
    /// would-be mutation is a `pass` carrying the `mutation` property.
    pub fn report_result(self) -> &'static str {
        match self {
            Self::Mutate => "pass",
            other => other.as_str(),
        }
    }

    /// Every PolicyReport result, in the order of a report's summary
    /// ([`AuditOutcome::Mutate`] counts as a pass there).
    pub const ALL: [Self; 5] = [Self::Pass, Self::Fail, Self::Warn, Self::Skip, Self::Error];
}

/// One result of auditing one object: a policy that passed, one of its
/// violations, a skip or an error.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditResult {
    /// The native policy's name, or the Constraint's.
    pub policy: String,
    /// `violation` for native policies, the Constraint kind for Gatekeeper,
    /// `mutation` for a would-be mutation.
    pub rule: String,
    /// What audit says.
    pub result: AuditOutcome,
    /// The policy's enforcement (`deny`, `warn`, `dryrun`) at this point.
    #[serde(serialize_with = "enforcement_name")]
    pub enforcement: Enforcement,
    /// The line a developer sees at admission (`[policy] path: what. Fix:
    /// how.`), the reason of a skip or an error; empty for a pass.
    pub message: String,
    /// The field path of a violation, when the policy gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How serious a violation is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// What the policy is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// More about the result, as a report's `properties` (the exception
    /// that covers a violation: `exception`, `owner`, `expires`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub properties: std::collections::BTreeMap<String, String>,
}

fn enforcement_name<S: serde::Serializer>(e: &Enforcement, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(e.as_str())
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
    /// regorus reported an error (a builtin failed, a conflict, ...). The
    /// text is kept whole (its `Debug` shows it); the message a user sees
    /// leaves out the bytecode VM's internals (`(pc=222)`), which they
    /// cannot act on.
    #[error("policy evaluation failed: {}", user_text(.0))]
    Failed(String),
    /// An error in the review of an object an ExpansionTemplate implied
    /// (a workload's Pod): it carries the expansion's name, as the
    /// violations found there do (`[Implied by <name>]`).
    #[error("{error}")]
    Implied {
        /// The ExpansionTemplate.
        by: String,
        /// The error.
        error: Box<EvalError>,
    },
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

/// An engine message without the bytecode VM's program counters
/// (` (pc=222)`).
pub fn user_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" (pc=") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 5..];
        match after.find(')') {
            Some(j) if after[..j].chars().all(|c| c.is_ascii_digit()) => rest = &after[j + 1..],
            _ => {
                out.push_str(" (pc=");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl EvalError {
    /// Whether a limit (time or memory) stopped the evaluation: the
    /// request's budget is spent, for every policy.
    pub fn is_limit(&self) -> bool {
        match self {
            Self::Implied { error, .. } => error.is_limit(),
            _ => matches!(self, Self::Timeout(_) | Self::MemoryLimit(_)),
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::MemoryLimit(_) => "memory",
            Self::Failed(_) => "error",
            Self::Malformed { .. } => "malformed",
            Self::Mutation(_) => "patch",
            Self::NotConverging { .. } => "not_converging",
            Self::Implied { error, .. } => error.reason(),
        }
    }
}
