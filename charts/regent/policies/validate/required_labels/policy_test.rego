package validate.required_labels_test

import data.test.fixtures
import data.validate.required_labels as policy
import rego.v1

test_flags_missing_label_on_pod_template if {
	obj := fixtures.object_of("Deployment", fixtures.good_spec, {"app": "web"}, {})
	some v in policy.violation with input as fixtures.review_of("Deployment", obj)
	v.path == "spec.template.metadata.labels"
}

test_allows_labelled_pods if {
	count(policy.violation) == 0 with input as fixtures.review("Pod", fixtures.good_spec)
}

test_a_bare_pod_is_not_told_about_a_pod_template if {
	obj := fixtures.object_of("Pod", fixtures.good_spec, {"app": "web"}, {})
	some v in policy.violation with input as fixtures.review_of("Pod", obj)
	v.msg == "the Pod has no \"app.kubernetes.io/name\" label"
	v.path == "metadata.labels"
}

test_a_controller_is_told_about_its_pod_template if {
	obj := fixtures.object_of("CronJob", fixtures.good_spec, {"app": "web"}, {})
	some v in policy.violation with input as fixtures.review_of("CronJob", obj)
	v.msg == "the pod template has no \"app.kubernetes.io/name\" label"
}
