# Sidecar injection, opted into per pod or pod template with the annotation
# regent.dev/inject: <name>[,<name>...]. A sidecar and the volumes it needs
# are added together or not at all, once.
package mutate.inject_sidecar

import data.regent.lib.workload.add
import data.regent.lib.workload.pod_metadata
import data.regent.lib.workload.pod_spec
import data.regent.lib.workload.spec_pointer
import rego.v1

sidecars := data.mutate.inject_sidecar.parameters.sidecars

requested contains name if {
	some raw in split(pod_metadata.annotations["regent.dev/inject"], ",")
	name := trim_space(raw)
	sidecars[name]
}

present(name) if {
	some ctr in pod_spec.containers
	ctr.name == sidecars[name].container.name
}

# A volume of the pod already uses a name the sidecar needs: injecting would
# make the pod invalid, so nothing is injected (the validating policy
# sidecar_annotation does not warn about this case; the pod stays as written).
clash(name) if {
	some vol in pod_spec.volumes
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
	op := add(sprintf("%s/containers/-", [spec_pointer]), sidecars[name].container)
}

patch contains op if {
	some name in inject
	some vol in sidecars[name].volumes
	op := add(sprintf("%s/volumes/-", [spec_pointer]), vol)
}
