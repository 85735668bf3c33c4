# The Kubernetes Pod Security Standards, exactly as Pod Security Admission
# (k8s.io/pod-security-admission, policy/check_*.go) implements them for each
# Kubernetes version from v1.0 to v1.37: the baseline and restricted levels,
# every control, on Pods and every pod template, init and ephemeral
# containers included.
#
# Up to three modes, as Pod Security Admission has them: `level` (the
# policy's enforcement), `warn` (warnings) and `audit` (audit reports only),
# each a level at a version. A namespace's level comes from, in order: the
# first `namespaces` entry whose glob matches, the Namespace's
# pod-security.kubernetes.io labels (when the Namespace is known), the
# defaults. One violation per offending field, naming its control
# (`pod_security/<control>` in a policy exception).
package validate.pod_security

import data.regent.lib.workload.containers
import data.regent.lib.workload.pod_metadata
import data.regent.lib.workload.pod_spec
import data.regent.lib.workload.spec_path
import data.regent.lib.workload.volumes
import rego.v1

params := data.validate.pod_security.parameters

# The newest version whose standard is defined here; a later one means it.
latest := 37

level_rank := {"privileged": 0, "baseline": 1, "restricted": 2}

# "v1.25" -> 25; "latest" or a later version -> latest.
minor(v) := latest if v == "latest"

minor(v) := min([latest, to_number(trim_prefix(v, "v1."))]) if {
	v != "latest"
	regex.match(`^v1\.[0-9]+$`, v)
}

# ---- the levels in force for this request ----

namespace := input.request.namespace

# The request's Namespace (input.namespace: Regent attaches it when the
# inventory holds Namespaces) and its labels.
labels := ls if {
	object.get(params, "namespaceLabels", true)
	ls := object.get(input.namespace, ["metadata", "labels"], {})
} else := {}

# The first `namespaces` entry whose glob matches the request's namespace.
override := entries[0] if {
	entries := [e |
		some e in object.get(params, "namespaces", [])
		some g in e.namespaces
		glob.match(g, [], namespace)
	]
}

# A mode's level and version: the first matching `namespaces` entry, else
# the Namespace's label (when valid), else the default.
setting(mode, field, default_value) := value if {
	value := override_value(mode, field)
} else := value if {
	value := labels[label_key(mode, field)]
	valid_setting(field, value)
} else := default_value

override_value("enforce", field) := override[field]

override_value(mode, field) := override[mode][field] if mode != "enforce"

valid_setting("level", value) if level_rank[value]

valid_setting("version", value) if minor(value)

label_key(mode, "level") := sprintf("pod-security.kubernetes.io/%s", [mode])

label_key(mode, "version") := sprintf("pod-security.kubernetes.io/%s-version", [mode])

defaults := {
	"enforce": {"level": object.get(params, "level", "baseline"), "version": object.get(params, "version", "latest")},
	"warn": object.union({"level": "privileged", "version": "latest"}, object.get(params, "warn", {})),
	"audit": object.union({"level": "privileged", "version": "latest"}, object.get(params, "audit", {})),
}

# What a finding in each mode does: the policy's own enforcement, a
# warning, or an audit result.
mode_enforcement := {"enforce": "deny", "warn": "warn", "audit": "dryrun"}

enforcement_rank := {"deny": 3, "warn": 2, "dryrun": 1}

modes contains m if {
	some name, d in defaults
	level := setting(name, "level", d.level)
	level_rank[level] > 0
	m := {"mode": name, "rank": level_rank[level], "minor": minor(setting(name, "version", d.version))}
}

# ---- the controls: their level, since which version, what overrides them ----

