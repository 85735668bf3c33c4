package mutate.inject_sidecar_test

import data.mutate.inject_sidecar as policy
import data.test.fixtures
import rego.v1

annotated(kind, spec) := fixtures.review_annotated(kind, spec, {"regent.dev/inject": "otel-agent"})

test_injects_container_and_volume_together if {
	ops := policy.patch with input as annotated("Deployment", fixtures.good_spec)
	{op.path | some op in ops} == {"/spec/template/spec/containers/-", "/spec/template/spec/volumes/-"}
	some c in ops
	c.value.name == "otel-agent"
	c.value.resources.limits.memory == "128Mi"
}

test_no_annotation_no_sidecar if {
	count(policy.patch) == 0 with input as fixtures.review("Deployment", fixtures.good_spec)
}

test_injected_once if {
	sidecar := data.mutate.inject_sidecar.parameters.sidecars["otel-agent"]
	spec := object.union(fixtures.good_spec, {
		"containers": [fixtures.good_container, sidecar.container],
		"volumes": sidecar.volumes,
	})
	count(policy.patch) == 0 with input as annotated("Pod", spec)
}

test_volume_name_clash_injects_nothing if {
	spec := object.union(fixtures.good_spec, {"volumes": [{"name": "otel-agent-config", "emptyDir": {}}]})
	count(policy.patch) == 0 with input as annotated("Pod", spec)
}

test_unknown_sidecar_injects_nothing if {
	review := fixtures.review_annotated("Pod", fixtures.good_spec, {"regent.dev/inject": "envoy"})
	count(policy.patch) == 0 with input as review
}
