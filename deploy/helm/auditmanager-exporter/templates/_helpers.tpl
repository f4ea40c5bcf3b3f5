{{/*
Expand the name of the chart.
*/}}
{{- define "auditmanager-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A default fully qualified app name, truncated at 63 characters (the DNS label limit).
If the release name contains the chart name, the release name is used as is.
*/}}
{{- define "auditmanager-exporter.fullname" -}}
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

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "auditmanager-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "auditmanager-exporter.labels" -}}
helm.sh/chart: {{ include "auditmanager-exporter.chart" . }}
{{ include "auditmanager-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: exporter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels. The ServiceMonitor takes the job name from app.kubernetes.io/name, which the alert rules select on.
*/}}
{{- define "auditmanager-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "auditmanager-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The name of the service account to use.
*/}}
{{- define "auditmanager-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "auditmanager-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image, by digest when one is given.
*/}}
{{- define "auditmanager-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Whether the exporter runs sharded: more than one replica, as a StatefulSet whose pods take their shard index from
their ordinal.
*/}}
{{- define "auditmanager-exporter.sharded" -}}
{{- if gt (int .Values.replicas) 1 }}true{{ end }}
{{- end }}

{{/*
The pod template shared by the Deployment and the StatefulSet.
*/}}
{{- define "auditmanager-exporter.podTemplate" -}}
metadata:
  labels:
    {{- include "auditmanager-exporter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A change of the config or the web config rolls the pods.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if .Values.webConfig }}
    checksum/web-config: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "auditmanager-exporter.serviceAccountName" . }}
  # The exporter never calls the Kubernetes API; IRSA's web identity token is a separate projected volume.
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: exporter
      image: {{ include "auditmanager-exporter.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- if include "auditmanager-exporter.sharded" . }}
      env:
        # The pod's ordinal (<name>-0, -1, ...), which Kubernetes 1.28+ puts in this label.
        - name: SHARD_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
      {{- end }}
      # The image's entrypoint reads /etc/auditmanager-exporter/config.yml, where the ConfigMap is mounted.
      args:
        - --log.format={{ .Values.logFormat }}
        - --log.level={{ .Values.logLevel }}
        {{- if include "auditmanager-exporter.sharded" . }}
        - --shard.index=$(SHARD_INDEX)
        - --shard.count={{ .Values.replicas }}
        {{- end }}
        {{- if .Values.webConfig }}
        - --web.config.file=/etc/auditmanager-exporter-web/web-config.yml
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: metrics
          containerPort: 10118
          protocol: TCP
      # Holds the liveness probe off until /healthz first answers, so that a slow start (a CPU-throttled pod, many
      # targets) is not restarted before it serves.
      startupProbe:
        httpGet:
          path: /healthz
          port: metrics
          scheme: {{ .Values.probes.scheme }}
          {{- with .Values.probes.httpHeaders }}
          httpHeaders:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        timeoutSeconds: 5
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: metrics
          scheme: {{ .Values.probes.scheme }}
          {{- with .Values.probes.httpHeaders }}
          httpHeaders:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 3
      # Ready once the first poll finished, so that the first scrape already has figures.
      readinessProbe:
        httpGet:
          path: /readyz
          port: metrics
          scheme: {{ .Values.probes.scheme }}
          {{- with .Values.probes.httpHeaders }}
          httpHeaders:
            {{- toYaml . | nindent 12 }}
          {{- end }}
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/auditmanager-exporter
          readOnly: true
        {{- if .Values.webConfig }}
        - name: web-config
          mountPath: /etc/auditmanager-exporter-web
          readOnly: true
        {{- end }}
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "auditmanager-exporter.fullname" . }}
    {{- if .Values.webConfig }}
    - name: web-config
      secret:
        secretName: {{ include "auditmanager-exporter.fullname" . }}-web-config
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 16Mi
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
