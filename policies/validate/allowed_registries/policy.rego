# Images must come from one of the operator's registries. The shipped list is
# empty, which means any registry: configure parameters.registries to enforce.
package validate.allowed_registries

import data.regent.lib.images.image_registry
import data.regent.lib.workload.containers
import rego.v1

registries := data.validate.allowed_registries.parameters.registries

# A registry host ("registry.example.com") or an image prefix
# ("registry.example.com/team/") allows the image.
allowed(image) if {
	some entry in registries
	startswith(image, entry)
}

allowed(image) if image_registry(image) in registries

violation contains v if {
	count(registries) > 0
	some c in containers
	not allowed(c.container.image)
	v := {
		"path": concat("", [c.path, ".image"]),
		"msg": sprintf("container %q pulls %q from %s, which is not an allowed registry", [c.container.name, c.container.image, image_registry(c.container.image)]),
		"fix": sprintf("use an image from one of: %s", [concat(", ", registries)]),
	}
}
