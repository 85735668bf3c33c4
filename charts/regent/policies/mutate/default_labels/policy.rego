# Labels every workload and the pods it creates carry, added when absent; a
# label the user set keeps its value.
package mutate.default_labels

import data.regent.lib.workload
import rego.v1

labels := data.mutate.default_labels.parameters.labels

patch contains op if {
	some key, value in labels
	not workload.object.metadata.labels[key]
	op := workload.add(sprintf("/metadata/labels/%s", [workload.pointer_token(key)]), value)
}

patch contains op if {
	workload.kind != "Pod"
	some key, value in labels
	not workload.pod_metadata.labels[key]
	op := workload.add(sprintf("%s/labels/%s", [workload.metadata_pointer, workload.pointer_token(key)]), value)
}
