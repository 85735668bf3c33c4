# A hostPath volume mounts the node's filesystem into the pod.
package validate.host_path

import data.regent.lib.workload.volumes
import rego.v1

violation contains v if {
	some vol in volumes
	vol.volume.hostPath
	v := {
		"path": concat("", [vol.path, ".hostPath"]),
		"msg": sprintf("volume %q mounts %q from the node", [vol.volume.name, vol.volume.hostPath.path]),
		"fix": "use a persistentVolumeClaim, configMap, secret or emptyDir volume instead",
	}
}
