# Whole-bundle tests through the generated entry point, as the server runs it.
package test.bundle

import data.test.fixtures
import rego.v1

test_well_formed_pod_spec_has_no_violation_in_any_kind if {
	every kind in fixtures.kinds {
		count(fixtures.all_violations(fixtures.review(kind, fixtures.good_spec))) == 0
	}
}

test_privileged_container_is_reported_with_the_path_of_each_kind if {
	spec := fixtures.spec_with_container({"securityContext": {"privileged": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}})
	every kind in fixtures.kinds {
		found := fixtures.all_violations(fixtures.review(kind, spec))
		expected := sprintf("pod_security: %s.containers[0].securityContext.privileged", [fixtures.spec_paths[kind]])
		expected in found
	}
}

test_delete_is_not_validated if {
	input_delete := json.patch(fixtures.review("Pod", {"hostPID": true}), [
		{"op": "replace", "path": "/request/operation", "value": "DELETE"},
	])
	count(fixtures.all_violations(input_delete)) == 0
}

test_other_kinds_are_not_validated if {
	cm := {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
		"uid": "u", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"}, "operation": "CREATE",
		"object": {"kind": "ConfigMap", "data": {"image": "nginx:latest"}},
	}}
	count(fixtures.all_violations(cm)) == 0
}

# The helper library computes `containers` with a Regent builtin for the
# shapes an API server sends and falls back to its Rego definition for any
# other: a container list written as an object is iterated by key.
test_containers_of_a_list_written_as_an_object_come_from_the_rego_definition if {
	review := fixtures.review("Pod", {"containers": {"web": {"name": "web", "image": "nginx"}}})
	cs := data.regent.lib.workload.containers with input as review
	[c.container.name | some c in cs] == ["web"]
	[c.index | some c in cs] == ["web"]
}

test_containers_of_an_ordinary_spec_come_from_the_builtin if {
	review := fixtures.review("Deployment", {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]})
	cs := data.regent.lib.workload.containers with input as review
	[c.pointer | some c in cs] == ["/spec/template/spec/containers/0", "/spec/template/spec/initContainers/0"]
}
