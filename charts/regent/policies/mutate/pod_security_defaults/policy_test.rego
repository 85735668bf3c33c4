package mutate.pod_security_defaults_test

import data.test.fixtures
import data.mutate.pod_security_defaults as defaults
import rego.v1

on := {"allowPrivilegeEscalation": true, "seccompProfile": true, "dropAllCapabilities": true, "runAsNonRoot": true}

bare := {"containers": [{"name": "web", "image": "a:1"}], "initContainers": [{"name": "init", "image": "a:1"}]}

patch_of(kind, spec) := p if {
	p := defaults.patch with input as fixtures.review(kind, spec)
		with data.mutate.pod_security_defaults.parameters as on
}

test_sets_what_restricted_needs_in_every_kind if {
	every kind in fixtures.kinds {
		p := patch_of(kind, bare)
		sp := fixtures.spec_pointers[kind]
		{op.path | some op in p} == {
			sprintf("%s/containers/0/securityContext/allowPrivilegeEscalation", [sp]),
			sprintf("%s/containers/0/securityContext/capabilities/drop", [sp]),
			sprintf("%s/initContainers/0/securityContext/allowPrivilegeEscalation", [sp]),
			sprintf("%s/initContainers/0/securityContext/capabilities/drop", [sp]),
			sprintf("%s/securityContext/seccompProfile", [sp]),
			sprintf("%s/securityContext/runAsNonRoot", [sp]),
		}
	}
}

test_never_replaces_what_the_user_set if {
	spec := {
		"securityContext": {"runAsNonRoot": false, "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}},
		"containers": [{"name": "web", "image": "a:1", "securityContext": {"allowPrivilegeEscalation": true, "capabilities": {"drop": ["NET_RAW"]}}}],
	}
	count(patch_of("Pod", spec)) == 0
}

test_a_restricted_clean_spec_is_left_as_it_is if {
	count(patch_of("Deployment", fixtures.good_spec)) == 0
}

test_runs_as_root_or_windows_is_left_alone if {
	root := object.union(bare, {"securityContext": {"runAsUser": 0}})
	not "/spec/securityContext/runAsNonRoot" in {op.path | some op in patch_of("Pod", root)}
	count(patch_of("Pod", object.union(bare, {"os": {"name": "windows"}}))) == 0
}

test_the_developer_is_told if {
	w := defaults.warning with input as fixtures.review("Pod", bare)
		with data.mutate.pod_security_defaults.parameters as on
	w == {"restricted Pod Security defaults were set where the workload left them unset (allowPrivilegeEscalation, drop, runAsNonRoot, seccompProfile); set them yourself to keep them"}
}
