//! Exceptions applied to a decision: after evaluation, and for violations
//! only, each violation an exception in force covers is taken out of what
//! denies or warns and shown instead as a warning naming the exception,
//! its owner and its end (`[privileged] excepted by kube-system/cni-agent
//! (owner network-team, until 2027-01-31): ...`). A request with no
//! violation, or a process with no exception, does no work here.

use super::{CompiledBundle, Fired};
use crate::exceptions::{Catalogue, ExceptionSet, Target};
use crate::outcome::{Enforcement, Violation};

/// The exceptions a decision applies, and how it speaks of them.
#[derive(Debug, Clone, Copy)]
pub struct Exceptions<'a> {
    /// The exceptions in force.
    pub set: &'a ExceptionSet,
    /// Appended to a denial by a policy that allows exceptions: how to ask
    /// for one (`--exception-help`).
    pub help: Option<&'a str>,
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// One violation an exception covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excepted {
    /// The policy (`privileged`, or the Constraint's name).
    pub policy: String,
    /// Its enforcement.
    pub enforcement: Enforcement,
    /// The exception (`namespace/name`).
    pub exception: String,
    /// Its owner.
    pub owner: String,
    /// Its end, `YYYY-MM-DD`.
    pub until: String,
    /// Its end as written (RFC 3339).
    pub expires: String,
    /// Seconds to its end, when within the warning period.
    pub ending_in: Option<i64>,
    /// The violation it covers.
    pub violation: Violation,
    /// A Constraint's violation (shown verbatim).
    pub gatekeeper: bool,
}

impl Excepted {
    /// The warning a developer sees: `[policy] excepted by ns/name (owner
    /// O, until D[, expires in N days]): path: what is wrong` (the fix left
    /// out).
    pub fn line(&self) -> String {
        let ending = self
            .ending_in
            .map(|s| format!(", expires in {}", crate::exceptions::time_left_text(s)))
            .unwrap_or_default();
        // What is excepted, without the fix (the exception is the way
        // out for now; the line must fit kubectl's 256 characters).
        let original = if self.gatekeeper {
            self.violation.msg.clone()
        } else {
            let without_fix = Violation {
                fix: None,
                ..self.violation.clone()
            };
            let full = without_fix.line(&self.policy);
            full.strip_prefix(&format!("[{}] ", self.policy))
                .unwrap_or(&full)
                .trim_end_matches('.')
                .to_string()
        };
        format!(
            "[{}] excepted by {} (owner {}, until {}{ending}): {original}",
            self.policy, self.exception, self.owner, self.until
        )
    }
}

impl Fired {
    /// How an exception names this policy: a native policy by its name, a
    /// Constraint as `Kind/name`.
    pub fn reference(&self) -> String {
        match &self.kind {
            Some(kind) => format!("{kind}/{}", self.policy),
            None => self.policy.clone(),
        }
    }
}

/// Takes out of `fired` every violation an exception covers on the object
/// of `input` (an AdmissionReview); returns them. The object is read in
/// place (its labels or a container's name only when an exception needs
/// them).
pub fn apply(
    fired: &mut Vec<Fired>,
    input: &regorus::Value,
    exceptions: &Exceptions<'_>,
) -> Vec<Excepted> {
    if exceptions.set.is_empty() || fired.is_empty() {
        return Vec::new();
    }
    let request = &input["request"];
    let object = &request["object"];
    let text = |v: &regorus::Value| crate::runtime::text(v).unwrap_or_default().to_string();
    let (kind, name, namespace) = (
        text(&request["kind"]["kind"]),
        text(&request["name"]),
        text(&request["namespace"]),
    );
    // An object created with only `generateName` has no name yet: it is
    // matched as `<generateName>*`, as the audit names it.
    let name = if name.is_empty() {
        let meta = &object["metadata"];
        match crate::runtime::text(&meta["name"]) {
            Some(n) => n.to_string(),
            None => crate::runtime::text(&meta["generateName"])
                .map(|g| format!("{g}*"))
                .unwrap_or_default(),
        }
    } else {
        name
    };
    let target = Target {
        kind: &kind,
        name: &name,
        namespace: &namespace,
        object,
    };
    apply_to(fired, &target, exceptions)
}

/// [`apply`] for an object described by `target`: the exceptions that
/// cover the object are found once per policy that fired, then each
/// violation is checked against those only.
pub fn apply_to(
    fired: &mut Vec<Fired>,
    target: &Target<'_>,
    exceptions: &Exceptions<'_>,
) -> Vec<Excepted> {
    let mut out = Vec::new();
    if exceptions.set.is_empty() {
        return out;
    }
    let now = exceptions.now;
    for f in fired.iter_mut() {
        let reference = f.reference();
        let whole = exceptions.set.candidates(&reference, target, now);
        // Per control (Pod Security's `pod_security/<control>`), found once each.
        let mut by_control: Vec<(String, crate::exceptions::Candidates<'_>)> = Vec::new();
        let mut kept = Vec::with_capacity(f.violations.len());
        for v in std::mem::take(&mut f.violations) {
            let mut covered = None;
            if let Some(c) = &v.control {
                let key = format!("{reference}/{c}");
                let at = match by_control.iter().position(|(k, _)| *k == key) {
                    Some(i) => i,
                    None => {
                        let found = exceptions.set.candidates(&key, target, now);
                        by_control.push((key, found));
                        by_control.len() - 1
                    }
                };
                covered = by_control[at].1.covering(v.path.as_deref(), target, now);
            }
            if covered.is_none() && !whole.is_empty() {
                covered = whole.covering(v.path.as_deref(), target, now);
            }
            match covered {
                Some(c) => out.push(Excepted {
                    policy: f.policy.clone(),
                    enforcement: f.enforcement,
                    exception: c.exception.id(),
                    owner: c.exception.owner.clone(),
                    until: c.exception.until(),
                    expires: c.exception.expires_text.clone(),
                    ending_in: c.ending_in,
                    violation: v,
                    gatekeeper: f.gatekeeper,
                }),
                None => kept.push(v),
            }
        }
        f.violations = kept;
    }
    fired.retain(|f| !f.violations.is_empty());
    out
}

impl CompiledBundle {
    /// What an exception may name in this bundle: every validating native
    /// policy, every Constraint (`Kind/name`), each with whether it allows
    /// exceptions.
    pub fn catalogue(&self) -> Catalogue {
        let mut c = Catalogue::default();
        for p in self
            .policies()
            .iter()
            .filter(|p| p.kind == crate::native::policy::PolicyKind::Validate)
        {
            c.add(p.name.clone(), p.exceptions_forbidden);
            for control in &p.controls {
                c.add(format!("{}/{control}", p.name), p.exceptions_forbidden);
            }
        }
        for k in self.gatekeeper.constraints() {
            c.add(format!("{}/{}", k.kind, k.name), k.exceptions_forbidden);
        }
        c
    }

    /// Whether a policy allows exceptions, by the reference an exception
    /// names it with (`privileged`, `Kind/name` for a Constraint).
    pub fn allows_exceptions(&self, reference: &str) -> bool {
        match reference.split_once('/') {
            None => self
                .policies()
                .iter()
                .find(|p| p.name == reference)
                .is_some_and(|p| !p.exceptions_forbidden),
            Some((kind, name)) => self
                .gatekeeper
                .constraints()
                .iter()
                .find(|k| k.kind == kind && k.name == name)
                .is_some_and(|k| !k.exceptions_forbidden),
        }
    }
}
