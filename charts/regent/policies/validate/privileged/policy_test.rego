package validate.privileged_test

import data.test.fixtures
import data.validate.privileged
import rego.v1

test_denies_privileged_container_in_every_kind if {
	spec := fixtures.spec_with_container({"securityContext": {"privileged": true}})
	every kind in fixtures.kinds {
		violations := privileged.violation with input as fixtures.review(kind, spec)
		{v.path | some v in violations} == {sprintf("%s.containers[0].securityContext.privileged", [fixtures.spec_paths[kind]])}
	}
}

test_denies_privileged_init_and_ephemeral_containers if {
	bad := {"name": "x", "image": "a:1", "securityContext": {"privileged": true}}
	spec := object.union(fixtures.good_spec, {"initContainers": [bad], "ephemeralContainers": [bad]})
	violations := privileged.violation with input as fixtures.review("Pod", spec)
	{v.path | some v in violations} == {
		"spec.initContainers[0].securityContext.privileged",
		"spec.ephemeralContainers[0].securityContext.privileged",
	}
}

test_allows_unprivileged_containers if {
	spec := fixtures.spec_with_container({"securityContext": {"privileged": false}})
	count(privileged.violation) == 0 with input as fixtures.review("Deployment", spec)
}

test_cronjob_path_goes_through_the_job_template if {
	spec := fixtures.spec_with_container({"securityContext": {"privileged": true}})
	some v in privileged.violation with input as fixtures.review("CronJob", spec)
	v.path == "spec.jobTemplate.spec.template.spec.containers[0].securityContext.privileged"
	contains(v.msg, "\"web\"")
	v.fix != ""
}
