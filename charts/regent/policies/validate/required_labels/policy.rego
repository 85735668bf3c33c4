# Labels every workload should carry, on the pods it creates, so dashboards,
# cost reports and Services can find it.
package validate.required_labels

import data.regent.lib.workload
import rego.v1

violation contains v if {
	some label in data.validate.required_labels.parameters.labels
	not workload.pod_metadata.labels[label]
	v := workload.violation(
		sprintf("%s.labels", [workload.metadata_path]),
		sprintf("the pod template has no %q label", [label]),
		sprintf("add the label %s: <value>", [label]),
	)
}
