# allowPrivilegeEscalation defaults to true: a setuid binary in the image can
# gain more privileges than the container started with. Pod Security
# "restricted" requires it to be false explicitly.
package validate.privilege_escalation

import data.regent.lib.workload.containers
import rego.v1

violation contains v if {
	some c in containers
	not c.container.securityContext.allowPrivilegeEscalation == false
	v := {
		"path": concat("", [c.path, ".securityContext.allowPrivilegeEscalation"]),
		"msg": sprintf("container %q may escalate privileges", [c.container.name]),
		"fix": "set securityContext.allowPrivilegeEscalation: false",
	}
}
