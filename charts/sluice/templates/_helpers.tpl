{{/* Chart name, overridable. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already holds the chart name. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
{{- end }}

{{/* Selector labels of the manager. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end }}

{{/* Selector labels of the loadtester. */}}
{{- define "sluice.loadtester.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: loadtester
{{- end }}

{{/* The manager's ServiceAccount name. */}}
{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The notification Secret as NAMESPACE/NAME. */}}
{{- define "sluice.notifySecret" -}}
{{- $s := .Values.notifications.secret }}
{{- if contains "/" $s }}{{ $s }}{{ else }}{{ printf "%s/%s" .Release.Namespace $s }}{{ end }}
{{- end }}

{{/* The Secret of the loadtester's token: the given one, else the generated one. */}}
{{- define "sluice.loadtester.tokenSecret" -}}
{{- default (printf "%s-loadtester-token" (include "sluice.fullname" .)) .Values.loadtester.tokenSecret }}
{{- end }}

{{/* The host names of the loadtester's Service: the only webhook hosts the
manager sends the token to (Rollout authors choose webhook URLs). */}}
{{- define "sluice.loadtester.tokenHosts" -}}
{{- $svc := printf "%s-loadtester" (include "sluice.fullname" .) }}
{{- $ns := .Release.Namespace }}
{{- join "," (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain)) }}
{{- end }}

{{/* The watched namespaces (watchNamespaces), comma-separated, without
duplicates; empty for every namespace. A name that cannot be a namespace
fails the render: the manager would refuse it at start. */}}
{{- define "sluice.watchNamespaces" -}}
{{- $watch := .Values.watchNamespaces | default list | uniq }}
{{- range $watch }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .)) }}
{{- fail (printf "watchNamespaces: %q is not a namespace name" (toString .)) }}
{{- end }}
{{- if gt (len (toString .)) 63 }}
{{- fail (printf "watchNamespaces: %q is longer than 63 characters" (toString .)) }}
{{- end }}
{{- end }}
{{- join "," $watch }}
{{- end }}
