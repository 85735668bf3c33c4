# Labels every workload should carry, on the pods it creates, so dashboards,
# cost reports and Services can find it.
package validate.required_labels

import data.regent.lib.workload.metadata_path
import data.regent.lib.workload.pod_noun
import data.regent.lib.workload.pod_metadata
import rego.v1

violation contains v if {
	some label in data.validate.required_labels.parameters.labels
	not pod_metadata.labels[label]
	v := {
		"path": concat("", [metadata_path, ".labels"]),
		"msg": sprintf("%s has no %q label", [pod_noun, label]),
		"fix": sprintf("add the label %s: <value>", [label]),
	}
}