controls := {
	"host_namespaces": {"level": 1, "since": 0, "title": "Host Namespaces"},
	"privileged": {"level": 1, "since": 0, "title": "Privileged Containers"},
	"capabilities_baseline": {"level": 1, "since": 0, "title": "Capabilities"},
	"host_path_volumes": {"level": 1, "since": 0, "title": "HostPath Volumes"},
	"host_ports": {"level": 1, "since": 0, "title": "Host Ports"},
	"host_probes": {"level": 1, "since": 34, "title": "Host Probes / Lifecycle Hooks"},
	"app_armor": {"level": 1, "since": 0, "title": "AppArmor"},
	"se_linux": {"level": 1, "since": 0, "title": "SELinux"},
	"proc_mount": {"level": 1, "since": 0, "title": "/proc Mount Type"},
	"seccomp_baseline": {"level": 1, "since": 0, "title": "Seccomp"},
	"sysctls": {"level": 1, "since": 0, "title": "Sysctls"},
	"windows_host_process": {"level": 1, "since": 0, "title": "HostProcess"},
	"restricted_volumes": {"level": 2, "since": 0, "title": "Volume Types"},
	"allow_privilege_escalation": {"level": 2, "since": 8, "title": "Privilege Escalation"},
	"run_as_non_root": {"level": 2, "since": 0, "title": "Running as Non-root"},
	"run_as_user": {"level": 2, "since": 23, "title": "Running as Non-root user"},
	"seccomp_restricted": {"level": 2, "since": 19, "title": "Seccomp"},
	"capabilities_restricted": {"level": 2, "since": 22, "title": "Capabilities"},
	"proc_mount_restricted": {"level": 2, "since": 35, "title": "/proc Mount Type"},
}

# Restricted controls that replace a baseline control from their version on.
overrides := {
	"host_path_volumes": "restricted_volumes",
	"capabilities_baseline": "capabilities_restricted",
	"seccomp_baseline": "seccomp_restricted",
	"proc_mount": "proc_mount_restricted",
}

exempt contains control if {
	some e in object.get(params, "exempt", [])
	some g in e.namespaces
	glob.match(g, [], namespace)
	some control in e.controls
}

# Whether `control` is checked in mode `m`.
active(m, control) if {
	c := controls[control]
	m.rank >= c.level
	m.minor >= c.since
	not overridden(m, control)
	not exempt[control]
}

overridden(m, control) if {
	by := overrides[control]
	active_alone(m, by)
}

active_alone(m, control) if {
	c := controls[control]
	m.rank >= c.level
	m.minor >= c.since
}

# ---- helpers as Pod Security Admission reads the spec ----

# A pointer field is set when present and not null.
set(obj, key) if {
	value := obj[key]
	value != null
}

sc(c) := object.get(c, "securityContext", {}) if {
	is_object(object.get(c, "securityContext", {}))
} else := {}

pod_sc := object.get(pod_spec, "securityContext", {}) if {
	is_object(object.get(pod_spec, "securityContext", {}))
} else := {}

user_namespace if pod_spec.hostUsers == false

windows if pod_spec.os.name == "windows"

cname(c) := object.get(c.container, "name", "")

level_name := {1: "baseline", 2: "restricted"}

finding(m, control, path, what, fix) := {
	"mode": m.mode,
	"control": control,
	"path": path,
	"msg": sprintf("%s (Pod Security %s: %s)", [what, level_name[controls[control].level], controls[control].title]),
	"fix": fix,
}

# ---- baseline ----

findings contains f if {
	some m in modes
	active(m, "host_namespaces")
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	pod_spec[field] == true
	f := finding(m, "host_namespaces", sprintf("%s.%s", [spec_path, field]),
		sprintf("the pod shares the node's %s", [{"hostNetwork": "network namespace", "hostPID": "process namespace", "hostIPC": "IPC namespace"}[field]]),
		sprintf("remove %s or set it to false", [field]))
}

findings contains f if {
	some m in modes
	active(m, "privileged")
	some c in containers
	sc(c.container).privileged == true
	f := finding(m, "privileged", sprintf("%s.securityContext.privileged", [c.path]),
		sprintf("container %q runs privileged", [cname(c)]),
		"remove securityContext.privileged or set it to false")
}

baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

findings contains f if {
	some m in modes
	active(m, "capabilities_baseline")
	some c in containers
	some i, cap in object.get(sc(c.container), ["capabilities", "add"], [])
	not baseline_capabilities[cap]
	f := finding(m, "capabilities_baseline", sprintf("%s.securityContext.capabilities.add[%d]", [c.path, i]),
		sprintf("container %q adds capability %v, beyond the default set", [cname(c), cap]),
		sprintf("remove %v from capabilities.add", [cap]))
}

