//! Decisions: from a parsed review and a compiled bundle to the response the
//! API server gets. Pure and synchronous; the server and `regent eval` call the
//! same functions, so a decision on a laptop is the decision at admission.
//!
//! This is also where the denial text is written, the one thing an application
//! developer sees: one violation per line, each naming the policy, the field
//! path, what is wrong and how to fix it; sorted, de-duplicated and capped.

use std::collections::BTreeMap;
use std::time::Duration;

pub use crate::compose::validate::PolicyError;
use crate::compose::{CompiledBundle, Excepted, Exceptions, Fired, Load, Validation};
use crate::exceptions::ExceptionSet;
use crate::native::policy::Enforcement;
use crate::outcome::{error_line, EvalError, Violation};
use crate::review::{Response, Review};
use crate::runtime::Limits;

/// Most violation lines in one denial before "... and N more".
pub const MAX_DENIAL_LINES: usize = 20;
/// Longest warning, in characters; the API server may drop longer ones.
pub const MAX_WARNING_CHARS: usize = 256;

/// What an evaluation failure does to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailureMode {
    /// Refuse the request (fail closed).
    #[default]
    Deny,
    /// Admit it with a warning (fail open).
    Allow,
}

impl FailureMode {
    /// `deny` or `allow`, as the command line and the chart spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
        }
    }
}

impl std::str::FromStr for FailureMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deny" => Ok(Self::Deny),
            "allow" => Ok(Self::Allow),
            other => Err(format!("{other:?} is not a failure mode (deny or allow)")),
        }
    }
}

/// Settings every decision uses.
#[derive(Debug, Clone, Copy)]
pub struct DecideOptions {
    /// What an evaluation error, timeout or memory limit does.
    pub failure_mode: FailureMode,
    /// The evaluation time limit.
    pub timeout: Duration,
    /// The memory budget of each evaluation, in bytes (`None`: none).
    pub memory_limit: Option<u64>,
    /// How busy the process is: the server sets it per request (a request
    /// alone may evaluate its Gatekeeper templates on two threads).
    pub load: Load,
}

impl Default for DecideOptions {
    fn default() -> Self {
        Self {
            failure_mode: FailureMode::Deny,
            timeout: crate::runtime::limits::DEFAULT_TIME_LIMIT,
            memory_limit: Some(crate::runtime::limits::DEFAULT_MEMORY_LIMIT),
            load: Load::Alone,
        }
    }
}

impl DecideOptions {
    /// The evaluation limits these options set.
    pub fn limits(&self) -> Limits {
        Limits {
            time: Some(self.timeout),
            memory: self.memory_limit,
        }
    }
}

/// Which webhook a review came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// `POST /validate`.
    Validate,
    /// `POST /mutate`.
    Mutate,
}

impl Webhook {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }
}

/// The verdict, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted (possibly with warnings or a patch).
    Allowed,
    /// Refused by a policy.
    Denied,
    /// Evaluation failed; the failure mode decided.
    Failed,
}

impl Verdict {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }
}

/// A decision and what led to it.
#[derive(Debug)]
pub struct Decision {
    /// The response to send.
    pub response: Response,
    /// The verdict.
    pub verdict: Verdict,
    /// Policies that applied to the request.
    pub evaluated: Vec<String>,
    /// Policies that reported violations.
    pub fired: Vec<Fired>,
    /// The mutating policies and Gatekeeper mutators (`Kind/name`) that
    /// changed the object, each once, in the order they first did.
    pub mutated_by: Vec<String>,
    /// The mutated object (mutation only; `Null` otherwise).
    pub mutated_object: serde_json::Value,
    /// The evaluation error that decided the whole review, when there was one.
    pub error: Option<EvalError>,
    /// Policies whose own evaluation failed while the others decided.
    pub policy_errors: Vec<PolicyError>,
    /// Violations that policy exceptions cover (shown as warnings, never
    /// denying).
    pub excepted: Vec<Excepted>,
    /// The RFC 6902 operations in the response's patch (0 without one).
    pub patch_operations: usize,
}

