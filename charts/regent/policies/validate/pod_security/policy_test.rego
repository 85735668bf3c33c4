package validate.pod_security_test

import data.test.fixtures
import data.validate.pod_security
import rego.v1

baseline := {"level": "baseline", "version": "latest"}

restricted := {"level": "restricted", "version": "latest"}

# The violations of a Pod with `spec`, at `params`.
found(spec, params) := vs if {
	vs := pod_security.violation with input as fixtures.review("Pod", spec)
		with data.validate.pod_security.parameters as params
}

# The one violation of a Pod with `spec` at `params`.
only(spec, params) := v if {
	vs := found(spec, params)
	count(vs) == 1
	some v in vs
}

# The restricted-clean spec with its first container changed.
container(changes) := fixtures.spec_with_container(changes)

pod(changes) := object.union(fixtures.good_spec, changes)

test_the_good_spec_passes_restricted_in_every_kind if {
	every kind in fixtures.kinds {
		count(pod_security.violation) == 0 with input as fixtures.review(kind, fixtures.good_spec)
			with data.validate.pod_security.parameters as restricted
	}
}

# One message per control, in the house style: path, what, the control, the fix.

test_host_namespaces if {
	v := only(pod({"hostPID": true}), baseline)
	v.path == "spec.hostPID"
	v.msg == "the pod shares the node's process namespace (Pod Security baseline: Host Namespaces)"
	v.fix == "remove hostPID or set it to false"
	v.control == "host_namespaces"
}

