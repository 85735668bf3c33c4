package mutate.default_labels_test

import data.mutate.default_labels as policy
import data.test.fixtures
import rego.v1

test_adds_missing_label_to_object_and_pod_template if {
	obj := fixtures.object_of("CronJob", fixtures.good_spec, {"app": "x"}, {})
	ops := policy.patch with input as fixtures.review_of("CronJob", obj)
	ops == {
		{"op": "add", "path": "/metadata/labels/team", "value": "unassigned"},
		{"op": "add", "path": "/spec/jobTemplate/spec/template/metadata/labels/team", "value": "unassigned"},
	}
}

test_keeps_a_label_the_user_set if {
	count(policy.patch) == 0 with input as fixtures.review("Deployment", fixtures.good_spec)
}

test_label_keys_are_pointer_escaped if {
	ops := policy.patch with input as fixtures.review_of("Pod", fixtures.object_of("Pod", fixtures.good_spec, {}, {}))
		with data.mutate.default_labels.parameters.labels as {"example.com/owner": "x"}
	ops == {{"op": "add", "path": "/metadata/labels/example.com~1owner", "value": "x"}}
}
