{{/*
The chart name, or nameOverride.
*/}}
{{- define "infra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The base of every resource name: fullnameOverride, else the release name when it already contains
the chart name (release "infra" gives infra-controller, infra-server, like config/), else
<release>-<chart>. Truncated so that suffixes still fit in 63 characters.
*/}}
{{- define "infra.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The name of one role's objects (Deployment, ServiceAccount, Role, RoleBinding,
PodDisruptionBudget): include "infra.roleName" (list $ "controller"|"server").
*/}}
{{- define "infra.roleName" -}}
{{- printf "%s-%s" (include "infra.fullname" (index . 0)) (index . 1) }}
{{- end }}

{{/*
The server's Service (and the server's role objects).
*/}}
{{- define "infra.serverName" -}}
{{- include "infra.roleName" (list . "server") }}
{{- end }}

{{/*
Selects every pod of the release, both roles.
*/}}
{{- define "infra.instanceSelectorLabels" -}}
app.kubernetes.io/name: {{ include "infra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selects one role's pods: include "infra.selectorLabels" (list $ "controller"|"server").
*/}}
{{- define "infra.selectorLabels" -}}
{{ include "infra.instanceSelectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "infra.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "infra.instanceSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: infra
{{- end }}

{{/*
externalURL, which has no working default: fail with what to set.
*/}}
{{- define "infra.externalURL" -}}
{{- required "externalURL is required: set it to the URL people and your identity provider use to reach Infra, such as --set externalURL=https://infra.example.com (the redirect URIs and the SCIM URL are derived from it)" .Values.externalURL | trimSuffix "/" }}
{{- end }}

{{/*
The mount path of the extra CA bundle, and the file INFRA_EXTRA_CA_FILE names.
*/}}
{{- define "infra.extraCADir" -}}/etc/infra/extra-ca{{- end }}

{{- define "infra.extraCAEnabled" -}}
{{- with .Values.extraCABundle }}
{{- if and .configMapName .secretName }}
{{- fail "extraCABundle: set configMapName or secretName, not both" }}
{{- end }}
{{- if or .configMapName .secretName }}true{{ end }}
{{- end }}
{{- end }}

{{/*
Environment both roles share.
*/}}
{{- define "infra.commonEnv" -}}
- name: INFRA_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: INFRA_EXTERNAL_URL
  value: {{ include "infra.externalURL" . | quote }}
- name: INFRA_LOG
  value: {{ .Values.logLevel | quote }}
- name: INFRA_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: INFRA_CLI_REDIRECT_URIS
  value: {{ join "," .Values.login.cliRedirectURIs | quote }}
- name: INFRA_SESSION_LIFETIME
  value: {{ .Values.login.sessionLifetime | quote }}
- name: INFRA_SESSION_IDLE_TIMEOUT
  value: {{ .Values.login.sessionIdleTimeout | quote }}
- name: INFRA_SESSION_RECHECK_INTERVAL
  value: {{ .Values.login.sessionRecheckInterval | quote }}
- name: INFRA_DENY_INTERNAL_PROVIDER_ADDRESSES
  value: {{ .Values.providers.denyInternalAddresses | quote }}
- name: INFRA_KUBE_TOKEN_LIFETIME
  value: {{ .Values.kubernetes.tokenLifetime | quote }}
# Fewer malloc arenas keep the server's resident memory close to what its caches hold.
- name: MALLOC_ARENA_MAX
  value: "2"
{{- if include "infra.extraCAEnabled" . }}
- name: INFRA_EXTRA_CA_FILE
  value: {{ printf "%s/%s" (include "infra.extraCADir" .) .Values.extraCABundle.key | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
repository:tag, with @digest when image.digest pins it.
*/}}
{{- define "infra.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
One role's ServiceAccount: include "infra.serviceAccountName" (list $ "controller"|"server").
*/}}
{{- define "infra.serviceAccountName" -}}
{{- $ := index . 0 }}
{{- $role := index . 1 }}
{{- default (include "infra.roleName" (list $ $role)) (index $.Values.serviceAccount $role).name }}
{{- end }}
