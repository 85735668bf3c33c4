package validate.privilege_escalation_test

import data.test.fixtures
import data.validate.privilege_escalation as policy
import rego.v1

test_flags_unset_and_true if {
	spec := object.union(fixtures.good_spec, {"containers": [
		{"name": "a", "image": "a:1"},
		{"name": "b", "image": "b:1", "securityContext": {"allowPrivilegeEscalation": true}},
		fixtures.good_container,
	]})
	violations := policy.violation with input as fixtures.review("StatefulSet", spec)
	{v.path | some v in violations} == {
		"spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation",
		"spec.template.spec.containers[1].securityContext.allowPrivilegeEscalation",
	}
}

test_allows_explicit_false if {
	count(policy.violation) == 0 with input as fixtures.review("Pod", fixtures.good_spec)
}
