# CPU and memory limits above the data-driven maximum: one container must not
# be able to take a whole node.
package validate.resource_limits

import data.regent.lib.workload
import rego.v1

maximum := data.validate.resource_limits.parameters.maximum

parse(resource, quantity) := units.parse_bytes(quantity) if resource == "memory"

parse(resource, quantity) := units.parse(quantity) if resource == "cpu"

violation contains v if {
	some c in workload.containers
	some resource, max in maximum
	value := c.container.resources.limits[resource]
	parse(resource, sprintf("%v", [value])) > parse(resource, max)
	v := workload.violation(
		sprintf("%s.resources.limits.%s", [c.path, resource]),
		sprintf("container %q asks for a %s limit of %v, above the maximum of %s", [c.container.name, resource, value, max]),
		sprintf("lower resources.limits.%s to %s or less", [resource, max]),
	)
}

violation contains v if {
	some c in workload.containers
	some resource, max in maximum
	value := c.container.resources.requests[resource]
	parse(resource, sprintf("%v", [value])) > parse(resource, max)
	v := workload.violation(
		sprintf("%s.resources.requests.%s", [c.path, resource]),
		sprintf("container %q requests %v %s, above the maximum of %s", [c.container.name, value, resource, max]),
		sprintf("lower resources.requests.%s to %s or less", [resource, max]),
	)
}
