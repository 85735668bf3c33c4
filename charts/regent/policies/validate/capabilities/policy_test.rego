package validate.capabilities_test

import data.test.fixtures
import data.validate.capabilities as policy
import rego.v1

test_denies_dangerous_capabilities_with_or_without_prefix if {
	spec := fixtures.spec_with_container({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CAP_SYS_ADMIN", "net_raw"]}}})
	violations := policy.violation with input as fixtures.review("Pod", spec)
	{v.path | some v in violations} == {
		"spec.containers[0].securityContext.capabilities.add[1]",
		"spec.containers[0].securityContext.capabilities.add[2]",
	}
}

test_allows_harmless_capabilities if {
	spec := fixtures.spec_with_container({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}})
	count(policy.violation) == 0 with input as fixtures.review("Pod", spec)
}

test_forbidden_list_comes_from_data if {
	spec := fixtures.spec_with_container({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}})
	count(policy.violation) == 1 with input as fixtures.review("Pod", spec)
		with data.validate.capabilities.parameters.forbidden as ["NET_BIND_SERVICE"]
}
