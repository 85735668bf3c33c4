# The regent.dev/inject annotation must name a sidecar this bundle defines,
# otherwise nothing is injected and the author should know why.
package validate.sidecar_annotation

import data.regent.lib.workload
import rego.v1

violation contains v if {
	name := workload.pod_metadata.annotations["regent.dev/inject"]
	not data.mutate.inject_sidecar.parameters.sidecars[name]
	v := workload.violation(
		sprintf("%s.annotations[regent.dev/inject]", [workload.metadata_path]),
		sprintf("no sidecar named %q is defined, so none is injected", [name]),
		sprintf("use one of: %s", [concat(", ", sort(object.keys(data.mutate.inject_sidecar.parameters.sidecars)))]),
	)
}
