# Added Linux capabilities from the data-driven deny list.
package validate.capabilities

import data.regent.lib.workload.containers
import rego.v1

forbidden := {upper(c) | some c in data.validate.capabilities.parameters.forbidden}

violation contains v if {
	some c in containers
	some i, cap in c.container.securityContext.capabilities.add
	trim_prefix(upper(cap), "CAP_") in forbidden
	v := {
		"path": sprintf("%s.securityContext.capabilities.add[%d]", [c.path, i]),
		"msg": sprintf("container %q adds capability %s", [c.container.name, cap]),
		"fix": sprintf("remove %s from capabilities.add (drop ALL and add only what the process needs)", [cap]),
	}
}
