# Sidecar injection, opted into per pod or pod template with the annotation
# regent.dev/inject: <name>[,<name>...]. A sidecar and the volumes it needs
# are added together or not at all, once.
package mutate.inject_sidecar

import data.regent.lib.workload
import rego.v1

sidecars := data.mutate.inject_sidecar.parameters.sidecars

requested contains name if {
	some raw in split(workload.pod_metadata.annotations["regent.dev/inject"], ",")
	name := trim_space(raw)
	sidecars[name]
}

present(name) if {
	some ctr in workload.pod_spec.containers
	ctr.name == sidecars[name].container.name
}

# A volume of the pod already uses a name the sidecar needs: injecting would
# make the pod invalid, so nothing is injected (the validating policy
# sidecar_annotation does not warn about this case; the pod stays as written).
clash(name) if {
	some vol in workload.pod_spec.volumes
	some needed in sidecars[name].volumes
	vol.name == needed.name
}

inject contains name if {
	some name in requested
	not present(name)
	not clash(name)
}

patch contains op if {
	some name in inject
	op := workload.add(sprintf("%s/containers/-", [workload.spec_pointer]), sidecars[name].container)
}

patch contains op if {
	some name in inject
	some vol in sidecars[name].volumes
	op := workload.add(sprintf("%s/volumes/-", [workload.spec_pointer]), vol)
}
