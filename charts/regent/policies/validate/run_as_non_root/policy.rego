# Containers should not run as root: set runAsNonRoot (pod or container level)
# and do not set runAsUser: 0.
package validate.run_as_non_root

import data.regent.lib.workload
import rego.v1

pod_non_root := object.get(workload.pod_spec, ["securityContext", "runAsNonRoot"], false)

non_root(c) if c.container.securityContext.runAsNonRoot == true

non_root(c) if {
	pod_non_root == true
	not c.container.securityContext.runAsNonRoot == false
}

violation contains v if {
	some c in workload.containers
	not non_root(c)
	v := workload.violation(
		sprintf("%s.securityContext.runAsNonRoot", [c.path]),
		sprintf("container %q may run as root", [c.container.name]),
		"set securityContext.runAsNonRoot: true on the pod or the container",
	)
}

violation contains v if {
	some c in workload.containers
	c.container.securityContext.runAsUser == 0
	v := workload.violation(
		sprintf("%s.securityContext.runAsUser", [c.path]),
		sprintf("container %q runs as user 0 (root)", [c.container.name]),
		"set runAsUser to a non-zero UID",
	)
}
