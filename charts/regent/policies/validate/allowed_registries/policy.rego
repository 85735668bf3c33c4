# Images must come from one of the operator's registries. The shipped list is
# empty, which means any registry: configure parameters.registries to enforce.
package validate.allowed_registries

import data.regent.lib.workload
import rego.v1

registries := data.validate.allowed_registries.parameters.registries

allowed(image) if count(registries) == 0

allowed(image) if {
	some prefix in registries
	startswith(image, prefix)
}

allowed(image) if {
	some prefix in registries
	registry := workload.image_registry(image)
	prefix == registry
}

violation contains v if {
	some c in workload.containers
	not allowed(c.container.image)
	v := workload.violation(
		sprintf("%s.image", [c.path]),
		sprintf("container %q pulls %q from %s, which is not an allowed registry", [c.container.name, c.container.image, workload.image_registry(c.container.image)]),
		sprintf("use an image from one of: %s", [concat(", ", registries)]),
	)
}