findings contains f if {
	some m in modes
	active(m, "host_path_volumes")
	some v in volumes
	set(v.volume, "hostPath")
	f := finding(m, "host_path_volumes", sprintf("%s.hostPath", [v.path]),
		sprintf("volume %q mounts a path of the node", [object.get(v.volume, "name", "")]),
		"use an emptyDir, a ConfigMap or a PersistentVolumeClaim instead of hostPath")
}

findings contains f if {
	some m in modes
	active(m, "host_ports")
	some c in containers
	some j, p in object.get(c.container, "ports", [])
	set(p, "hostPort")
	p.hostPort != 0
	f := finding(m, "host_ports", sprintf("%s.ports[%d].hostPort", [c.path, j]),
		sprintf("container %q uses host port %v", [cname(c), p.hostPort]),
		"remove hostPort; expose the Pod through a Service")
}

probe_fields := ["livenessProbe", "readinessProbe", "startupProbe"]

findings contains f if {
	some m in modes
	active(m, "host_probes")
	some c in containers
	some where in host_fields(c.container)
	f := finding(m, "host_probes", sprintf("%s.%s", [c.path, where.path]),
		sprintf("container %q sends a probe or lifecycle hook to host %q", [cname(c), where.host]),
		"remove host: probes and hooks go to the Pod's own IP")
}

host_fields(ctr) := array.concat(probes, hooks) if {
	probes := [x |
		some probe in probe_fields
		some handler in ["httpGet", "tcpSocket"]
		host := object.get(ctr, [probe, handler, "host"], "")
		is_string(host)
		host != ""
		x := {"path": sprintf("%s.%s.host", [probe, handler]), "host": host}
	]
	hooks := [x |
		some hook in ["postStart", "preStop"]
		some handler in ["httpGet", "tcpSocket"]
		host := object.get(ctr, ["lifecycle", hook, handler, "host"], "")
		is_string(host)
		host != ""
		x := {"path": sprintf("lifecycle.%s.%s.host", [hook, handler]), "host": host}
	]
}

# AppArmor: the profile type where set, and the beta annotations.
apparmor_types := {"RuntimeDefault", "Localhost"}

findings contains f if {
	some m in modes
	active(m, "app_armor")
	set(pod_sc, "appArmorProfile")
	t := object.get(pod_sc.appArmorProfile, "type", "")
	not apparmor_types[t]
	f := finding(m, "app_armor", sprintf("%s.securityContext.appArmorProfile.type", [spec_path]),
		sprintf("the pod sets AppArmor profile %q", [t]), "set appArmorProfile.type to RuntimeDefault or Localhost, or remove it")
}

findings contains f if {
	some m in modes
	active(m, "app_armor")
	some c in containers
	set(sc(c.container), "appArmorProfile")
	t := object.get(sc(c.container).appArmorProfile, "type", "")
	not apparmor_types[t]
	f := finding(m, "app_armor", sprintf("%s.securityContext.appArmorProfile.type", [c.path]),
		sprintf("container %q sets AppArmor profile %q", [cname(c), t]), "set appArmorProfile.type to RuntimeDefault or Localhost, or remove it")
}

findings contains f if {
	some m in modes
	active(m, "app_armor")
	some key, value in object.get(pod_metadata, "annotations", {})
	startswith(key, "container.apparmor.security.beta.kubernetes.io/")
	not allowed_apparmor_annotation(value)
	f := finding(m, "app_armor", sprintf("metadata.annotations[%q]", [key]),
		sprintf("annotation %s sets AppArmor profile %q", [key, value]), "use runtime/default or localhost/<profile>, or remove the annotation")
}

allowed_apparmor_annotation(v) if v == ""

allowed_apparmor_annotation(v) if v == "runtime/default"

allowed_apparmor_annotation(v) if startswith(v, "localhost/")

# SELinux: type from an allowed set, no user, no role.
selinux_allowed(m) := {"", "container_t", "container_init_t", "container_kvm_t"} if m.minor < 31

