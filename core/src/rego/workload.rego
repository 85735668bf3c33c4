# METADATA
# title: Regent workload helpers
# description: |
#   Write a rule once against "a pod spec" and it applies to Pods and to the pod
#   templates of Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, CronJob and
#   ReplicationController. Every container comes with its field path (for
#   messages) and its JSON pointer (for mutations) in the object under review.
#
#   This package is reserved: it is built into the regent binary and no bundle
#   may define or replace it.
#
#   Import the rules you use (`import data.regent.lib.workload.containers`)
#   rather than the whole package: regorus evaluates every rule of a package
#   that is referenced through a package alias (`workload.containers`), once
#   per request.
package regent.lib.workload

import rego.v1

# The object under review (null on DELETE).
object := input.request.object

# The kind of the object under review, e.g. "Deployment".
kind := input.request.kind.kind

# Where each kind keeps its pod spec and pod metadata.
spec_parts := {
	"Pod": ["spec"],
	"Deployment": ["spec", "template", "spec"],
	"ReplicaSet": ["spec", "template", "spec"],
	"StatefulSet": ["spec", "template", "spec"],
	"DaemonSet": ["spec", "template", "spec"],
	"Job": ["spec", "template", "spec"],
	"ReplicationController": ["spec", "template", "spec"],
	"CronJob": ["spec", "jobTemplate", "spec", "template", "spec"],
}

metadata_parts := {
	"Pod": ["metadata"],
	"Deployment": ["spec", "template", "metadata"],
	"ReplicaSet": ["spec", "template", "metadata"],
	"StatefulSet": ["spec", "template", "metadata"],
	"DaemonSet": ["spec", "template", "metadata"],
	"Job": ["spec", "template", "metadata"],
	"ReplicationController": ["spec", "template", "metadata"],
	"CronJob": ["spec", "jobTemplate", "spec", "template", "metadata"],
}

# The pod spec of the object under review (undefined for other kinds).
pod_spec := object.get(input.request.object, spec_parts[kind], {})

# The pod metadata: the labels and annotations the pods will carry.
pod_metadata := object.get(input.request.object, metadata_parts[kind], {})

# How a message names what holds the pod's labels and spec: "the Pod", or
# "the pod template" of a controller.
pod_noun := "the Pod" if kind == "Pod"

pod_noun := "the pod template" if {
	kind != "Pod"
	metadata_parts[kind]
}

# The pod spec's field path, e.g. "spec.template.spec".
spec_path := concat(".", spec_parts[kind])

# The pod spec's JSON pointer, e.g. "/spec/template/spec".
spec_pointer := concat("/", array.concat([""], spec_parts[kind]))

# The pod metadata's field path and JSON pointer.
metadata_path := concat(".", metadata_parts[kind])

metadata_pointer := concat("/", array.concat([""], metadata_parts[kind]))

# The three lists a pod keeps containers in. Init and ephemeral containers are
# containers everywhere a policy looks.
container_fields := ["containers", "initContainers", "ephemeralContainers"]

# Every container of the pod spec, with where it was found:
#   {"container": {...}, "field": "initContainers", "index": 0,
#    "path": "spec.template.spec.initContainers[0]",
#    "pointer": "/spec/template/spec/initContainers/0"}
# An array, not a set: a set would compare whole containers to order them.
#
# Regent computes it natively (the builtin regent.workload.containers, one
# call instead of a comprehension per request) for the shapes an API server
# sends; the Rego below is the definition, and decides any other shape.
containers := cs if {
	cs := regent.workload.containers(pod_spec, spec_path, spec_pointer)
} else := [c |
	some field in container_fields
	some i, ctr in pod_spec[field]
	c := {
		"container": ctr,
		"field": field,
		"index": i,
		"path": sprintf("%s.%s[%d]", [spec_path, field, i]),
		"pointer": sprintf("%s/%s/%d", [spec_pointer, field, i]),
	}
]

# Every volume of the pod spec, with its field path (natively computed as
# containers is, with the Rego definition for any other shape).
volumes := vs if {
	vs := regent.workload.volumes(pod_spec, spec_path)
} else := [v |
	some i, vol in pod_spec.volumes
	v := {"volume": vol, "index": i, "path": sprintf("%s.volumes[%d]", [spec_path, i])}
]

# The field path of `field` inside the pod spec, e.g. field_path("hostNetwork").
field_path(field) := concat(".", [spec_path, field])

# A violation as Regent reports it: the policy name is added by Regent.
violation(path, msg, fix) := {"path": path, "msg": msg, "fix": fix}

# A JSON pointer token for `key` (RFC 6901: "~" -> "~0", "/" -> "~1"), so a
# label key such as "app.kubernetes.io/name" can sit in a patch path.
pointer_token(key) := replace(replace(key, "~", "~0"), "/", "~1")

# A JSON patch operation that adds `value` at `pointer`. Regent creates missing
# parent objects and never replaces a value that is already there.
add(pointer, value) := {"op": "add", "path": pointer, "value": value}
