package validate.host_path_test

import data.test.fixtures
import data.validate.host_path as policy
import rego.v1

test_denies_host_path_volume if {
	spec := object.union(fixtures.good_spec, {"volumes": [
		{"name": "cache", "emptyDir": {}},
		{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}},
	]})
	violations := policy.violation with input as fixtures.review("Job", spec)
	[v.path | some v in violations] == ["spec.template.spec.volumes[1].hostPath"]
	some v in violations
	contains(v.msg, "/var/run/docker.sock")
}

test_allows_other_volumes if {
	spec := object.union(fixtures.good_spec, {"volumes": [{"name": "c", "configMap": {"name": "x"}}]})
	count(policy.violation) == 0 with input as fixtures.review("Pod", spec)
}