test_privileged if {
	v := only(container({"securityContext": {"privileged": true, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}), baseline)
	v.path == "spec.containers[0].securityContext.privileged"
	v.msg == "container \"web\" runs privileged (Pod Security baseline: Privileged Containers)"
	v.control == "privileged"
}

test_capabilities_baseline if {
	v := only(container({"securityContext": {"capabilities": {"add": ["CHOWN", "NET_ADMIN"]}}}), baseline)
	v.path == "spec.containers[0].securityContext.capabilities.add[1]"
	v.msg == "container \"web\" adds capability NET_ADMIN, beyond the default set (Pod Security baseline: Capabilities)"
	v.control == "capabilities_baseline"
}

test_host_path_volumes if {
	v := only(pod({"volumes": [{"name": "host", "hostPath": {"path": "/etc"}}]}), baseline)
	v.path == "spec.volumes[0].hostPath"
	v.msg == "volume \"host\" mounts a path of the node (Pod Security baseline: HostPath Volumes)"
}

test_host_ports if {
	v := only(container({"ports": [{"containerPort": 80}, {"containerPort": 8080, "hostPort": 8080}]}), baseline)
	v.path == "spec.containers[0].ports[1].hostPort"
	v.msg == "container \"web\" uses host port 8080 (Pod Security baseline: Host Ports)"
	v.fix == "remove hostPort; expose the Pod through a Service"
	v.control == "host_ports"
}

test_host_probes_since_1_34 if {
	spec := container({"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}, "lifecycle": {"preStop": {"tcpSocket": {"host": "node", "port": 1}}}})
	{v.path | some v in found(spec, baseline)} == {
		"spec.containers[0].livenessProbe.httpGet.host",
		"spec.containers[0].lifecycle.preStop.tcpSocket.host",
	}
	count(found(spec, {"level": "baseline", "version": "v1.33"})) == 0
}

test_app_armor if {
	v := only(pod({"securityContext": object.union(fixtures.good_spec.securityContext, {"appArmorProfile": {"type": "Unconfined"}})}), baseline)
	v.path == "spec.securityContext.appArmorProfile.type"
	v.msg == "the pod sets AppArmor profile \"Unconfined\" (Pod Security baseline: AppArmor)"
	annotated := pod_security.violation with input as fixtures.review_annotated("Pod", fixtures.good_spec, {"container.apparmor.security.beta.kubernetes.io/web": "unconfined"})
		with data.validate.pod_security.parameters as baseline
	{x.path | some x in annotated} == {"metadata.annotations[\"container.apparmor.security.beta.kubernetes.io/web\"]"}
}

test_se_linux_types_changed_in_1_31 if {
	spec := container({"securityContext": {"seLinuxOptions": {"type": "container_engine_t", "user": "root"}}})
	{v.path | some v in found(spec, baseline)} == {"spec.containers[0].securityContext.seLinuxOptions.user"}
	{v.path | some v in found(spec, {"level": "baseline", "version": "v1.30"})} == {
		"spec.containers[0].securityContext.seLinuxOptions.type",
		"spec.containers[0].securityContext.seLinuxOptions.user",
	}
}

test_proc_mount_relaxed_in_user_namespaces_for_baseline_only if {
	spec := object.union(container({"securityContext": {"procMount": "Unmasked"}}), {"hostUsers": false})
	count(found(spec, baseline)) == 0
	only(spec, restricted).control == "proc_mount_restricted"
	only(spec, {"level": "baseline", "version": "v1.34"}).control == "proc_mount"
}

test_seccomp_baseline_annotations_before_1_19_fields_after if {
	annotated := fixtures.review_annotated("Pod", fixtures.good_spec, {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"})
	count(pod_security.violation) == 1 with input as annotated
		with data.validate.pod_security.parameters as {"level": "baseline", "version": "v1.18"}
	count(pod_security.violation) == 0 with input as annotated
		with data.validate.pod_security.parameters as baseline
	v := only(pod({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "Unconfined"}}}), baseline)
	v.path == "spec.securityContext.seccompProfile.type"
	v.control == "seccomp_baseline"
}

test_sysctls_by_version if {
	spec := pod({"securityContext": object.union(fixtures.good_spec.securityContext, {"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096"}, {"name": "kernel.msgmax", "value": "1"}]})})
	{v.path | some v in found(spec, baseline)} == {"spec.securityContext.sysctls[1].name"}
	{v.path | some v in found(spec, {"level": "baseline", "version": "v1.31"})} == {
		"spec.securityContext.sysctls[0].name",
		"spec.securityContext.sysctls[1].name",
	}
}

test_windows_host_process if {
	v := only(container({"securityContext": {"windowsOptions": {"hostProcess": true}}}), baseline)
	v.msg == "container \"web\" runs as a Windows host process (Pod Security baseline: HostProcess)"
}

test_restricted_volumes_replace_host_path if {
	spec := pod({"volumes": [{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "nfs": {"server": "x", "path": "/"}}, {"name": "c"}, {"name": "d", "emptyDir": {}}]})
	vs := found(spec, restricted)
	{v.path | some v in vs} == {"spec.volumes[0].hostPath", "spec.volumes[1].nfs"}
	{v.control | some v in vs} == {"restricted_volumes"}
}

test_allow_privilege_escalation_since_1_8_not_for_windows_since_1_25 if {
	spec := container({"securityContext": {"allowPrivilegeEscalation": null}})
	only(spec, restricted).control == "allow_privilege_escalation"
	count(found(spec, {"level": "restricted", "version": "v1.7"})) == 0
	count(found(object.union(spec, {"os": {"name": "windows"}}), restricted)) == 0
	count(found(object.union(spec, {"os": {"name": "windows"}}), {"level": "restricted", "version": "v1.24"})) == 1
}

test_run_as_non_root if {
	spec := pod({"securityContext": {"runAsNonRoot": null}})
	v := only(spec, restricted)
	v.path == "spec.containers[0].securityContext.runAsNonRoot"
	v.msg == "container \"web\" may run as root (Pod Security restricted: Running as Non-root)"
	count(found(object.union(spec, {"hostUsers": false}), restricted)) == 0
}

test_run_as_user_since_1_23 if {
	spec := container({"securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}})
	only(spec, restricted).control == "run_as_user"
	count(found(spec, {"level": "restricted", "version": "v1.22"})) == 0
}

test_seccomp_restricted_needs_a_profile if {
	spec := pod({"securityContext": {"seccompProfile": null}})
	v := only(spec, restricted)
	v.path == "spec.containers[0].securityContext.seccompProfile"
	v.control == "seccomp_restricted"
}

test_capabilities_restricted_since_1_22 if {
	spec := container({"securityContext": {"capabilities": {"drop": ["NET_RAW"], "add": ["NET_BIND_SERVICE", "CHOWN"]}}})
	{v.path | some v in found(spec, restricted)} == {
		"spec.containers[0].securityContext.capabilities.drop",
		"spec.containers[0].securityContext.capabilities.add[1]",
	}
	# Before 1.22, the baseline control: CHOWN is in the default set.
	count(found(spec, {"level": "restricted", "version": "v1.21"})) == 0
}

test_init_and_ephemeral_containers_are_checked if {
	bad := {"name": "debug", "image": "a:1", "securityContext": {"privileged": true}}
	spec := object.union(fixtures.good_spec, {"initContainers": [bad], "ephemeralContainers": [bad]})
	{v.path | some v in found(spec, baseline)} == {
		"spec.initContainers[0].securityContext.privileged",
		"spec.ephemeralContainers[0].securityContext.privileged",
	}
}

# Modes: warn and audit lower the enforcement; the strongest mode wins per field.

test_warn_and_audit_modes_lower_the_enforcement if {
	spec := container({"securityContext": {"privileged": true, "allowPrivilegeEscalation": null}})
	vs := found(spec, {"level": "baseline", "warn": {"level": "restricted"}})
	some p in vs
	p.path == "spec.containers[0].securityContext.privileged"
	not p.enforcement
	some e in vs
	e.control == "allow_privilege_escalation"
	e.enforcement == "warn"
	audit := found(spec, {"level": "privileged", "audit": {"level": "baseline"}})
	{v.enforcement | some v in audit} == {"dryrun"}
}

# Namespaces: `namespaces` entries win over the labels, the labels over the defaults.

with_namespace(spec, labels) := object.union(fixtures.review("Pod", spec), {"namespace": {"metadata": {"name": "shop", "labels": labels}}})

test_namespace_labels_set_the_levels if {
	spec := pod({"hostNetwork": true})
	count(pod_security.violation) == 0 with input as with_namespace(spec, {"pod-security.kubernetes.io/enforce": "privileged"})
		with data.validate.pod_security.parameters as baseline
	vs := pod_security.violation with input as with_namespace(fixtures.good_spec, {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "v1.0"})
		with data.validate.pod_security.parameters as {"level": "privileged"}
	count(vs) == 0
	warned := pod_security.violation with input as with_namespace(spec, {"pod-security.kubernetes.io/warn": "baseline"})
		with data.validate.pod_security.parameters as {"level": "privileged"}
	{v.enforcement | some v in warned} == {"warn"}
	# An invalid label is ignored: the default applies.
	count(pod_security.violation) == 1 with input as with_namespace(spec, {"pod-security.kubernetes.io/enforce": "lenient"})
		with data.validate.pod_security.parameters as baseline
	# Labels can be switched off.
	count(pod_security.violation) == 1 with input as with_namespace(spec, {"pod-security.kubernetes.io/enforce": "privileged"})
		with data.validate.pod_security.parameters as object.union(baseline, {"namespaceLabels": false})
}

test_namespace_entries_win_over_labels if {
	spec := pod({"hostNetwork": true})
	params := object.union(baseline, {"namespaces": [{"namespaces": ["sh*"], "level": "baseline"}]})
	count(pod_security.violation) == 1 with input as with_namespace(spec, {"pod-security.kubernetes.io/enforce": "privileged"})
		with data.validate.pod_security.parameters as params
	relaxed := object.union(baseline, {"namespaces": [{"namespaces": ["shop"], "level": "privileged"}]})
	count(pod_security.violation) == 0 with input as fixtures.review("Pod", spec)
		with data.validate.pod_security.parameters as relaxed
}

test_exempt_controls_per_namespace if {
	spec := pod({"hostNetwork": true, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]})
	params := object.union(baseline, {"exempt": [{"namespaces": ["shop"], "controls": ["host_namespaces"]}]})
	{v.control | some v in found(spec, params)} == {"host_path_volumes"}
	other := object.union(baseline, {"exempt": [{"namespaces": ["other-*"], "controls": ["host_namespaces"]}]})
	count(found(spec, other)) == 2
}

test_versions_later_than_the_newest_mean_the_newest if {
	spec := pod({"hostNetwork": true})
	count(found(spec, {"level": "baseline", "version": "v1.99"})) == 1
	pod_security.minor("v1.99") == pod_security.latest
}

test_every_control_is_named if {
	count(pod_security.control_names) == 19
}
