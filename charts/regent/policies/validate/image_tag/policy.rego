# An image without a tag, or tagged :latest, changes under your feet: two
# replicas of one Deployment may run different code.
package validate.image_tag

import data.regent.lib.workload
import rego.v1

violation contains v if {
	some c in workload.containers
	workload.image_tag(c.container.image) == ""
	v := workload.violation(
		sprintf("%s.image", [c.path]),
		sprintf("container %q uses image %q without a tag", [c.container.name, c.container.image]),
		"pin a version tag or a digest, e.g. image: nginx:1.27.3",
	)
}

violation contains v if {
	some c in workload.containers
	workload.image_tag(c.container.image) == "latest"
	v := workload.violation(
		sprintf("%s.image", [c.path]),
		sprintf("container %q uses the mutable tag :latest (%q)", [c.container.name, c.container.image]),
		"pin a version tag or a digest instead of :latest",
	)
}