impl Decision {
    /// A decision that is its response alone: allowed or denied as the
    /// response says, nothing evaluated, fired, mutated or excepted.
    pub fn answered(response: Response) -> Self {
        Decision {
            verdict: if response.allowed {
                Verdict::Allowed
            } else {
                Verdict::Denied
            },
            response,
            evaluated: Vec::new(),
            fired: Vec::new(),
            mutated_by: Vec::new(),
            mutated_object: serde_json::Value::Null,
            error: None,
            policy_errors: Vec::new(),
            excepted: Vec::new(),
            patch_operations: 0,
        }
    }
}

/// Decides a validating review with no referential data.
pub fn validate(bundle: &CompiledBundle, review: &Review, options: &DecideOptions) -> Decision {
    validate_with_inventory(bundle, review, options, &empty_inventory())
}

/// An empty `data.inventory`.
pub fn empty_inventory() -> regorus::Value {
    regorus::Value::from(crate::gatekeeper::inventory(std::iter::empty()))
}

/// Decides a validating review: the native policies, then the Gatekeeper
/// Constraints (with `inventory` as their `data.inventory`), in one verdict.
pub fn validate_with_inventory(
    bundle: &CompiledBundle,
    review: &Review,
    options: &DecideOptions,
    inventory: &regorus::Value,
) -> Decision {
    let none = ExceptionSet::empty();
    let exceptions = Exceptions {
        set: &none,
        help: None,
        now: 0,
    };
    validate_in(bundle, review, options, inventory, &exceptions)
}

