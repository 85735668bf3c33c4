# CPU and memory limits or requests above the data-driven maximum: one
# container must not be able to take a whole node.
package validate.resource_limits

import data.regent.lib.workload.containers
import rego.v1

maximum := data.validate.resource_limits.parameters.maximum

# The maximum of each resource, parsed once per request.
parsed_maximum := {resource: quantity(resource, q) | some resource, q in maximum}

# A Kubernetes quantity as a number: a bare number already is one (cores or
# bytes); strings are parsed ("500m", "8Gi").
quantity(_, q) := q if is_number(q)

quantity("memory", q) := units.parse_bytes(q) if is_string(q)

quantity("cpu", q) := units.parse(q) if is_string(q)

violation contains v if {
	some c in containers
	some kind in ["limits", "requests"]
	some resource, value in c.container.resources[kind]
	quantity(resource, value) > parsed_maximum[resource]
	v := {
		"path": concat(".", [c.path, "resources", kind, resource]),
		"msg": sprintf("container %q %s", [c.container.name, message(kind, resource, value)]),
		"fix": sprintf("lower resources.%s.%s to %v or less", [kind, resource, maximum[resource]]),
	}
}

message("limits", resource, value) := sprintf("asks for a %s limit of %v, above the maximum of %v", [resource, value, maximum[resource]])

message("requests", resource, value) := sprintf("requests %v %s, above the maximum of %v", [value, resource, maximum[resource]])
