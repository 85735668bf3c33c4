package validate.read_only_root_filesystem_test

import data.test.fixtures
import data.validate.read_only_root_filesystem as policy
import rego.v1

test_flags_writable_root if {
	spec := fixtures.spec_with_container({"securityContext": {"readOnlyRootFilesystem": false}})
	count(policy.violation) == 1 with input as fixtures.review("ReplicaSet", spec)
}

test_allows_read_only_root if {
	count(policy.violation) == 0 with input as fixtures.review("ReplicaSet", fixtures.good_spec)
}