/// [`validate_with_inventory`], with policy exceptions: a violation an
/// exception in force covers does not deny or warn; it is a warning naming
/// the exception, its owner and its end.
pub fn validate_in(
    bundle: &CompiledBundle,
    review: &Review,
    options: &DecideOptions,
    inventory: &regorus::Value,
    exceptions: &Exceptions<'_>,
) -> Decision {
    let uid = &review.meta.uid;
    // One budget for the request, whatever kinds of policy it meets.
    let budget = options.limits().start();
    let Validation {
        evaluated,
        mut fired,
        errors: policy_errors,
    } = match bundle.validate(&review.input, inventory, budget, options.load) {
        Ok(v) => v,
        Err(e) => return failed(Some(bundle.revision()), uid, e, options),
    };
    let excepted = crate::compose::except::apply(&mut fired, &review.input, exceptions);
    let lines = |enforcement: Enforcement| -> Vec<String> {
        let mut out: Vec<String> = fired
            .iter()
            .filter(|f| f.enforcement == enforcement)
            .flat_map(|f| f.violations.iter().map(move |v| f.line(v)))
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let mut denials = lines(Enforcement::Deny);
    let mut warnings = warning_lines(&fired);
    for e in &policy_errors {
        let line = error_line(&e.policy, &e.error);
        match (e.enforcement, options.failure_mode) {
            (Enforcement::Deny, FailureMode::Deny) => denials.push(line),
            (Enforcement::Deny, FailureMode::Allow) => warnings.push(format!(
                "{line} (not enforced on this request: failure mode allow)"
            )),
            (Enforcement::Warn, _) => warnings.push(line),
            // dryrun and off: counted and logged, never shown.
            _ => {}
        }
    }
    let mut warnings: Vec<String> = warnings
        .iter()
        .map(|w| truncate(w, MAX_WARNING_CHARS))
        .collect();
    warnings.extend(excepted_lines(&excepted));
    let mut response = if denials.is_empty() {
        Response::allow(uid)
    } else {
        let mut message = denial_message(&review.meta.describe(), &denials);
        if let Some(help) = exceptions.help {
            // Named as an exception names them: `Kind/name` for a
            // Constraint, `policy/control` for a policy with controls.
            let mut may: Vec<String> = fired
                .iter()
                .filter(|f| f.enforcement == Enforcement::Deny)
                .filter(|f| bundle.allows_exceptions(&f.reference()))
                .flat_map(|f| {
                    let reference = f.reference();
                    f.violations.iter().map(move |v| match &v.control {
                        Some(c) => format!("{reference}/{c}"),
                        None => reference.clone(),
                    })
                })
                .collect();
            may.sort();
            may.dedup();
            if !may.is_empty() {
                message.push_str(&format!(
                    "\nIf you need an exception to {}: {help}",
                    may.join(", ")
                ));
            }
        }
        Response::refuse(uid, 403, "Forbidden", message)
    };
    response.warnings = warnings;
    response.audit_annotations = audit(bundle, &fired);
    if !excepted.is_empty() {
        let mut ids: Vec<&str> = excepted.iter().map(|e| e.exception.as_str()).collect();
        ids.sort();
        ids.dedup();
        response
            .audit_annotations
            .insert("excepted-by".to_string(), ids.join(","));
    }
    if !policy_errors.is_empty() {
        let names: Vec<&str> = policy_errors.iter().map(|e| e.policy.as_str()).collect();
        response
            .audit_annotations
            .insert("policy-errors".to_string(), names.join(","));
    }
    Decision {
        evaluated,
        fired,
        policy_errors,
        excepted,
        ..Decision::answered(response)
    }
}

/// Decides a mutating review with no referential data.
pub fn mutate(bundle: &CompiledBundle, review: &Review, options: &DecideOptions) -> Decision {
    mutate_with_inventory(bundle, review, options, &regorus::Value::Undefined)
}

/// Decides a mutating review: the patch of every applicable Gatekeeper
/// mutator and native mutating policy (`inventory` gives mutators'
/// `namespaceSelector` the object's Namespace).
pub fn mutate_with_inventory(
    bundle: &CompiledBundle,
    review: &Review,
    options: &DecideOptions,
    inventory: &regorus::Value,
) -> Decision {
    let uid = &review.meta.uid;
    let outcome =
        match bundle.mutate_with_inventory(&review.input, inventory, options.limits().start()) {
            Ok(o) => o,
            Err(e) => return failed(Some(bundle.revision()), uid, e, options),
        };
    let mut response = Response::allow(uid);
    if let Some(patch) = &outcome.patch {
        match response.clone().with_patch(patch) {
            Ok(r) => response = r,
            Err(e) => {
                return failed(
                    Some(bundle.revision()),
                    uid,
                    EvalError::Failed(format!("encoding the patch: {e}")),
                    options,
                )
            }
        }
    }
    // A policy or mutator that changed the object in two rounds changed
    // one object: named once, counted once.
    let mut mutated_by: Vec<String> = Vec::new();
    for name in outcome.applied {
        if !mutated_by.contains(&name) {
            mutated_by.push(name);
        }
    }
    let mut audit = BTreeMap::new();
    audit.insert("bundle-revision".to_string(), bundle.revision().to_string());
    if !mutated_by.is_empty() {
        audit.insert("mutated-by".to_string(), mutated_by.join(","));
    }
    for w in &outcome.warnings {
        if !response.warnings.contains(w) {
            response.warnings.push(truncate(w, MAX_WARNING_CHARS));
        }
    }
    // A mutating policy that failed was left out; its own enforcement
    // decides what that does to the request, as for validating policies.
    let policy_errors: Vec<PolicyError> = outcome
        .errors
        .into_iter()
        .map(|(policy, enforcement, error)| PolicyError {
            policy,
            enforcement,
            error: EvalError::Failed(error),
        })
        .collect();
    let mut refusals = Vec::new();
    for e in &policy_errors {
        let line = error_line(&e.policy, &e.error);
        match (e.enforcement, options.failure_mode) {
            (Enforcement::Deny, FailureMode::Deny) => refusals.push(line),
            (Enforcement::Deny, FailureMode::Allow) => response.warnings.push(truncate(
                &format!("{line} (its change is left out: failure mode allow)"),
                MAX_WARNING_CHARS,
            )),
            (Enforcement::Warn, _) => response.warnings.push(truncate(
                &format!("{line} (its change is left out)"),
                MAX_WARNING_CHARS,
            )),
            _ => {}
        }
    }
    if !policy_errors.is_empty() {
        let names: Vec<&str> = policy_errors.iter().map(|e| e.policy.as_str()).collect();
        audit.insert("policy-errors".to_string(), names.join(","));
    }
    let verdict = if refusals.is_empty() {
        Verdict::Allowed
    } else {
        response = Response::refuse(
            uid,
            500,
            "InternalError",
            format!(
                "{} could not be mutated, so the request is refused (failure mode: deny); this is a policy failure, not a problem found in your object:\n{}",
                review.meta.describe(),
                refusals.join("\n")
            ),
        );
        Verdict::Failed
    };
    response.audit_annotations = audit;
    let patch_operations = match (&response.patch, &outcome.patch) {
        (Some(_), Some(patch)) => patch.0.len(),
        _ => 0,
    };
    Decision {
        patch_operations,
        response,
        verdict,
        evaluated: outcome.evaluated,
        fired: Vec::new(),
        mutated_by,
        mutated_object: outcome.object,
        error: (verdict == Verdict::Failed).then(|| EvalError::Failed(refusals.join("; "))),
        policy_errors,
        excepted: Vec::new(),
    }
}

/// One review taken through both webhooks, as the API server runs an
/// apply: the mutating webhook first, then the validating webhook on the
/// object it produced. `regent eval` prints it; `regent diff` compares two.
#[derive(Debug)]
pub struct Admission {
    /// The mutating webhook's decision.
    pub mutation: Decision,
    /// The validating webhook's decision, on the mutated object.
    pub validation: Decision,
    /// Whether the request is admitted (a failed mutation refuses it, as
    /// its failure mode says).
    pub allowed: bool,
    /// The refusal's message, when refused.
    pub message: Option<String>,
    /// Every warning, mutation's first.
    pub warnings: Vec<String>,
    /// The RFC 6902 patch from the object as sent to the mutated one.
    pub patch: Option<json_patch::Patch>,
}

/// Takes a review through both webhooks (see [`Admission`]).
pub fn admit(
    bundle: &CompiledBundle,
    review: &Review,
    options: &DecideOptions,
    inventory: &regorus::Value,
) -> Admission {
    let none = ExceptionSet::empty();
    let exceptions = Exceptions {
        set: &none,
        help: None,
        now: 0,
    };
    admit_in(bundle, review, options, inventory, &exceptions)
}

/// [`admit`], with policy exceptions applied to the validation (as the
/// server applies them).
pub fn admit_in(
    bundle: &CompiledBundle,
    review: &Review,
    options: &DecideOptions,
    inventory: &regorus::Value,
    exceptions: &Exceptions<'_>,
) -> Admission {
    let mutation = mutate_with_inventory(bundle, review, options, inventory);
    let mutated_review =
        if mutation.verdict != Verdict::Failed && !mutation.mutated_object.is_null() {
            review.with_object(&mutation.mutated_object)
        } else {
            None
        };
    let validation = validate_in(
        bundle,
        mutated_review.as_ref().unwrap_or(review),
        options,
        inventory,
        exceptions,
    );
    let mut warnings = mutation.response.warnings.clone();
    warnings.extend(validation.response.warnings.iter().cloned());
    let (allowed, message) = if !mutation.response.allowed {
        (
            false,
            mutation.response.status.as_ref().map(|s| s.message.clone()),
        )
    } else {
        (
            validation.response.allowed,
            validation
                .response
                .status
                .as_ref()
                .map(|s| s.message.clone()),
        )
    };
    let patch = patch_of(review, &mutation);
    Admission {
        mutation,
        validation,
        allowed,
        message,
        warnings,
        patch,
    }
}

/// The RFC 6902 patch a mutating decision makes to the review's object
/// (`None` when it changes nothing, or failed).
pub fn patch_of(review: &Review, mutation: &Decision) -> Option<json_patch::Patch> {
    if mutation.verdict == Verdict::Failed || mutation.mutated_object.is_null() {
        return None;
    }
    let original =
        serde_json::to_value(&review.input["request"]["object"]).unwrap_or(serde_json::Value::Null);
    crate::mutation::diff(&original, &mutation.mutated_object)
}

/// The decision when no bundle is live yet (a request that arrives before
/// readiness): the failure mode decides.
pub fn no_bundle(uid: &str, options: &DecideOptions) -> Decision {
    failed(
        None,
        uid,
        EvalError::Failed("no policy bundle is loaded yet".to_string()),
        options,
    )
}

fn failed(
    revision: Option<&str>,
    uid: &str,
    error: EvalError,
    options: &DecideOptions,
) -> Decision {
    let mut response = match options.failure_mode {
        FailureMode::Deny => Response::refuse(
            uid,
            500,
            "InternalError",
            format!(
                "regent could not evaluate its policies, so the request is refused (failure mode: deny). \
                 This is a webhook failure, not a problem found in your object; retry, or ask the cluster operator. Cause: {error}"
            ),
        ),
        FailureMode::Allow => {
            let mut r = Response::allow(uid);
            r.warnings = vec![truncate(
                &format!("regent could not evaluate its policies; admitted unchecked (failure mode: allow). Cause: {error}"),
                MAX_WARNING_CHARS,
            )];
            r
        }
    };
    if let Some(revision) = revision {
        response
            .audit_annotations
            .insert("bundle-revision".to_string(), revision.to_string());
    }
    response
        .audit_annotations
        .insert("evaluation-error".to_string(), error.reason().to_string());
    Decision {
        verdict: Verdict::Failed,
        error: Some(error),
        ..Decision::answered(response)
    }
}

fn audit(bundle: &CompiledBundle, fired: &[Fired]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("bundle-revision".to_string(), bundle.revision().to_string());
    for (key, enforcement) in [
        ("denied-by", Enforcement::Deny),
        ("warned-by", Enforcement::Warn),
        ("dryrun-by", Enforcement::Dryrun),
    ] {
        let names: Vec<&str> = fired
            .iter()
            .filter(|f| f.enforcement == enforcement)
            .map(|f| f.policy.as_str())
            .collect();
        if !names.is_empty() {
            out.insert(key.to_string(), names.join(","));
        }
    }
    out
}

/// One violation as a line: `[policy] path: what is wrong. Fix: how.`
pub fn line(policy: &str, v: &Violation) -> String {
    v.line(policy)
}

/// The warning lines of the policies that warn: one line per policy and
/// piece of advice, so advice repeated for every container of an object
/// (`set allowPrivilegeEscalation: false`) is said once, naming each
/// container; each line fits [`MAX_WARNING_CHARS`] with its fix whole.
/// Gatekeeper Constraints' messages are shown as they are, one per line.
fn warning_lines(fired: &[Fired]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fired.iter().filter(|f| f.enforcement == Enforcement::Warn) {
        if f.gatekeeper {
            out.extend(
                f.violations
                    .iter()
                    .map(|v| truncate(&f.line(v), MAX_WARNING_CHARS)),
            );
            continue;
        }
        // Violations with the same fix are one piece of advice.
        let mut groups: Vec<(Option<&str>, Vec<&Violation>)> = Vec::new();
        for v in &f.violations {
            match groups.iter_mut().find(|(fix, _)| *fix == v.fix.as_deref()) {
                Some((_, vs)) => vs.push(v),
                None => groups.push((v.fix.as_deref(), vec![v])),
            }
        }
        for (fix, vs) in groups {
            let line = match vs.as_slice() {
                [one] => fit(
                    &f.policy,
                    one.path.as_deref(),
                    &one.msg,
                    fix,
                    MAX_WARNING_CHARS,
                ),
                many => {
                    let msgs: Vec<&str> =
                        many.iter().map(|v| v.msg.trim_end_matches('.')).collect();
                    fit(&f.policy, None, &msgs.join("; "), fix, MAX_WARNING_CHARS)
                }
            };
            out.push(line);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `[policy] path: msg. Fix: fix.` within `max` characters: the fix is
/// kept whole and the rest shortened at a word boundary (the path goes
/// first); only a fix longer than the whole line is itself shortened, at a
/// word boundary too.
pub fn fit(policy: &str, path: Option<&str>, msg: &str, fix: Option<&str>, max: usize) -> String {
    let v = Violation {
        path: path.map(str::to_string),
        msg: msg.to_string(),
        fix: fix.map(str::to_string),
        control: None,
        enforcement: None,
    };
    let whole = v.line(policy);
    if whole.chars().count() <= max {
        return whole;
    }
    let head = format!("[{policy}] ");
    let tail = match fix {
        Some(fix) => format!(". Fix: {}.", fix.trim_end_matches('.')),
        None => ".".to_string(),
    };
    let room = max.saturating_sub(head.chars().count() + tail.chars().count());
    let body = match path {
        Some(p) if format!("{p}: {msg}").chars().count() <= room => format!("{p}: {msg}"),
        _ => msg.trim_end_matches('.').to_string(),
    };
    if room >= 12 {
        return format!("{head}{}{tail}", shorten(&body, room));
    }
    // The fix alone is too long: shorten it, and keep a little of the message.
    let body = shorten(&body, max / 3);
    let room = max.saturating_sub(head.chars().count() + body.chars().count() + 8);
    let fix = shorten(fix.unwrap_or_default().trim_end_matches('.'), room.max(1));
    format!("{head}{body}. Fix: {fix}")
}

/// `text` in at most `max` characters, cut at a word boundary with `…`.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i > cut.len() / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", at_word.trim_end_matches([' ', ',', ';', ':', '.']))
}

/// The warnings for excepted violations: one per policy and exception,
/// naming both, the owner and the end; the violations' own messages
/// shortened (at a word) to keep each line within [`MAX_WARNING_CHARS`].
fn excepted_lines(excepted: &[Excepted]) -> Vec<String> {
    let mut groups: Vec<(&Excepted, Vec<String>)> = Vec::new();
    for e in excepted {
        let original = e.line();
        let head_len = original.find("): ").map(|i| i + 3).unwrap_or(0);
        let (head, rest) = original.split_at(head_len);
        match groups
            .iter_mut()
            .find(|(g, _)| g.policy == e.policy && g.exception == e.exception)
        {
            Some((_, rests)) => rests.push(rest.to_string()),
            None => groups.push((e, vec![head.to_string(), rest.to_string()])),
        }
    }
    let mut out: Vec<String> = groups
        .into_iter()
        .map(|(_, parts)| {
            let head = &parts[0];
            let rest = parts[1..]
                .iter()
                .map(|r| r.trim_end_matches('.').to_string())
                .collect::<Vec<_>>()
                .join("; ");
            let room = MAX_WARNING_CHARS.saturating_sub(head.chars().count());
            format!("{head}{}", shorten(&rest, room.max(8)))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The denial text kubectl prints after "denied the request: ".
pub fn denial_message(object: &str, lines: &[String]) -> String {
    let n = lines.len();
    let mut out = format!(
        "{object} violates {} polic{}:",
        count_policies(lines),
        if count_policies(lines) == 1 {
            "y"
        } else {
            "ies"
        }
    );
    for l in lines.iter().take(MAX_DENIAL_LINES) {
        out.push('\n');
        out.push_str(l);
    }
    if n > MAX_DENIAL_LINES {
        out.push_str(&format!(
            "\n... and {} more (run `regent eval -f <manifest>` to see them all).",
            n - MAX_DENIAL_LINES
        ));
    }
    out
}

fn count_policies(lines: &[String]) -> usize {
    let names: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|l| l.split(']').next()).collect();
    names.len()
}

/// `s` in at most `max` characters, cut at a word boundary.
fn truncate(s: &str, max: usize) -> String {
    shorten(s, max)
}

#[cfg(test)]
#[allow(clippy::panic)]
#[path = "decision_tests.rs"]
mod tests;
