# The fixes of the restricted Pod Security Standard a workload can take
# without a decision of its author: what restricted needs and the user did
# not set. A value the user set is never replaced (a `false` stays false; a
# profile stays), so a workload that sets something else keeps its finding;
# applied twice, it changes nothing the second time. Windows Pods are left
# alone (the API refuses these Linux fields on them).
package mutate.pod_security_defaults

import data.regent.lib.workload.add
import data.regent.lib.workload.containers
import data.regent.lib.workload.pod_spec
import data.regent.lib.workload.spec_pointer
import rego.v1

params := data.mutate.pod_security_defaults.parameters

linux if not pod_spec.os.name == "windows"

pod_sc := object.get(pod_spec, "securityContext", {})

sc(c) := object.get(c.container, "securityContext", {})

unset(obj, key) if object.get(obj, key, null) == null

patch contains op if {
	object.get(params, "allowPrivilegeEscalation", true)
	linux
	some c in containers
	unset(sc(c), "allowPrivilegeEscalation")
	op := add(sprintf("%s/securityContext/allowPrivilegeEscalation", [c.pointer]), false)
}

patch contains op if {
	object.get(params, "dropAllCapabilities", true)
	linux
	some c in containers
	object.get(sc(c), ["capabilities", "drop"], null) == null
	op := add(sprintf("%s/securityContext/capabilities/drop", [c.pointer]), ["ALL"])
}

patch contains op if {
	object.get(params, "seccompProfile", true)
	linux
	unset(pod_sc, "seccompProfile")
	# Each container without a profile of its own takes the pod's.
	some c in containers
	unset(sc(c), "seccompProfile")
	op := add(sprintf("%s/securityContext/seccompProfile", [spec_pointer]), {"type": "RuntimeDefault"})
}

patch contains op if {
	object.get(params, "runAsNonRoot", true)
	linux
	not pod_spec.hostUsers == false
	unset(pod_sc, "runAsNonRoot")
	not runs_as_root
	some c in containers
	unset(sc(c), "runAsNonRoot")
	op := add(sprintf("%s/securityContext/runAsNonRoot", [spec_pointer]), true)
}

runs_as_root if pod_sc.runAsUser == 0

runs_as_root if {
	some c in containers
	sc(c).runAsUser == 0
}

# What the developer is told, once per request.
warning contains msg if {
	count(patch) > 0
	fields := {last_field(op.path) | some op in patch}
	msg := sprintf("restricted Pod Security defaults were set where the workload left them unset (%s); set them yourself to keep them", [concat(", ", sort(fields))])
}

last_field(path) := f if {
	parts := split(path, "/")
	f := parts[count(parts) - 1]
}
