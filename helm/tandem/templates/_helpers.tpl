{{/* Names and labels shared by every object of the chart. */}}

{{- define "tandem.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: "<release>-tandem", or just the release name when it already says tandem. */}}
{{- define "tandem.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "tandem.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "tandem.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "tandem.cloud.fullname" -}}
{{- printf "%s-cloud" (include "tandem.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tandem.scheduler.fullname" -}}
{{- printf "%s-scheduler" (include "tandem.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tandem.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tandem.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "context" $ "component" "cloud"). */}}
{{- define "tandem.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tandem.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tandem.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tandem.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tandem.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the tails' CURVE key pair (cloud.key, cloud.pub). */}}
{{- define "tandem.keysSecretName" -}}
{{- default (printf "%s-curve" (include "tandem.fullname" .)) .Values.keys.existingSecret }}
{{- end }}

{{- define "tandem.clientsConfigMapName" -}}
{{- printf "%s-clients" (include "tandem.fullname" .) }}
{{- end }}

{{/* The scheduler's address for the tails' heartbeats (HOST:PORT). */}}
{{- define "tandem.scheduler.address" -}}
{{- printf "%s.%s.svc:%v" (include "tandem.scheduler.fullname" .) .Release.Namespace .Values.scheduler.service.port }}
{{- end }}

{{/* Pod and container security settings every Tandem container runs with. */}}
{{- define "tandem.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsUser }}
fsGroup: {{ .Values.securityContext.runAsUser }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "tandem.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* The control secret (controlPlane.existingSecret) for a container: its env entry, mount and volume. */}}
{{- define "tandem.controlSecret.env" -}}
{{- if .Values.controlPlane.existingSecret }}
- name: TANDEM_CONTROL_SECRET_FILE
  value: /etc/tandem/control/control.secret
{{- end }}
{{- end }}
{{- define "tandem.controlSecret.volumeMount" -}}
{{- if .Values.controlPlane.existingSecret }}
- name: control-secret
  mountPath: /etc/tandem/control
  readOnly: true
{{- end }}
{{- end }}
{{- define "tandem.controlSecret.volume" -}}
{{- if .Values.controlPlane.existingSecret }}
- name: control-secret
  secret:
    secretName: {{ .Values.controlPlane.existingSecret }}
    defaultMode: 0440
    items:
      - key: control.secret
        path: control.secret
{{- end }}
{{- end }}
