package mutate.default_resources_test

import data.mutate.default_resources as policy
import data.test.fixtures
import rego.v1

bare := {"name": "app", "image": "a:1"}

with_limits := {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}

test_adds_requests_only_by_default if {
	spec := {"initContainers": [bare], "containers": [bare]}
	ops := policy.patch with input as fixtures.review("Deployment", spec)
	{op.path | some op in ops} == {
		"/spec/template/spec/initContainers/0/resources/requests/cpu",
		"/spec/template/spec/initContainers/0/resources/requests/memory",
		"/spec/template/spec/containers/0/resources/requests/cpu",
		"/spec/template/spec/containers/0/resources/requests/memory",
	}
	every op in ops { op.op == "add" }
}

test_adds_limits_when_asked if {
	spec := {"initContainers": [bare], "containers": [bare]}
	ops := policy.patch with input as fixtures.review("Deployment", spec)
		with data.mutate.default_resources.parameters as with_limits
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
}

test_warns_the_developer_whose_containers_get_defaults if {
	spec := {"containers": [bare, object.union(bare, {"name": "sized", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}})]}
	policy.warning == {"default resources (requests cpu 100m, memory 128Mi) were set where container \"app\" declared none; declare your own resources to size it"} with input as fixtures.review("Pod", spec)
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
		with data.mutate.default_resources.parameters as with_limits
	some mem in ops
	mem.path == "/spec/containers/0/resources/limits/memory"
	mem.value == "1Gi"
	some cpu in ops
	cpu.path == "/spec/containers/0/resources/limits/cpu"
	cpu.value == 2
}
