# hostNetwork, hostPID and hostIPC let a pod see and talk to everything on the node.
package validate.host_namespaces

import data.regent.lib.workload.pod_spec
import data.regent.lib.workload.spec_path
import rego.v1

fields := {
	"hostNetwork": "the node's network namespace",
	"hostPID": "the node's process namespace",
	"hostIPC": "the node's IPC namespace",
}

violation contains v if {
	some field, what in fields
	pod_spec[field] == true
	v := {
		"path": concat(".", [spec_path, field]),
		"msg": sprintf("the pod shares %s", [what]),
		"fix": sprintf("remove %s or set it to false", [field]),
	}
}
