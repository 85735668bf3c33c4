# Every container and init container gets CPU and memory requests when it
# lacks them, and limits only when `parameters.limits` asks for them. A value
# the user set is never replaced, and a default never contradicts one: a
# default request is capped at the user's limit and a default limit is raised
# to the user's request. The developer is told (`warning`), so a Pod sized by
# the cluster rather than by its author is never a surprise.
package mutate.default_resources

import data.regent.lib.workload.containers
import data.regent.lib.workload.add
import rego.v1

defaults := data.mutate.default_resources.parameters

quantity(resource, q) := units.parse_bytes(sprintf("%v", [q])) if resource == "memory"

quantity(resource, q) := units.parse(sprintf("%v", [q])) if resource != "memory"

# Ephemeral containers cannot carry resources.
target_containers contains c if {
	some c in containers
	c.field != "ephemeralContainers"
}

request_default(ctr, resource, value) := value if not ctr.resources.limits[resource]

request_default(ctr, resource, value) := value if {
	limit := ctr.resources.limits[resource]
	quantity(resource, value) <= quantity(resource, limit)
}

request_default(ctr, resource, value) := limit if {
	limit := ctr.resources.limits[resource]
	quantity(resource, value) > quantity(resource, limit)
}

limit_default(ctr, resource, value) := value if not ctr.resources.requests[resource]

limit_default(ctr, resource, value) := value if {
	request := ctr.resources.requests[resource]
	quantity(resource, value) >= quantity(resource, request)
}

limit_default(ctr, resource, value) := request if {
	request := ctr.resources.requests[resource]
	quantity(resource, value) < quantity(resource, request)
}

patch contains op if {
	some c in target_containers
	some resource, value in defaults.requests
	not c.container.resources.requests[resource]
	op := add(
		sprintf("%s/resources/requests/%s", [c.pointer, resource]),
		request_default(c.container, resource, value),
	)
}

patch contains op if {
	some c in target_containers
	some resource, value in defaults.limits
	not c.container.resources.limits[resource]
	op := add(
		sprintf("%s/resources/limits/%s", [c.pointer, resource]),
		limit_default(c.container, resource, value),
	)
}

defaulted(c) if {
	some resource, _ in defaults.requests
	not c.container.resources.requests[resource]
}

defaulted(c) if {
	some resource, _ in defaults.limits
	not c.container.resources.limits[resource]
}

# What the defaults are, e.g. "requests cpu 100m, memory 128Mi".
summary := concat("; ", [sprintf("%s %s", [kind, concat(", ", [sprintf("%s %v", [r, v]) | some r, v in defaults[kind]])]) |
	some kind in ["requests", "limits"]
	count(defaults[kind]) > 0
])

warning contains msg if {
	names := sort([sprintf("%q", [c.container.name]) | some c in target_containers; defaulted(c)])
	count(names) > 0
	msg := sprintf("default resources (%s) were set where %s declared none; declare your own resources to size %s", [summary, who(names), them(names)])
}

who(names) := sprintf("container %s", names) if count(names) == 1

who(names) := sprintf("containers %s", [concat(", ", names)]) if count(names) > 1

them(names) := "it" if count(names) == 1

them(names) := "them" if count(names) > 1
