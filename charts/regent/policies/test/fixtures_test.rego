# Builders for test inputs: an AdmissionReview for a pod spec wrapped in any
# pod-bearing kind. Loaded by `regent test` only (a *_test.rego module).
package test.fixtures

import rego.v1

kinds := ["Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"]

groups := {
	"Pod": "", "ReplicationController": "",
	"Deployment": "apps", "ReplicaSet": "apps", "StatefulSet": "apps", "DaemonSet": "apps",
	"Job": "batch", "CronJob": "batch",
}

# Where each kind keeps its pod spec, as a field path.
spec_paths := {
	"Pod": "spec",
	"Deployment": "spec.template.spec", "ReplicaSet": "spec.template.spec",
	"StatefulSet": "spec.template.spec", "DaemonSet": "spec.template.spec",
	"Job": "spec.template.spec", "ReplicationController": "spec.template.spec",
	"CronJob": "spec.jobTemplate.spec.template.spec",
}

# The same, as JSON pointers.
spec_pointers := {kind: concat("", ["/", replace(path, ".", "/")]) | some kind, path in spec_paths}

good_labels := {"app.kubernetes.io/name": "web", "team": "storefront"}

good_container := {
	"name": "web",
	"image": "registry.example.com/shop/web:1.4.2",
	"resources": {
		"requests": {"cpu": "250m", "memory": "256Mi"},
		"limits": {"cpu": "1", "memory": "512Mi"},
	},
	"securityContext": {
		"allowPrivilegeEscalation": false,
		"readOnlyRootFilesystem": true,
		"capabilities": {"drop": ["ALL"]},
	},
}

good_spec := {
	"securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
	"containers": [good_container],
}

# good_spec with its first container patched by `changes` (merged objects).
spec_with_container(changes) := object.union(good_spec, {"containers": [object.union(good_container, changes)]})

object_of(kind, spec, labels, annotations) := {
	"apiVersion": "v1", "kind": kind,
	"metadata": {"name": "web", "namespace": "shop", "labels": labels, "annotations": annotations},
	"spec": spec,
} if kind == "Pod"

object_of(kind, spec, labels, annotations) := {
	"apiVersion": api_version(kind), "kind": kind,
	"metadata": {"name": "web", "namespace": "shop", "labels": labels},
	"spec": {"template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}},
} if not kind in {"Pod", "CronJob"}

object_of(kind, spec, labels, annotations) := {
	"apiVersion": "batch/v1", "kind": kind,
	"metadata": {"name": "web", "namespace": "shop", "labels": labels},
	"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec}}}},
} if kind == "CronJob"

api_version(kind) := "v1" if groups[kind] == ""

api_version(kind) := concat("/", [groups[kind], "v1"]) if groups[kind] != ""

review_of(kind, obj) := {
	"apiVersion": "admission.k8s.io/v1",
	"kind": "AdmissionReview",
	"request": {
		"uid": "test-uid",
		"kind": {"group": groups[kind], "version": "v1", "kind": kind},
		"operation": "CREATE",
		"namespace": "shop",
		"name": "web",
		"userInfo": {"username": "alice"},
		"object": obj,
	},
}

# An AdmissionReview for `spec` inside an object of `kind`, with good labels.
review(kind, spec) := review_of(kind, object_of(kind, spec, good_labels, {}))

# The same with pod annotations.
review_annotated(kind, spec, annotations) := review_of(kind, object_of(kind, spec, good_labels, annotations))

# Every violation the whole bundle reports for an input, as "policy: path".
# The entry point maps each policy in scope to its violations.
all_violations(review_input) := {sprintf("%s: %s", [policy, v.path]) |
	some policy, violations in data.regent.main.validate with input as review_input
	some v in violations
}
