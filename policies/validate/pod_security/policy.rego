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

label_key(mode, "level") := concat("", ["pod-security.kubernetes.io/", mode])

label_key(mode, "version") := concat("", ["pod-security.kubernetes.io/", mode, "-version"])

defaults := {
	"enforce": {"level": object.get(params, "level", "baseline"), "version": object.get(params, "version", "latest")},
	"warn": object.union({"level": "privileged", "version": "latest"}, object.get(params, "warn", {})),
	"audit": object.union({"level": "privileged", "version": "latest"}, object.get(params, "audit", {})),
}

# A mode at a level and version: what its findings need (its name, level
# rank and minor version) and the controls it checks. Undefined for
# privileged.
mode(name, level, version) := m if {
	rank := level_rank[level]
	rank > 0
	v := minor(version)
	m := {"mode": name, "rank": rank, "minor": v, "checks": checked[rank][v]}
}

# The modes the settings alone give. This rule reads no input, so it is
# computed once per bundle, not per request.
default_modes contains m if {
	some name, d in defaults
	m := mode(name, d.level, d.version)
}

# The modes in force for this request: the settings' own, unless a
# `namespaces` entry matches or the Namespace carries a Pod Security label.
modes := default_modes if {
	not namespace_specific
} else := {m |
	some name, d in defaults
	m := mode(name, setting(name, "level", d.level), setting(name, "version", d.version))
}

namespace_specific if override

