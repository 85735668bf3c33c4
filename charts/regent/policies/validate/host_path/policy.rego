# A hostPath volume mounts the node's filesystem into the pod.
package validate.host_path

import data.regent.lib.workload
import rego.v1

violation contains v if {
	some vol in workload.volumes
	vol.volume.hostPath
	v := workload.violation(
		sprintf("%s.hostPath", [vol.path]),
		sprintf("volume %q mounts %q from the node", [vol.volume.name, vol.volume.hostPath.path]),
		"use a persistentVolumeClaim, configMap, secret or emptyDir volume instead",
	)
}
