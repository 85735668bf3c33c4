package validate.resource_limits_test

import data.test.fixtures
import data.validate.resource_limits as policy
import rego.v1

test_denies_limits_above_maximum if {
	spec := fixtures.spec_with_container({"resources": {"limits": {"cpu": "8", "memory": "16Gi"}}})
	violations := policy.violation with input as fixtures.review("Deployment", spec)
	{v.path | some v in violations} == {
		"spec.template.spec.containers[0].resources.limits.cpu",
		"spec.template.spec.containers[0].resources.limits.memory",
	}
}

test_denies_requests_above_maximum if {
	spec := fixtures.spec_with_container({"resources": {"requests": {"cpu": "4500m"}}})
	count(policy.violation) == 1 with input as fixtures.review("Pod", spec)
}

test_allows_limits_at_maximum if {
	spec := fixtures.spec_with_container({"resources": {"limits": {"cpu": 4, "memory": "8Gi"}}})
	count(policy.violation) == 0 with input as fixtures.review("Pod", spec)
}

test_maximum_comes_from_data if {
	count(policy.violation) == 1 with input as fixtures.review("Pod", fixtures.good_spec)
		with data.validate.resource_limits.parameters.maximum as {"memory": "256Mi"}
}
