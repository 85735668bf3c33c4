package mutate.default_resources_test

import data.mutate.default_resources as policy
import data.test.fixtures
import rego.v1

bare := {"name": "app", "image": "a:1"}

test_adds_requests_and_limits_to_containers_and_init_containers if {
	spec := {"initContainers": [bare], "containers": [bare]}
	ops := policy.patch with input as fixtures.review("Deployment", spec)
	{op.path | some op in ops} == {
		"/spec/template/spec/initContainers/0/resources/requests/cpu",
		"/spec/template/spec/initContainers/0/resources/requests/memory",
		"/spec/template/spec/initContainers/0/resources/limits/cpu",
		"/spec/template/spec/initContainers/0/resources/limits/memory",
		"/spec/template/spec/containers/0/resources/requests/cpu",
		"/spec/template/spec/containers/0/resources/requests/memory",
		"/spec/template/spec/containers/0/resources/limits/cpu",
		"/spec/template/spec/containers/0/resources/limits/memory",
	}
	every op in ops { op.op == "add" }
}

test_keeps_user_values if {
	count(policy.patch) == 0 with input as fixtures.review("Pod", fixtures.good_spec)
}

test_skips_ephemeral_containers if {
	spec := object.union(fixtures.good_spec, {"ephemeralContainers": [bare]})
	count(policy.patch) == 0 with input as fixtures.review("Pod", spec)
}

test_default_request_never_exceeds_user_limit if {
	spec := {"containers": [object.union(bare, {"resources": {"limits": {"memory": "64Mi", "cpu": "50m"}}})]}
	ops := policy.patch with input as fixtures.review("Pod", spec)
	some mem in ops
	mem.path == "/spec/containers/0/resources/requests/memory"
	mem.value == "64Mi"
	some cpu in ops
	cpu.path == "/spec/containers/0/resources/requests/cpu"
	cpu.value == "50m"
}

test_default_limit_never_undercuts_user_request if {
	spec := {"containers": [object.union(bare, {"resources": {"requests": {"memory": "1Gi", "cpu": 2}}})]}
	ops := policy.patch with input as fixtures.review("Pod", spec)
	some mem in ops
	mem.path == "/spec/containers/0/resources/limits/memory"
	mem.value == "1Gi"
	some cpu in ops
	cpu.path == "/spec/containers/0/resources/limits/cpu"
	cpu.value == 2
}
