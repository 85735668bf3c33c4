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
package regent.lib.workload

import rego.v1

# The object under review (null on DELETE).
object := input.request.object

# The kind of the object under review, e.g. "Deployment".
kind := input.request.kind.kind

# Kinds whose pod spec sits at spec.template.spec.
template_kinds := {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"}

# Every kind that carries a pod spec.
pod_kinds := template_kinds | {"Pod", "CronJob"}

# Where the pod spec and the pod metadata sit, as field paths and JSON pointers.
locations := {"spec": "spec", "meta": "metadata", "spec_ptr": "/spec", "meta_ptr": "/metadata"} if kind == "Pod"

locations := {
	"spec": "spec.template.spec",
	"meta": "spec.template.metadata",
	"spec_ptr": "/spec/template/spec",
	"meta_ptr": "/spec/template/metadata",
} if kind in template_kinds

locations := {
	"spec": "spec.jobTemplate.spec.template.spec",
	"meta": "spec.jobTemplate.spec.template.metadata",
	"spec_ptr": "/spec/jobTemplate/spec/template/spec",
	"meta_ptr": "/spec/jobTemplate/spec/template/metadata",
} if kind == "CronJob"

# The pod spec of the object under review.
pod_spec := object.spec if kind == "Pod"

pod_spec := object.spec.template.spec if kind in template_kinds

pod_spec := object.spec.jobTemplate.spec.template.spec if kind == "CronJob"

# The pod metadata (labels and annotations the pods will carry).
pod_metadata := object_get(object, "metadata") if kind == "Pod"

pod_metadata := object_get(object.spec.template, "metadata") if kind in template_kinds

pod_metadata := object_get(object.spec.jobTemplate.spec.template, "metadata") if kind == "CronJob"

# The pod spec's field path, e.g. "spec.template.spec".
spec_path := locations.spec

# The pod spec's JSON pointer, e.g. "/spec/template/spec".
spec_pointer := locations.spec_ptr

# The pod metadata's field path and JSON pointer.
metadata_path := locations.meta

metadata_pointer := locations.meta_ptr

# The three lists a pod keeps containers in. Init and ephemeral containers are
# containers everywhere a policy looks.
container_fields := ["containers", "initContainers", "ephemeralContainers"]

# Every container of the pod spec, with where it was found:
#   {"container": {...}, "field": "initContainers", "index": 0,
#    "path": "spec.template.spec.initContainers[0]",
#    "pointer": "/spec/template/spec/initContainers/0"}
#
# An array, not a set: a set would compare whole containers to order them.
containers := [c |
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

# Every volume of the pod spec, with its field path.
volumes := [v |
	some i, vol in pod_spec.volumes
	v := {"volume": vol, "index": i, "path": sprintf("%s.volumes[%d]", [spec_path, i])}
]

# The field path of `field` inside the pod spec, e.g. field_path("hostNetwork").
field_path(field) := sprintf("%s.%s", [spec_path, field])

# A violation as Regent reports it: the policy name is added by Regent.
violation(path, msg, fix) := {"path": path, "msg": msg, "fix": fix}

# The repository part of an image reference ("registry.example.com/team/app").
image_repository(image) := repo if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	repo := trim_suffix(image, concat("", [":", split(last, ":")[1]]))
}

image_repository(image) := split(image, "@")[0] if contains(image, "@")

image_repository(image) := image if {
	not contains(image, "@")
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}

# The tag of an image reference, or "" when it has none. A digest-pinned image
# ("app@sha256:...") reports its digest as "@sha256:...".
image_tag(image) := concat("", ["@", split(image, "@")[1]]) if contains(image, "@")

image_tag(image) := tag if {
	not contains(image, "@")
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}

image_tag(image) := "" if {
	not contains(image, "@")
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}

# The registry host of an image reference; Docker Hub when the first path part
# is not a host name (no "." or ":" and not "localhost").
image_registry(image) := registry if {
	parts := split(image, "/")
	count(parts) > 1
	is_host(parts[0])
	registry := parts[0]
}

image_registry(image) := "docker.io" if {
	parts := split(image, "/")
	count(parts) == 1
}

image_registry(image) := "docker.io" if {
	parts := split(image, "/")
	count(parts) > 1
	not is_host(parts[0])
}

is_host(part) if contains(part, ".")

is_host(part) if contains(part, ":")

is_host(part) if part == "localhost"

# object.get for one key that also works when obj is undefined-safe null.
object_get(obj, key) := object.get(obj, key, {})

# A JSON pointer token for `key` (RFC 6901: "~" -> "~0", "/" -> "~1"), so a
# label key such as "app.kubernetes.io/name" can sit in a patch path.
pointer_token(key) := replace(replace(key, "~", "~0"), "/", "~1")

# A JSON patch operation that adds `value` at `pointer`. Regent creates missing
# parent objects and never replaces a value that is already there.
add(pointer, value) := {"op": "add", "path": pointer, "value": value}
