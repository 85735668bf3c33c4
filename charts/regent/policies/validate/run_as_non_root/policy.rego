# Containers should not run as root: set runAsNonRoot (pod or container level)
# and do not set runAsUser: 0.
package validate.run_as_non_root

import data.regent.lib.workload.containers
import data.regent.lib.workload.pod_spec
import rego.v1

non_root(c) if c.container.securityContext.runAsNonRoot == true

non_root(c) if {
	pod_spec.securityContext.runAsNonRoot == true
	not c.container.securityContext.runAsNonRoot == false
}

violation contains v if {
	some c in containers
	not non_root(c)
	v := {
		"path": concat("", [c.path, ".securityContext.runAsNonRoot"]),
		"msg": sprintf("container %q may run as root", [c.container.name]),
		"fix": "set securityContext.runAsNonRoot: true on the pod or the container",
	}
}

violation contains v if {
	some c in containers
	c.container.securityContext.runAsUser == 0
	v := {
		"path": concat("", [c.path, ".securityContext.runAsUser"]),
		"msg": sprintf("container %q runs as user 0 (root)", [c.container.name]),
		"fix": "set runAsUser to a non-zero UID",
	}
}
