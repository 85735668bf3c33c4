package validate.run_as_non_root_test

import data.test.fixtures
import data.validate.run_as_non_root as policy
import rego.v1

test_pod_level_setting_covers_containers if {
	count(policy.violation) == 0 with input as fixtures.review("Pod", fixtures.good_spec)
}

test_container_level_setting_is_enough if {
	spec := {"containers": [object.union(fixtures.good_container, {"securityContext": {"runAsNonRoot": true}})]}
	count(policy.violation) == 0 with input as fixtures.review("Pod", spec)
}

test_flags_missing_setting if {
	spec := {"containers": [fixtures.good_container]}
	count(policy.violation) == 1 with input as fixtures.review("Pod", spec)
}

test_container_can_opt_out_of_pod_setting if {
	spec := fixtures.spec_with_container({"securityContext": {"runAsNonRoot": false}})
	count(policy.violation) == 1 with input as fixtures.review("Pod", spec)
}

test_flags_uid_zero if {
	spec := fixtures.spec_with_container({"securityContext": {"runAsUser": 0}})
	some v in policy.violation with input as fixtures.review("Pod", spec)
	v.path == "spec.containers[0].securityContext.runAsUser"
}
