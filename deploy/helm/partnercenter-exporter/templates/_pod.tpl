{{/* The pod template of the Deployment or StatefulSet. */}}
{{- define "pcx.podTemplate" -}}
metadata:
  labels:
    {{- include "pcx.selectorLabels" . | nindent 4 }}
    {{- if include "pcx.workloadIdentityMode" . }}
    # Asks the Azure Workload Identity webhook to project the federated
    # token and set AZURE_CLIENT_ID, AZURE_TENANT_ID and
    # AZURE_FEDERATED_TOKEN_FILE.
    azure.workload.identity/use: "true"
    {{- end }}
    {{- with .Values.commonLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A changed configuration or chart-made Secret rolls the pods; the
    # exporter would also take a new configuration on /-/reload, but
    # nothing here calls it. The batch files' ConfigMap has no checksum
    # here: the exporter watches the files, so a new line needs no restart.
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if not (or .Values.auth.existingSecret.name (include "pcx.workloadIdentityMode" .)) }}
    checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  # The exporter calls no Kubernetes API; workload identity gets its token
  # through the webhook's own projected volume, not this one.
  automountServiceAccountToken: false
  {{- with include "pcx.serviceAccountName" . }}
  serviceAccountName: {{ . }}
  {{- end }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if include "pcx.refreshTokenMode" . }}
  initContainers:
    # Copies the refresh token into the writable data volume, where the
    # exporter replaces it when the token endpoint rotates it. The copy is
    # made again only when the Secret's token differs from the one copied
    # last (kept as refresh_token.seed), so that a rotated token kept on a
    # persistent volume is not overwritten at every start.
    - name: copy-refresh-token
      image: {{ include "pcx.imageRef" (dict "image" .Values.auth.initImage "global" .Values.global "tag" "") | quote }}
      imagePullPolicy: {{ .Values.auth.initImage.pullPolicy }}
      command:
        - sh
        - -ec
        - |
          dir="$(dirname "$TOKEN_FILE")"
          mkdir -p "$dir"
          if ! cmp -s /run/secrets/refresh-token-seed/refresh_token "$TOKEN_FILE.seed"; then
            cp /run/secrets/refresh-token-seed/refresh_token "$TOKEN_FILE.tmp"
            mv "$TOKEN_FILE.tmp" "$TOKEN_FILE"
            cp /run/secrets/refresh-token-seed/refresh_token "$TOKEN_FILE.seed"
          fi
          chmod 0600 "$TOKEN_FILE" "$TOKEN_FILE.seed"
      env:
        - name: TOKEN_FILE
          value: {{ include "pcx.refreshTokenFile" . }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        requests:
          cpu: 10m
          memory: 8Mi
        limits:
          memory: 16Mi
      volumeMounts:
        - name: refresh-token-seed
          mountPath: /run/secrets/refresh-token-seed
          readOnly: true
        - name: data
          mountPath: {{ include "pcx.dataDir" . }}
  {{- end }}
  containers:
    - name: exporter
      image: {{ include "pcx.imageRef" (dict "image" .Values.image "global" .Values.global "tag" .Chart.AppVersion) | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config.file={{ include "pcx.configDir" . }}/partnercenter.yml
        {{- if .Values.storage.enabled }}
        - --storage.path={{ include "pcx.storagePath" . }}
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 10046
          protocol: TCP
      {{- with .Values.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: {{ include "pcx.configDir" . }}
          readOnly: true
        {{- if include "pcx.clientSecretKey" . }}
        - name: client-secret
          mountPath: {{ include "pcx.secretDir" . }}
          readOnly: true
        {{- end }}
        {{- if include "pcx.batchFilesOn" . }}
        - name: batch-files
          mountPath: {{ include "pcx.batchDir" . }}
          readOnly: true
        {{- end }}
        {{- if include "pcx.dataVolume" . }}
        - name: data
          mountPath: {{ include "pcx.dataDir" . }}
        {{- end }}
        {{- if .Values.intake.enabled }}
        - name: intake-tokens
          mountPath: {{ include "pcx.intakeDir" . }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with .Values.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "pcx.fullname" . }}
        items:
          - key: partnercenter.yml
            path: partnercenter.yml
    {{- if include "pcx.batchFilesOn" . }}
    # Every key of the ConfigMap is a batch file. The kubelet updates the
    # files in place (no subPath), and the exporter reads the change.
    - name: batch-files
      configMap:
        name: {{ include "pcx.batchConfigMap" . }}
    {{- end }}
    {{- with include "pcx.clientSecretKey" . }}
    - name: client-secret
      secret:
        secretName: {{ include "pcx.secretName" $ }}
        defaultMode: 0440
        items:
          - key: {{ . }}
            path: client_secret
    {{- end }}
    {{- if include "pcx.refreshTokenMode" . }}
    - name: refresh-token-seed
      secret:
        secretName: {{ include "pcx.secretName" . }}
        defaultMode: 0440
        items:
          - key: {{ include "pcx.refreshTokenKey" . }}
            path: refresh_token
    {{- end }}
    {{- if .Values.intake.enabled }}
    # The whole Secret, no items: a key's file is updated in place when
    # its token is rotated, and the exporter re-reads it. The pod template
    # carries no checksum of this Secret, so a new token rolls no pod.
    - name: intake-tokens
      secret:
        secretName: {{ include "pcx.intakeSecretName" . }}
        defaultMode: 0440
    {{- end }}
    {{- if and (include "pcx.dataVolume" .) (not (and .Values.storage.enabled .Values.probe.enabled)) }}
    - name: data
      {{- if .Values.storage.enabled }}
      persistentVolumeClaim:
        claimName: {{ .Values.storage.existingClaim | default (include "pcx.fullname" .) }}
      {{- else }}
      # Refresh token only: lost with the pod, copied again at its start.
      emptyDir:
        sizeLimit: 1Mi
      {{- end }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
