# Privileged containers share the node's kernel capabilities and devices:
# a container escape becomes a node takeover.
package validate.privileged

import data.regent.lib.workload.containers
import rego.v1

violation contains v if {
	some c in containers
	c.container.securityContext.privileged == true
	v := {
		"path": concat("", [c.path, ".securityContext.privileged"]),
		"msg": sprintf("container %q runs privileged", [c.container.name]),
		"fix": "remove securityContext.privileged or set it to false",
	}
}