namespace_specific if {
	some key, _ in labels
	startswith(key, "pod-security.kubernetes.io/")
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

# Every level and version the standards define, with the controls checked
# there (a restricted control replaces its baseline counterpart from its
# version on). Reads no input: computed once per bundle.
checked := {rank: by_version |
	some rank in [1, 2]
	by_version := {v: cs |
		some v in numbers.range(0, latest)
		cs := {control: true |
			some control, c in controls
			rank >= c.level
			v >= c.since
			not replaced_at(control, rank, v)
		}
	}
}

replaced_at(control, rank, v) if {
	c := controls[overrides[control]]
	rank >= c.level
	v >= c.since
}

# The controls some mode checks for this request: a control no mode checks
# costs its rules one lookup.
checking := default_checking if {
	not namespace_specific
} else := {control | some m in modes; some control, _ in m.checks}

default_checking := {control | some m in default_modes; some control, _ in m.checks}

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

# Every container with its name and security context, read once per request.
ctrs := [x |
	some c in containers
	x := {"container": c.container, "path": c.path, "name": object.get(c.container, "name", ""), "sc": sc(c.container)}
]

# A version past every version defined.
never := 1000

# Versions from which the Windows and user-namespace relaxations hold.
windows_until := 25 if windows

else := never

user_namespace_until := 35 if user_namespace

else := never

# What the pod does against `control`, at `path`, whatever the mode: it
# counts in the modes checking the control at a version in [from, until).
found(control, path, what, fix) := {"control": control, "path": path, "what": what, "fix": fix, "from": 0, "until": never}

found_until(control, path, what, fix, until) := {"control": control, "path": path, "what": what, "fix": fix, "from": 0, "until": until}

# ---- baseline ----

findings contains f if {
	checking.host_namespaces
	some field in ["hostNetwork", "hostPID", "hostIPC"]
	pod_spec[field] == true
	f := found("host_namespaces", sprintf("%s.%s", [spec_path, field]),
		sprintf("the pod shares the node's %s", [{"hostNetwork": "network namespace", "hostPID": "process namespace", "hostIPC": "IPC namespace"}[field]]),
		sprintf("remove %s or set it to false", [field]))
}

findings contains f if {
	checking.privileged
	some c in ctrs
	c.sc.privileged == true
	f := found("privileged", sprintf("%s.securityContext.privileged", [c.path]),
		sprintf("container %q runs privileged", [c.name]),
		"remove securityContext.privileged or set it to false")
}

baseline_capabilities := {
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

findings contains f if {
	checking.capabilities_baseline
	some c in ctrs
	some i, cap in c.sc.capabilities.add
	not baseline_capabilities[cap]
	f := found("capabilities_baseline", sprintf("%s.securityContext.capabilities.add[%d]", [c.path, i]),
		sprintf("container %q adds capability %v, beyond the default set", [c.name, cap]),
		sprintf("remove %v from capabilities.add", [cap]))
}

findings contains f if {
	checking.host_path_volumes
	some v in volumes
	v.volume.hostPath != null
	f := found("host_path_volumes", sprintf("%s.hostPath", [v.path]),
		sprintf("volume %q mounts a path of the node", [object.get(v.volume, "name", "")]),
		"use an emptyDir, a ConfigMap or a PersistentVolumeClaim instead of hostPath")
}

findings contains f if {
	checking.host_ports
	some c in ctrs
	some j, p in c.container.ports
	p.hostPort != null
	p.hostPort != 0
	f := found("host_ports", sprintf("%s.ports[%d].hostPort", [c.path, j]),
		sprintf("container %q uses host port %v", [c.name, p.hostPort]),
		"remove hostPort; expose the Pod through a Service")
}

findings contains f if {
	checking.host_probes
	some c in ctrs
	some probe in ["livenessProbe", "readinessProbe", "startupProbe"]
	some handler in ["httpGet", "tcpSocket"]
	host := c.container[probe][handler].host
	is_string(host)
	host != ""
	f := host_probe_finding(c, sprintf("%s.%s.host", [probe, handler]), host)
}

findings contains f if {
	checking.host_probes
	some c in ctrs
	some hook in ["postStart", "preStop"]
	some handler in ["httpGet", "tcpSocket"]
	host := c.container.lifecycle[hook][handler].host
	is_string(host)
	host != ""
	f := host_probe_finding(c, sprintf("lifecycle.%s.%s.host", [hook, handler]), host)
}

host_probe_finding(c, where, host) := found("host_probes", sprintf("%s.%s", [c.path, where]),
	sprintf("container %q sends a probe or lifecycle hook to host %q", [c.name, host]),
	"remove host: probes and hooks go to the Pod's own IP")

# AppArmor: the profile type where set, and the beta annotations.
apparmor_types := {"RuntimeDefault", "Localhost"}

findings contains f if {
	checking.app_armor
	pod_sc.appArmorProfile != null
	t := object.get(pod_sc.appArmorProfile, "type", "")
	not apparmor_types[t]
	f := found("app_armor", sprintf("%s.securityContext.appArmorProfile.type", [spec_path]),
		sprintf("the pod sets AppArmor profile %q", [t]), "set appArmorProfile.type to RuntimeDefault or Localhost, or remove it")
}

findings contains f if {
	checking.app_armor
	some c in ctrs
	c.sc.appArmorProfile != null
	t := object.get(c.sc.appArmorProfile, "type", "")
	not apparmor_types[t]
	f := found("app_armor", sprintf("%s.securityContext.appArmorProfile.type", [c.path]),
		sprintf("container %q sets AppArmor profile %q", [c.name, t]), "set appArmorProfile.type to RuntimeDefault or Localhost, or remove it")
}

findings contains f if {
	checking.app_armor
	some key, value in object.get(pod_metadata, "annotations", {})
	startswith(key, "container.apparmor.security.beta.kubernetes.io/")
	not allowed_apparmor_annotation(value)
	f := found("app_armor", sprintf("metadata.annotations[%q]", [key]),
		sprintf("annotation %s sets AppArmor profile %q", [key, value]), "use runtime/default or localhost/<profile>, or remove the annotation")
}

allowed_apparmor_annotation(v) if v == ""

allowed_apparmor_annotation(v) if v == "runtime/default"

allowed_apparmor_annotation(v) if startswith(v, "localhost/")

# SELinux: type from an allowed set (container_engine_t from v1.31), no
# user, no role.
selinux_types := {"", "container_t", "container_init_t", "container_kvm_t"}

# Until which version a type is refused (never for an unknown one).
selinux_type_until(t) := 31 if t == "container_engine_t"

else := never

selinux_setters contains s if {
	pod_sc.seLinuxOptions != null
	s := {"opts": pod_sc.seLinuxOptions, "path": sprintf("%s.securityContext.seLinuxOptions", [spec_path]), "who": "the pod"}
}

selinux_setters contains s if {
	some c in ctrs
	c.sc.seLinuxOptions != null
	s := {"opts": c.sc.seLinuxOptions, "path": sprintf("%s.securityContext.seLinuxOptions", [c.path]), "who": sprintf("container %q", [c.name])}
}

findings contains f if {
	checking.se_linux
	some s in selinux_setters
	t := object.get(s.opts, "type", "")
	not selinux_types[t]
	f := found_until("se_linux", sprintf("%s.type", [s.path]),
		sprintf("%s sets SELinux type %q", [s.who, t]), "remove seLinuxOptions.type or use container_t", selinux_type_until(t))
}

findings contains f if {
	checking.se_linux
	some s in selinux_setters
	some field in ["user", "role"]
	value := object.get(s.opts, field, "")
	value != ""
	f := found("se_linux", sprintf("%s.%s", [s.path, field]),
		sprintf("%s sets SELinux %s %q", [s.who, field, value]), sprintf("remove seLinuxOptions.%s", [field]))
}

# /proc mount: Default only (baseline: any value in a user namespace from v1.35).
findings contains f if {
	some control in ["proc_mount", "proc_mount_restricted"]
	checking[control]
	some c in ctrs
	c.sc.procMount != null
	c.sc.procMount != "Default"
	f := found_until(control, sprintf("%s.securityContext.procMount", [c.path]),
		sprintf("container %q sets procMount %v", [c.name, c.sc.procMount]), "remove procMount or set it to Default",
		proc_mount_until[control])
}

proc_mount_until := {"proc_mount": user_namespace_until, "proc_mount_restricted": never}

# Seccomp, baseline: before v1.19 the alpha annotations, from v1.19 the fields.
seccomp_types := {"RuntimeDefault", "Localhost"}

valid_seccomp_annotation(v) if v == "runtime/default"

valid_seccomp_annotation(v) if v == "docker/default"

valid_seccomp_annotation(v) if startswith(v, "localhost/")

findings contains f if {
	checking.seccomp_baseline
	annotations := object.get(pod_metadata, "annotations", {})
	some key in seccomp_annotation_keys
	value := annotations[key]
	not valid_seccomp_annotation(value)
	f := found_until("seccomp_baseline", sprintf("metadata.annotations[%q]", [key]),
		sprintf("annotation %s sets seccomp profile %q", [key, value]), "use runtime/default or localhost/<profile>", 19)
}

seccomp_annotation_keys contains "seccomp.security.alpha.kubernetes.io/pod"

seccomp_annotation_keys contains sprintf("container.seccomp.security.alpha.kubernetes.io/%s", [c.name]) if some c in ctrs

seccomp_setters contains s if {
	pod_sc.seccompProfile != null
	s := {"type": object.get(pod_sc.seccompProfile, "type", ""), "path": sprintf("%s.securityContext.seccompProfile.type", [spec_path]), "who": "the pod"}
}

seccomp_setters contains s if {
	some c in ctrs
	c.sc.seccompProfile != null
	s := {"type": object.get(c.sc.seccompProfile, "type", ""), "path": sprintf("%s.securityContext.seccompProfile.type", [c.path]), "who": sprintf("container %q", [c.name])}
}

# The fields count from v1.19; restricted exempts Windows pods from v1.25.
findings contains f if {
	some control in ["seccomp_baseline", "seccomp_restricted"]
	checking[control]
	some s in seccomp_setters
	not seccomp_types[s.type]
	f := object.union(
		found_until(control, s.path, sprintf("%s sets seccomp profile %q", [s.who, s.type]), "set seccompProfile.type to RuntimeDefault or Localhost", seccomp_until[control]),
		{"from": 19},
	)
}

seccomp_until := {"seccomp_baseline": never, "seccomp_restricted": windows_until}

# Restricted: every container needs a valid profile, its own or the pod's.
pod_seccomp_valid if seccomp_types[object.get(pod_sc, ["seccompProfile", "type"], "")]

findings contains f if {
	checking.seccomp_restricted
	not pod_seccomp_valid
	some c in ctrs
	not set(c.sc, "seccompProfile")
	f := found_until("seccomp_restricted", sprintf("%s.securityContext.seccompProfile", [c.path]),
		sprintf("container %q has no seccomp profile", [c.name]),
		"set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container", windows_until)
}

# Sysctls: the safe set of each version; a sysctl made safe in a version
# counts until it.
sysctls_1_0 := {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"}

sysctls_since := {
	"net.ipv4.ip_local_reserved_ports": 27,
	"net.ipv4.tcp_keepalive_time": 29,
	"net.ipv4.tcp_fin_timeout": 29,
	"net.ipv4.tcp_keepalive_intvl": 29,
	"net.ipv4.tcp_keepalive_probes": 29,
	"net.ipv4.tcp_rmem": 32,
	"net.ipv4.tcp_wmem": 32,
	"net.ipv4.tcp_slow_start_after_idle": 37,
	"net.ipv4.tcp_notsent_lowat": 37,
}

findings contains f if {
	checking.sysctls
	some i, s in object.get(pod_sc, "sysctls", [])
	name := object.get(s, "name", "")
	not sysctls_1_0[name]
	f := found_until("sysctls", sprintf("%s.securityContext.sysctls[%d].name", [spec_path, i]),
		sprintf("the pod sets sysctl %v, which is not namespaced and isolated", [name]), sprintf("remove sysctl %v", [name]),
		object.get(sysctls_since, name, never))
}

findings contains f if {
	checking.windows_host_process
	pod_sc.windowsOptions.hostProcess == true
	f := found("windows_host_process", sprintf("%s.securityContext.windowsOptions.hostProcess", [spec_path]),
		"the pod runs as a Windows host process", "remove windowsOptions.hostProcess or set it to false")
}

findings contains f if {
	checking.windows_host_process
	some c in ctrs
	c.sc.windowsOptions.hostProcess == true
	f := found("windows_host_process", sprintf("%s.securityContext.windowsOptions.hostProcess", [c.path]),
		sprintf("container %q runs as a Windows host process", [c.name]), "remove windowsOptions.hostProcess or set it to false")
}

# ---- restricted ----

allowed_volume_sources := {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret"}

findings contains f if {
	checking.restricted_volumes
	some v in volumes
	not allowed_volume(v.volume)
	kind := volume_kind(v.volume)
	f := found("restricted_volumes", volume_path(v, kind),
		sprintf("volume %q uses volume type %s", [object.get(v.volume, "name", ""), kind]),
		"use a configMap, secret, emptyDir, projected, downwardAPI, csi, ephemeral, image or persistentVolumeClaim volume")
}

allowed_volume(vol) if {
	some source, value in vol
	allowed_volume_sources[source]
	value != null
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
	kinds := [k | some k in restricted_volume_kinds; vol[k] != null]
	kind := kinds[0]
} else := "unknown"

findings contains f if {
	checking.allow_privilege_escalation
	some c in ctrs
	not c.sc.allowPrivilegeEscalation == false
	f := found_until("allow_privilege_escalation", sprintf("%s.securityContext.allowPrivilegeEscalation", [c.path]),
		sprintf("container %q may escalate privileges", [c.name]), "set securityContext.allowPrivilegeEscalation: false", windows_until)
}

pod_non_root if pod_sc.runAsNonRoot == true

findings contains f if {
	checking.run_as_non_root
	pod_sc.runAsNonRoot == false
	f := found_until("run_as_non_root", sprintf("%s.securityContext.runAsNonRoot", [spec_path]),
		"the pod sets runAsNonRoot: false", "set securityContext.runAsNonRoot: true", user_namespace_until)
}

findings contains f if {
	checking.run_as_non_root
	some c in ctrs
	c.sc.runAsNonRoot == false
	f := found_until("run_as_non_root", sprintf("%s.securityContext.runAsNonRoot", [c.path]),
		sprintf("container %q sets runAsNonRoot: false", [c.name]), "set securityContext.runAsNonRoot: true", user_namespace_until)
}

findings contains f if {
	checking.run_as_non_root
	not pod_non_root
	some c in ctrs
	not set(c.sc, "runAsNonRoot")
	f := found_until("run_as_non_root", sprintf("%s.securityContext.runAsNonRoot", [c.path]),
		sprintf("container %q may run as root", [c.name]), "set securityContext.runAsNonRoot: true on the pod or the container", user_namespace_until)
}

findings contains f if {
	checking.run_as_user
	pod_sc.runAsUser == 0
	f := found_until("run_as_user", sprintf("%s.securityContext.runAsUser", [spec_path]),
		"the pod runs as user 0 (root)", "set securityContext.runAsUser to a non-zero user, or remove it", user_namespace_until)
}

findings contains f if {
	checking.run_as_user
	some c in ctrs
	c.sc.runAsUser == 0
	f := found_until("run_as_user", sprintf("%s.securityContext.runAsUser", [c.path]),
		sprintf("container %q runs as user 0 (root)", [c.name]), "set securityContext.runAsUser to a non-zero user, or remove it", user_namespace_until)
}

findings contains f if {
	checking.capabilities_restricted
	some c in ctrs
	not "ALL" in object.get(c.sc, ["capabilities", "drop"], [])
	f := found_until("capabilities_restricted", sprintf("%s.securityContext.capabilities.drop", [c.path]),
		sprintf("container %q does not drop ALL capabilities", [c.name]), "set securityContext.capabilities.drop: [ALL]", windows_until)
}

findings contains f if {
	checking.capabilities_restricted
	some c in ctrs
	some i, cap in c.sc.capabilities.add
	cap != "NET_BIND_SERVICE"
	f := found_until("capabilities_restricted", sprintf("%s.securityContext.capabilities.add[%d]", [c.path, i]),
		sprintf("container %q adds capability %v", [c.name, cap]), sprintf("remove %v from capabilities.add (only NET_BIND_SERVICE may be added)", [cap]), windows_until)
}

# ---- one violation per field, in its strongest mode ----

strength := {"enforce": 3, "warn": 2, "audit": 1}

# Each finding with the strongest mode that checks its control at a
# version the finding counts for (none: it is not reported).
placed contains p if {
	some f in findings
	not exempt[f.control]
	ranks := [strength[m.mode] |
		some m in modes
		m.checks[f.control]
		m.minor >= f.from
		m.minor < f.until
	]
	count(ranks) > 0
	p := {"f": f, "strength": max(ranks)}
}

# The strongest mode finding something at each field.
strongest := {path: max([q.strength | some q in placed; q.f.path == path]) | some p in placed; path := p.f.path}

level_name := {1: "baseline", 2: "restricted"}

mode_field := {3: {}, 2: {"enforcement": "warn"}, 1: {"enforcement": "dryrun"}}

violation contains v if {
	some p in placed
	p.strength == strongest[p.f.path]
	f := p.f
	c := controls[f.control]
	v := object.union(
		{
			"path": f.path,
			"msg": sprintf("%s (Pod Security %s: %s)", [f.what, level_name[c.level], c.title]),
			"fix": f.fix,
			"control": f.control,
		},
		mode_field[p.strength],
	)
}

# The controls, for policy exceptions (`pod_security/<control>`).
control_names := object.keys(controls)
