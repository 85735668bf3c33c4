//! What a Rego module's text says about itself, read without compiling it:
//! whether it defines a rule, and whether it reads what only an admission
//! request has (so audit, which judges objects at rest, skips it). Shared by
//! both kinds of policy: native packages and Gatekeeper templates.

/// Why audit cannot judge a policy whose Rego is `source` on an object at
/// rest, if it cannot: it reads the request's `userInfo` (who is asking) or
/// `oldObject` (what it was before), which a stored object does not have.
/// Found by reading the source for those names, comments aside; a policy
/// that reaches them only through a helper package it does not declare
/// itself is not seen (docs/audit.md).
pub fn audit_skip_reason(source: &str) -> Option<String> {
    let code: String = source
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut reads = Vec::new();
    for field in ["userInfo", "oldObject"] {
        if code.contains(field) {
            reads.push(field);
        }
    }
    (!reads.is_empty()).then(|| {
        format!(
            "reads {} of the admission request, which an object at rest does not have",
            reads.join(" and ")
        )
    })
}

/// True when the module source defines `rule` at the top level, in either
/// Rego syntax (`rule contains`, `rule[x] {`, `rule := ...`, `rule if ...`).
pub fn defines_rule(source: &str, rule: &str) -> bool {
    source.lines().any(|line| {
        line.strip_prefix(rule)
            .is_some_and(|rest| rest.starts_with([' ', '\t', '[', '{', ':', '=']))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn audit_skips_policies_that_read_the_request_only() {
        assert!(audit_skip_reason("x if input.request.userInfo.username == \"a\"").is_some());
        let r = audit_skip_reason("x if input.request.oldObject.spec != input.request.object.spec")
            .unwrap();
        assert!(r.contains("oldObject"), "{r}");
        assert_eq!(
            audit_skip_reason("# userInfo is not read here\nx := 1"),
            None
        );
        assert_eq!(audit_skip_reason("x := input.request.object"), None);
    }

    #[test]
    fn detects_rule_definitions_in_both_syntaxes() {
        assert!(defines_rule(
            "package x\nviolation contains v if { true }\n",
            "violation"
        ));
        assert!(defines_rule(
            "package x\nviolation[v] {\n v := 1\n}\n",
            "violation"
        ));
        assert!(defines_rule("package x\npatch := []\n", "patch"));
        assert!(!defines_rule(
            "package x\nviolations contains v if { true }\n",
            "violation"
        ));
        assert!(!defines_rule(
            "package x\n# violation contains\n",
            "violation"
        ));
    }
}
