# A writable root filesystem lets an intruder change binaries in place.
package validate.read_only_root_filesystem

import data.regent.lib.workload
import rego.v1

violation contains v if {
	some c in workload.containers
	c.field != "ephemeralContainers"
	not c.container.securityContext.readOnlyRootFilesystem == true
	v := workload.violation(
		sprintf("%s.securityContext.readOnlyRootFilesystem", [c.path]),
		sprintf("container %q has a writable root filesystem", [c.container.name]),
		"set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the app writes",
	)
}