selinux_allowed(m) := {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"} if m.minor >= 31

selinux_setters contains s if {
	set(pod_sc, "seLinuxOptions")
	s := {"opts": pod_sc.seLinuxOptions, "path": sprintf("%s.securityContext.seLinuxOptions", [spec_path]), "who": "the pod"}
}

selinux_setters contains s if {
	some c in containers
	set(sc(c.container), "seLinuxOptions")
	s := {"opts": sc(c.container).seLinuxOptions, "path": sprintf("%s.securityContext.seLinuxOptions", [c.path]), "who": sprintf("container %q", [cname(c)])}
}

findings contains f if {
	some m in modes
	active(m, "se_linux")
	some s in selinux_setters
	t := object.get(s.opts, "type", "")
	not selinux_allowed(m)[t]
	f := finding(m, "se_linux", sprintf("%s.type", [s.path]),
		sprintf("%s sets SELinux type %q", [s.who, t]), "remove seLinuxOptions.type or use container_t")
}

findings contains f if {
	some m in modes
	active(m, "se_linux")
	some s in selinux_setters
	some field in ["user", "role"]
	value := object.get(s.opts, field, "")
	value != ""
	f := finding(m, "se_linux", sprintf("%s.%s", [s.path, field]),
		sprintf("%s sets SELinux %s %q", [s.who, field, value]), sprintf("remove seLinuxOptions.%s", [field]))
}

# /proc mount: Default only (baseline: any value in a user namespace from v1.35).
findings contains f if {
	some m in modes
	some control in ["proc_mount", "proc_mount_restricted"]
	active(m, control)
	not proc_mount_relaxed(m, control)
	some c in containers
	set(sc(c.container), "procMount")
	sc(c.container).procMount != "Default"
	f := finding(m, control, sprintf("%s.securityContext.procMount", [c.path]),
		sprintf("container %q sets procMount %v", [cname(c), sc(c.container).procMount]), "remove procMount or set it to Default")
}

proc_mount_relaxed(m, "proc_mount") if {
	m.minor >= 35
	user_namespace
}

# Seccomp, baseline: before v1.19 the alpha annotations, from v1.19 the fields.
seccomp_types := {"RuntimeDefault", "Localhost"}

valid_seccomp_annotation(v) if v == "runtime/default"

valid_seccomp_annotation(v) if v == "docker/default"

valid_seccomp_annotation(v) if startswith(v, "localhost/")

findings contains f if {
	some m in modes
	active(m, "seccomp_baseline")
	m.minor < 19
	annotations := object.get(pod_metadata, "annotations", {})
	some key in seccomp_annotation_keys
	value := annotations[key]
	not valid_seccomp_annotation(value)
	f := finding(m, "seccomp_baseline", sprintf("metadata.annotations[%q]", [key]),
		sprintf("annotation %s sets seccomp profile %q", [key, value]), "use runtime/default or localhost/<profile>")
}

seccomp_annotation_keys contains "seccomp.security.alpha.kubernetes.io/pod"

seccomp_annotation_keys contains sprintf("container.seccomp.security.alpha.kubernetes.io/%s", [cname(c)]) if some c in containers

seccomp_setters contains s if {
	set(pod_sc, "seccompProfile")
	s := {"type": object.get(pod_sc.seccompProfile, "type", ""), "path": sprintf("%s.securityContext.seccompProfile.type", [spec_path]), "who": "the pod"}
}

seccomp_setters contains s if {
	some c in containers
	set(sc(c.container), "seccompProfile")
	s := {"type": object.get(sc(c.container).seccompProfile, "type", ""), "path": sprintf("%s.securityContext.seccompProfile.type", [c.path]), "who": sprintf("container %q", [cname(c)])}
}

findings contains f if {
	some m in modes
	some control in ["seccomp_baseline", "seccomp_restricted"]
	active(m, control)
	m.minor >= 19
	not seccomp_windows_exempt(m, control)
	some s in seccomp_setters
	not seccomp_types[s.type]
	f := finding(m, control, s.path, sprintf("%s sets seccomp profile %q", [s.who, s.type]), "set seccompProfile.type to RuntimeDefault or Localhost")
}

# Restricted: every container needs a valid profile, its own or the pod's.
pod_seccomp_valid if seccomp_types[object.get(pod_sc, ["seccompProfile", "type"], "")]

findings contains f if {
	some m in modes
	active(m, "seccomp_restricted")
	not seccomp_windows_exempt(m, "seccomp_restricted")
	not pod_seccomp_valid
	some c in containers
	not set(sc(c.container), "seccompProfile")
	f := finding(m, "seccomp_restricted", sprintf("%s.securityContext.seccompProfile", [c.path]),
		sprintf("container %q has no seccomp profile", [cname(c)]),
		"set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container")
}

seccomp_windows_exempt(m, "seccomp_restricted") if {
	m.minor >= 25
	windows
}

# Sysctls: the safe set of each version.
sysctls_1_0 := {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}

sysctls_1_27 := sysctls_1_0 | {"net.ipv4.ip_local_reserved_ports"}

sysctls_1_29 := sysctls_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}

