package validate.allowed_registries_test

import data.test.fixtures
import data.validate.allowed_registries as policy
import rego.v1

violations_for(image) := v if {
	v := policy.violation with input as fixtures.review("Deployment", fixtures.spec_with_container({"image": image}))
}

test_empty_list_allows_every_registry if {
	count(violations_for("quay.io/team/app:1.0")) == 0
	count(violations_for("nginx:1.27.3")) == 0
}

test_configured_registries_are_enforced if {
	count(violations_for("quay.io/team/app:1.0")) == 1 with data.validate.allowed_registries.parameters.registries as ["registry.example.com"]
	count(violations_for("registry.example.com/team/app:1.0")) == 0 with data.validate.allowed_registries.parameters.registries as ["registry.example.com"]
	count(violations_for("nginx:1.27.3")) == 1 with data.validate.allowed_registries.parameters.registries as ["registry.example.com"]
	count(violations_for("nginx:1.27.3")) == 0 with data.validate.allowed_registries.parameters.registries as ["docker.io"]
}

test_prefixes_match_paths if {
	registries := ["registry.example.com/shop/"]
	count(violations_for("registry.example.com/shop/web:1")) == 0 with data.validate.allowed_registries.parameters.registries as registries
	count(violations_for("registry.example.com/other/web:1")) == 1 with data.validate.allowed_registries.parameters.registries as registries
}
