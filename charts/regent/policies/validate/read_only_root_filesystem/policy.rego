# A writable root filesystem lets an intruder change binaries in place.
package validate.read_only_root_filesystem

import data.regent.lib.workload.containers
import rego.v1

violation contains v if {
	some c in containers
	c.field != "ephemeralContainers"
	not c.container.securityContext.readOnlyRootFilesystem == true
	v := {
		"path": concat("", [c.path, ".securityContext.readOnlyRootFilesystem"]),
		"msg": sprintf("container %q has a writable root filesystem", [c.container.name]),
		"fix": "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the app writes",
	}
}
