# An image without a tag, or tagged :latest, changes under your feet: two
# replicas of one Deployment may run different code.
package validate.image_tag

import data.regent.lib.images.image_repository
import data.regent.lib.images.image_tag
import data.regent.lib.workload.containers
import rego.v1

violation contains v if {
	some c in containers
	tag := image_tag(c.container.image)
	tag in {"", "latest"}
	v := {
		"path": concat("", [c.path, ".image"]),
		"msg": message(c.container, tag),
		"fix": fix(c.container, tag),
	}
}

message(container, "") := sprintf("container %q uses image %q without a tag", [container.name, container.image])

message(container, "latest") := sprintf("container %q uses the mutable tag :latest (%q)", [container.name, container.image])

fix(container, "") := sprintf("pin a version tag or a digest, e.g. image: %s:<version>", [image_repository(container.image)])

fix(container, "latest") := sprintf("pin a version tag or a digest instead of :latest, e.g. image: %s:<version>", [image_repository(container.image)])
