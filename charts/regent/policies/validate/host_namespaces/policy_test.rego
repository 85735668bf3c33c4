package validate.host_namespaces_test

import data.test.fixtures
import data.validate.host_namespaces as policy
import rego.v1

test_denies_each_host_namespace if {
	spec := object.union(fixtures.good_spec, {"hostNetwork": true, "hostPID": true, "hostIPC": true})
	violations := policy.violation with input as fixtures.review("DaemonSet", spec)
	{v.path | some v in violations} == {
		"spec.template.spec.hostNetwork",
		"spec.template.spec.hostPID",
		"spec.template.spec.hostIPC",
	}
}

test_allows_false if {
	spec := object.union(fixtures.good_spec, {"hostNetwork": false})
	count(policy.violation) == 0 with input as fixtures.review("Pod", spec)
}
