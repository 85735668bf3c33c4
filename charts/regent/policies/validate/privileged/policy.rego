# Privileged containers share the node's kernel capabilities and devices:
# a container escape becomes a node takeover.
package validate.privileged

import data.regent.lib.workload
import rego.v1

violation contains v if {
	some c in workload.containers
	c.container.securityContext.privileged == true
	v := workload.violation(
		sprintf("%s.securityContext.privileged", [c.path]),
		sprintf("container %q runs privileged", [c.container.name]),
		"remove securityContext.privileged or set it to false",
	)
}
