{{/* The chart name. */}}
{{- define "regent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's resource name. */}}
{{- define "regent.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "regent.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "regent.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "regent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "regent.labels" -}}
{{ include "regent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "regent.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the serving certificate. */}}
{{- define "regent.tlsSecret" -}}
{{- if eq .Values.certs.mode "existingSecret" -}}
{{- required "certs.existingSecret is required when certs.mode=existingSecret" .Values.certs.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "regent.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The service DNS name the API server calls. */}}
{{- define "regent.serviceDNS" -}}
{{- printf "%s.%s.svc" (include "regent.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "regent.validateMode" -}}
{{- if not (has .Values.certs.mode (list "selfSigned" "certManager" "existingSecret")) -}}
{{- fail (printf "certs.mode must be selfSigned, certManager or existingSecret, not %q" .Values.certs.mode) -}}
{{- end -}}
{{- end -}}

{{/* The --inventory value: [group/]version/Kind=resource, comma-separated. */}}
{{- define "regent.inventoryKinds" -}}
{{- $kinds := list -}}
{{- range .Values.gatekeeper.inventory -}}
{{- $gv := ternary .version (printf "%s/%s" .group .version) (eq (.group | default "") "") -}}
{{- $kinds = append $kinds (printf "%s/%s=%s" $gv .kind .resource) -}}
{{- end -}}
{{- join "," $kinds -}}
{{- end -}}

{{/* --inventory-fields: the kinds of gatekeeper.inventory that name `fields`. */}}
{{- define "regent.inventoryFields" -}}
{{- $kinds := list -}}
{{- range .Values.gatekeeper.inventory -}}
{{- if .fields -}}
{{- $gv := ternary .version (printf "%s/%s" .group .version) (eq (.group | default "") "") -}}
{{- $kinds = append $kinds (printf "%s/%s=%s" $gv .kind (join ":" .fields)) -}}
{{- end -}}
{{- end -}}
{{- join "," $kinds -}}
{{- end -}}

{{/* The audit's name and selector: distinct from the webhook's, so neither
the Service nor the PodDisruptionBudget of the webhook selects audit pods. */}}
{{- define "regent.auditName" -}}
{{- printf "%s-audit" (include "regent.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "regent.auditSelectorLabels" -}}
app.kubernetes.io/name: {{ include "regent.name" . }}-audit
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "regent.auditLabels" -}}
{{ include "regent.auditSelectorLabels" . }}
app.kubernetes.io/component: audit
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The report resources of the chosen format: group, namespaced, cluster. */}}
{{- define "regent.reportGroup" -}}
{{- if eq .Values.audit.reportFormat "openreports" -}}openreports.io{{- else -}}wgpolicyk8s.io{{- end -}}
{{- end -}}

{{- define "regent.validateAudit" -}}
{{- if not (has .Values.audit.reportFormat (list "wgpolicyk8s" "openreports")) -}}
{{- fail (printf "audit.reportFormat must be wgpolicyk8s or openreports, not %q" .Values.audit.reportFormat) -}}
{{- end -}}
{{- if not (has .Values.audit.reportResults (list "failing" "all")) -}}
{{- fail (printf "audit.reportResults must be failing or all, not %q" .Values.audit.reportResults) -}}
{{- end -}}
{{- end -}}

{{/*
A default policy's data.yaml as policies.default renders it: the
enforcement for the mode (dryrun: every validating policy dryrun; warn:
the policies shipped deny or warn warn; deny: as shipped), the mutating
policies off unless policies.default.mutation, then its entry of
policies.default.settings merged over it. Unchanged text is kept as
written; a changed enforcement replaces its line; settings re-render the
document.
*/}}
{{- define "regent.policyData" -}}
{{- $text := .root.Files.Get .path -}}
{{- $data := fromYaml $text | default dict -}}
{{- $shipped := $data.enforcement | default "deny" -}}
{{- $want := $shipped -}}
{{- if hasPrefix "validate/" .dir -}}
{{- if and (eq .mode "dryrun") (ne $shipped "off") -}}
{{- $want = "dryrun" -}}
{{- else if and (eq .mode "warn") (eq $shipped "deny") -}}
{{- $want = "warn" -}}
{{- end -}}
{{- else if and (hasPrefix "mutate/" .dir) (not .root.Values.policies.default.mutation) -}}
{{- $want = "off" -}}
{{- end -}}
{{- $settings := get .root.Values.policies.default.settings .dir -}}
{{- if $settings -}}
{{- if ne $want $shipped -}}
{{- $_ := set $data "enforcement" $want -}}
{{- end -}}
{{- toYaml (mergeOverwrite $data (deepCopy $settings)) -}}
{{- else if eq $want $shipped -}}
{{- $text -}}
{{- else if regexMatch "(?m)^enforcement:" $text -}}
{{- regexReplaceAll "(?m)^enforcement:.*$" $text (printf "enforcement: %s  # policies.default.mode / mutation" $want) -}}
{{- else -}}
{{- printf "enforcement: %s  # policies.default.mode / mutation\n%s" $want $text -}}
{{- end -}}
{{- end -}}

{{/* The exception flags of the webhook and of the audit (one per line). */}}
{{- define "regent.exceptionArgs" -}}
{{- if .Values.exceptions.enabled }}
- --watch-exceptions
- --exception-admin-namespace={{ .Values.exceptions.adminNamespace | default .Release.Namespace }}
- --exception-max-duration={{ .Values.exceptions.maxDuration }}
- --exception-warn-before={{ .Values.exceptions.warnBefore }}
{{- with .Values.exceptions.helpText }}
- {{ printf "--exception-help=%s" . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The decision log flags of the webhook (one per line). */}}
{{- define "regent.decisionLogArgs" -}}
{{- with .Values.decisionLog }}
{{- if .sinks }}
{{- range .sinks }}
- {{ printf "--decision-log=%s" . | quote }}
{{- end }}
- {{ printf "--decision-log-allowed=%v" .allowed | quote }}
{{- if .includeObject }}
- --decision-log-include-object
{{- end }}
{{- range .mask }}
- {{ printf "--decision-log-mask=%s" . | quote }}
{{- end }}
- --decision-log-buffer={{ .buffer }}
- --decision-log-buffer-bytes={{ .bufferBytes }}
- --decision-log-max-file-size={{ .maxFileSize }}
- --decision-log-max-files={{ .maxFiles }}
- --decision-log-timeout={{ .http.timeout }}
- --decision-log-attempts={{ .http.attempts }}
{{- if or .http.token .http.existingSecret }}
- --decision-log-token-file=/etc/regent/decision-log-token/token
{{- end }}
{{- if .http.caConfigMap }}
- --decision-log-ca=/etc/regent/decision-log-ca/ca.crt
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Whether a decision log sink writes files. */}}
{{- define "regent.decisionLogFiles" -}}
{{- range .Values.decisionLog.sinks }}{{ if hasPrefix "file:" . }}true{{ end }}{{ end -}}
{{- end -}}

{{/* A size such as 100Mi, 1Gi or 512Ki in whole MiB (at least 1). */}}
{{- define "regent.mebibytes" -}}
{{- $s := toString . -}}
{{- if hasSuffix "Gi" $s -}}{{ mul (trimSuffix "Gi" $s | int) 1024 }}
{{- else if hasSuffix "Mi" $s -}}{{ trimSuffix "Mi" $s | int }}
{{- else if hasSuffix "Ki" $s -}}{{ max 1 (div (trimSuffix "Ki" $s | int) 1024) }}
{{- else -}}{{ max 1 (div ($s | int) 1048576) }}
{{- end -}}
{{- end -}}