sysctls_1_32 := sysctls_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}

sysctls_1_37 := sysctls_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}

safe_sysctls(m) := sysctls_1_0 if m.minor < 27

safe_sysctls(m) := sysctls_1_27 if {
	m.minor >= 27
	m.minor < 29
}

safe_sysctls(m) := sysctls_1_29 if {
	m.minor >= 29
	m.minor < 32
}

safe_sysctls(m) := sysctls_1_32 if {
	m.minor >= 32
	m.minor < 37
}

safe_sysctls(m) := sysctls_1_37 if m.minor >= 37

findings contains f if {
	some m in modes
	active(m, "sysctls")
	some i, s in object.get(pod_sc, "sysctls", [])
	name := object.get(s, "name", "")
	not safe_sysctls(m)[name]
	f := finding(m, "sysctls", sprintf("%s.securityContext.sysctls[%d].name", [spec_path, i]),
		sprintf("the pod sets sysctl %v, which is not namespaced and isolated", [name]), sprintf("remove sysctl %v", [name]))
}

findings contains f if {
	some m in modes
	active(m, "windows_host_process")
	object.get(pod_sc, ["windowsOptions", "hostProcess"], false) == true
	f := finding(m, "windows_host_process", sprintf("%s.securityContext.windowsOptions.hostProcess", [spec_path]),
		"the pod runs as a Windows host process", "remove windowsOptions.hostProcess or set it to false")
}

findings contains f if {
	some m in modes
	active(m, "windows_host_process")
	some c in containers
	object.get(sc(c.container), ["windowsOptions", "hostProcess"], false) == true
	f := finding(m, "windows_host_process", sprintf("%s.securityContext.windowsOptions.hostProcess", [c.path]),
		sprintf("container %q runs as a Windows host process", [cname(c)]), "remove windowsOptions.hostProcess or set it to false")
}

# ---- restricted ----

allowed_volume_sources := ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret"]

findings contains f if {
	some m in modes
	active(m, "restricted_volumes")
	some v in volumes
	not allowed_volume(v.volume)
	kind := volume_kind(v.volume)
	f := finding(m, "restricted_volumes", volume_path(v, kind),
		sprintf("volume %q uses volume type %s", [object.get(v.volume, "name", ""), kind]),
		"use a configMap, secret, emptyDir, projected, downwardAPI, csi, ephemeral, image or persistentVolumeClaim volume")
}

allowed_volume(vol) if {
	some source in allowed_volume_sources
	set(vol, source)
}

# A volume naming no source is an emptyDir: the API server defaults it so
# before admission, and Pod Security Admission judges the defaulted Pod.
allowed_volume(vol) if {
	not has_source(vol)
}

has_source(vol) if {
	some key, value in vol
	key != "name"
	value != null
}

volume_path(v, "unknown") := v.path

volume_path(v, kind) := sprintf("%s.%s", [v.path, kind]) if kind != "unknown"

# The volume's type, named as Pod Security Admission names it.
restricted_volume_kinds := [
	"hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs",
	"rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
	"azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos",
]

volume_kind(vol) := kind if {
	kinds := [k | some k in restricted_volume_kinds; set(vol, k)]
	kind := kinds[0]
} else := "unknown"

findings contains f if {
	some m in modes
	active(m, "allow_privilege_escalation")
	not windows_exempt(m)
	some c in containers
	object.get(sc(c.container), "allowPrivilegeEscalation", null) != false
	f := finding(m, "allow_privilege_escalation", sprintf("%s.securityContext.allowPrivilegeEscalation", [c.path]),
		sprintf("container %q may escalate privileges", [cname(c)]), "set securityContext.allowPrivilegeEscalation: false")
}

