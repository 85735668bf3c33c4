# allowPrivilegeEscalation defaults to true: a setuid binary in the image can
# gain more privileges than the container started with. Pod Security
# "restricted" requires it to be false explicitly.
package validate.privilege_escalation

import data.regent.lib.workload
import rego.v1

violation contains v if {
	some c in workload.containers
	not c.container.securityContext.allowPrivilegeEscalation == false
	v := workload.violation(
		sprintf("%s.securityContext.allowPrivilegeEscalation", [c.path]),
		sprintf("container %q may escalate privileges", [c.container.name]),
		"set securityContext.allowPrivilegeEscalation: false",
	)
}
