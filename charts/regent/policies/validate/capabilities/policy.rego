# Added Linux capabilities from the data-driven deny list.
package validate.capabilities

import data.regent.lib.workload
import rego.v1

forbidden := {upper(c) | some c in data.validate.capabilities.parameters.forbidden}

violation contains v if {
	some c in workload.containers
	some i, cap in c.container.securityContext.capabilities.add
	normalized := upper(trim_prefix(upper(cap), "CAP_"))
	normalized in forbidden
	v := workload.violation(
		sprintf("%s.securityContext.capabilities.add[%d]", [c.path, i]),
		sprintf("container %q adds capability %s", [c.container.name, cap]),
		sprintf("remove %s from capabilities.add (drop ALL and add only what the process needs)", [cap]),
	)
}