windows_exempt(m) if {
	m.minor >= 25
	windows
}

user_namespace_exempt(m) if {
	m.minor >= 35
	user_namespace
}

pod_non_root if pod_sc.runAsNonRoot == true

findings contains f if {
	some m in modes
	active(m, "run_as_non_root")
	not user_namespace_exempt(m)
	pod_sc.runAsNonRoot == false
	f := finding(m, "run_as_non_root", sprintf("%s.securityContext.runAsNonRoot", [spec_path]),
		"the pod sets runAsNonRoot: false", "set securityContext.runAsNonRoot: true")
}

findings contains f if {
	some m in modes
	active(m, "run_as_non_root")
	not user_namespace_exempt(m)
	some c in containers
	sc(c.container).runAsNonRoot == false
	f := finding(m, "run_as_non_root", sprintf("%s.securityContext.runAsNonRoot", [c.path]),
		sprintf("container %q sets runAsNonRoot: false", [cname(c)]), "set securityContext.runAsNonRoot: true")
}

findings contains f if {
	some m in modes
	active(m, "run_as_non_root")
	not user_namespace_exempt(m)
	not pod_non_root
	some c in containers
	not set(sc(c.container), "runAsNonRoot")
	f := finding(m, "run_as_non_root", sprintf("%s.securityContext.runAsNonRoot", [c.path]),
		sprintf("container %q may run as root", [cname(c)]), "set securityContext.runAsNonRoot: true on the pod or the container")
}

findings contains f if {
	some m in modes
	active(m, "run_as_user")
	not user_namespace_exempt(m)
	pod_sc.runAsUser == 0
	f := finding(m, "run_as_user", sprintf("%s.securityContext.runAsUser", [spec_path]),
		"the pod runs as user 0 (root)", "set securityContext.runAsUser to a non-zero user, or remove it")
}

findings contains f if {
	some m in modes
	active(m, "run_as_user")
	not user_namespace_exempt(m)
	some c in containers
	sc(c.container).runAsUser == 0
	f := finding(m, "run_as_user", sprintf("%s.securityContext.runAsUser", [c.path]),
		sprintf("container %q runs as user 0 (root)", [cname(c)]), "set securityContext.runAsUser to a non-zero user, or remove it")
}

findings contains f if {
	some m in modes
	active(m, "capabilities_restricted")
	not windows_exempt(m)
	some c in containers
	not drops_all(c.container)
	f := finding(m, "capabilities_restricted", sprintf("%s.securityContext.capabilities.drop", [c.path]),
		sprintf("container %q does not drop ALL capabilities", [cname(c)]), "set securityContext.capabilities.drop: [ALL]")
}

drops_all(ctr) if "ALL" in object.get(sc(ctr), ["capabilities", "drop"], [])

findings contains f if {
	some m in modes
	active(m, "capabilities_restricted")
	not windows_exempt(m)
	some c in containers
	some i, cap in object.get(sc(c.container), ["capabilities", "add"], [])
	cap != "NET_BIND_SERVICE"
	f := finding(m, "capabilities_restricted", sprintf("%s.securityContext.capabilities.add[%d]", [c.path, i]),
		sprintf("container %q adds capability %v", [cname(c), cap]), sprintf("remove %v from capabilities.add (only NET_BIND_SERVICE may be added)", [cap]))
}

# ---- one violation per field, in its strongest mode ----

violation contains v if {
	some f in findings
	not stronger(f)
	v := object.union(
		{"path": f.path, "msg": f.msg, "fix": f.fix, "control": f.control},
		mode_field[f.mode],
	)
}

mode_field := {"enforce": {}, "warn": {"enforcement": "warn"}, "audit": {"enforcement": "dryrun"}}

stronger(f) if {
	some g in findings
	g.path == f.path
	enforcement_rank[mode_enforcement[g.mode]] > enforcement_rank[mode_enforcement[f.mode]]
}

# The controls, for policy exceptions (`pod_security/<control>`).
control_names := object.keys(controls)
