# Labels every workload and the pods it creates carry, added when absent; a
# label the user set keeps its value.
package mutate.default_labels

import data.regent.lib.workload.add
import data.regent.lib.workload.kind
import data.regent.lib.workload.metadata_pointer
import data.regent.lib.workload.pod_metadata
import data.regent.lib.workload.pointer_token
import rego.v1

labels := data.mutate.default_labels.parameters.labels

patch contains op if {
	some key, value in labels
	not input.request.object.metadata.labels[key]
	op := add(sprintf("/metadata/labels/%s", [pointer_token(key)]), value)
}

patch contains op if {
	kind != "Pod"
	some key, value in labels
	not pod_metadata.labels[key]
	op := add(sprintf("%s/labels/%s", [metadata_pointer, pointer_token(key)]), value)
}
