package validate.sidecar_annotation_test

import data.test.fixtures
import data.validate.sidecar_annotation as policy
import rego.v1

test_warns_about_unknown_sidecar if {
	review := fixtures.review_annotated("Deployment", fixtures.good_spec, {"regent.dev/inject": "envoy"})
	some v in policy.violation with input as review
	contains(v.msg, "envoy")
	contains(v.fix, "otel-agent")
}

test_known_sidecar_is_fine if {
	review := fixtures.review_annotated("Deployment", fixtures.good_spec, {"regent.dev/inject": "otel-agent"})
	count(policy.violation) == 0 with input as review
}

test_each_name_of_a_list_is_checked if {
	review := fixtures.review_annotated("Pod", fixtures.good_spec, {"regent.dev/inject": "otel-agent, envoy"})
	msgs := {v.msg | some v in policy.violation with input as review}
	msgs == {"no sidecar named \"envoy\" is defined, so none is injected"}
}
