# The regent.dev/inject annotation must name sidecars this bundle defines,
# otherwise nothing is injected and the author should know why.
package validate.sidecar_annotation

import data.regent.lib.workload.metadata_path
import data.regent.lib.workload.pod_metadata
import rego.v1

sidecars := data.mutate.inject_sidecar.parameters.sidecars

violation contains v if {
	some raw in split(pod_metadata.annotations["regent.dev/inject"], ",")
	name := trim_space(raw)
	not sidecars[name]
	v := {
		"path": concat("", [metadata_path, ".annotations[regent.dev/inject]"]),
		"msg": sprintf("no sidecar named %q is defined, so none is injected", [name]),
		"fix": sprintf("use one of: %s", [concat(", ", sort(object.keys(sidecars)))]),
	}
}
