package validate.image_tag_test

import data.test.fixtures
import data.regent.lib.images.image_tag
import data.validate.image_tag as policy
import rego.v1

violations_for(image) := v if {
	v := policy.violation with input as fixtures.review("Pod", fixtures.spec_with_container({"image": image}))
}

test_denies_missing_tag if count(violations_for("nginx")) == 1

test_denies_missing_tag_with_registry_port if count(violations_for("localhost:5000/team/app")) == 1

test_denies_latest if count(violations_for("registry.example.com/app:latest")) == 1

test_allows_pinned_tag if count(violations_for("nginx:1.27.3")) == 0

test_allows_registry_port_and_tag if count(violations_for("localhost:5000/team/app:2.0")) == 0

test_allows_digest if count(violations_for("nginx@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")) == 0

test_image_tag_of_each_reference_form if {
	image_tag("nginx") == ""
	image_tag("nginx:1.27.3") == "1.27.3"
	image_tag("localhost:5000/team/app") == ""
	image_tag("localhost:5000/team/app:2.0") == "2.0"
	image_tag("registry.example.com/app:latest") == "latest"
	image_tag("app@sha256:0123") == "@sha256:0123"
	image_tag("") == ""
	not image_tag(5)
	not image_tag(null)
}

test_container_without_an_image_is_not_reported if {
	v := policy.violation with input as fixtures.review("Pod", {"containers": [{"name": "x"}]})
	count(v) == 0
}

test_the_fix_names_the_objects_own_image if {
	some v in violations_for("registry.example.com/team/worker")
	v.fix == "pin a version tag or a digest, e.g. image: registry.example.com/team/worker:<version>"
	some w in violations_for("busybox:latest")
	w.fix == "pin a version tag or a digest instead of :latest, e.g. image: busybox:<version>"
}
