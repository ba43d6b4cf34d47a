{{/* Names, labels and the paths that the pod, the configuration and the
tests agree on. */}}

{{- define "pcx.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pcx.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pcx.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pcx.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pcx.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "pcx.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An image reference from {registry, repository, tag, digest}:
global.imageRegistry wins over the image's own registry, and a digest
replaces the tag. Called with (dict "image" … "global" … "tag" default). */}}
{{- define "pcx.imageRef" -}}
{{- $registry := (.global | default dict).imageRegistry | default .image.registry -}}
{{- $repo := .image.repository -}}
{{- if $registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .tag | toString) -}}
{{- end -}}
{{- end -}}

{{- define "pcx.serviceAccountCreate" -}}
{{- if or .Values.serviceAccount.create (include "pcx.workloadIdentityMode" .) }}true{{ end -}}
{{- end -}}

{{/* "" when the pod uses the namespace's default ServiceAccount. */}}
{{- define "pcx.serviceAccountName" -}}
{{- if include "pcx.serviceAccountCreate" . -}}
{{- .Values.serviceAccount.name | default (include "pcx.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The batch files' ConfigMap and directory. They are not under the
configuration's directory: a volume mounted inside another read-only one
needs its mount point created there, which a ConfigMap volume refuses. */}}
{{- define "pcx.batchDir" -}}/etc/partnercenter_exporter-batches{{- end -}}
{{- define "pcx.batchConfigMap" -}}
{{- .Values.batchFiles.existingConfigMap | default (printf "%s-batches" (include "pcx.fullname" . | trunc 55 | trimSuffix "-")) -}}
{{- end -}}
{{- define "pcx.batchFilesOn" -}}
{{- if or .Values.batchFiles.files .Values.batchFiles.existingConfigMap }}true{{ end -}}
{{- end -}}

{{/* Where things are mounted in the exporter container. */}}
{{- define "pcx.configDir" -}}/etc/partnercenter_exporter{{- end -}}
{{- define "pcx.secretDir" -}}/run/secrets/partnercenter_exporter{{- end -}}
{{- define "pcx.dataDir" -}}/var/lib/partnercenter_exporter{{- end -}}
{{- define "pcx.storagePath" -}}{{ include "pcx.dataDir" . }}/storage{{- end -}}
{{- define "pcx.refreshTokenFile" -}}{{ include "pcx.dataDir" . }}/auth/refresh_token{{- end -}}

{{- define "pcx.secretName" -}}
{{- .Values.auth.existingSecret.name | default (include "pcx.fullname" .) -}}
{{- end -}}

{{- define "pcx.refreshTokenMode" -}}
{{- if eq .Values.auth.mode "refreshToken" }}true{{ end -}}
{{- end -}}

{{/* Workload identity: the Azure Workload Identity webhook injects the
federated token file and AZURE_* variables into the pod, which the
exporter takes when its configuration names no credential. */}}
{{- define "pcx.workloadIdentityMode" -}}
{{- if eq .Values.auth.mode "workloadIdentity" }}true{{ end -}}
{{- end -}}

{{/* The key of the client secret in the Secret, or "" when there is none
(a public client in mode refreshToken). */}}
{{- define "pcx.clientSecretKey" -}}
{{- if .Values.auth.existingSecret.name -}}
{{- .Values.auth.existingSecret.key -}}
{{- else if .Values.auth.clientSecret -}}
client_secret
{{- end -}}
{{- end -}}

{{- define "pcx.refreshTokenKey" -}}
{{- if .Values.auth.existingSecret.name -}}
{{- .Values.auth.existingSecret.refreshTokenKey -}}
{{- else -}}
refresh_token
{{- end -}}
{{- end -}}

{{/* A StatefulSet in probe mode, where each pod is a shard Prometheus
addresses by name; a Deployment otherwise. */}}
{{- define "pcx.statefulSet" -}}
{{- if .Values.probe.enabled }}true{{ end -}}
{{- end -}}

{{- define "pcx.headlessName" -}}
{{- printf "%s-headless" (include "pcx.fullname" . | trunc 54 | trimSuffix "-") -}}
{{- end -}}

{{/* The intake API's token Secret, mounted whole (no items, no subPath) at
intakeDir, so that the kubelet updates a rotated token in place and the
exporter, which re-reads a token file when it changes, takes it without a
restart. Beside, not inside, the client secret's directory: a mount point
inside a read-only Secret volume cannot be created. */}}
{{- define "pcx.intakeDir" -}}/run/secrets/partnercenter_exporter-intake{{- end -}}
{{- define "pcx.intakeSecretName" -}}
{{- .Values.intake.existingSecret | default (printf "%s-intake" (include "pcx.fullname" . | trunc 56 | trimSuffix "-")) -}}
{{- end -}}

{{/* The chart-made Secret's data as JSON, key -> token: intake.tokens as a
map keeps its keys; as a list, its tokens are token-1, token-2, ... (so
that replacing a token in place keeps its key, its file and the
configuration). */}}
{{- define "pcx.intakeTokenData" -}}
{{- $data := dict -}}
{{- if kindIs "map" .Values.intake.tokens -}}
{{- $data = .Values.intake.tokens -}}
{{- else -}}
{{- range $i, $token := .Values.intake.tokens | default list -}}
{{- $_ := set $data (printf "token-%d" (add1 $i)) $token -}}
{{- end -}}
{{- end -}}
{{- toJson $data -}}
{{- end -}}

{{/* The keys of the token Secret that the exporter reads, as a JSON list:
intake.secretKeys of an existing Secret (default [token]), or every key of
the chart-made one. Sorted, so that the configuration and its checksum do
not depend on map order. */}}
{{- define "pcx.intakeKeys" -}}
{{- if .Values.intake.existingSecret -}}
{{- toJson (.Values.intake.secretKeys | default (list "token")) -}}
{{- else -}}
{{- toJson (include "pcx.intakeTokenData" . | fromJson | keys | sortAlpha) -}}
{{- end -}}
{{- end -}}

{{/* Whether the pod has the writable data volume. */}}
{{- define "pcx.dataVolume" -}}
{{- if or .Values.storage.enabled (include "pcx.refreshTokenMode" .) }}true{{ end -}}
{{- end -}}

{{/* Refuses values that would render a broken release; fail stops
rendering with the message. */}}
{{- define "pcx.validate" -}}
{{- if not (has .Values.auth.mode (list "clientCredentials" "refreshToken" "workloadIdentity")) -}}
{{- fail (printf "auth.mode must be clientCredentials, refreshToken or workloadIdentity, got %q" .Values.auth.mode) -}}
{{- end -}}
{{- if and (include "pcx.workloadIdentityMode" .) (or .Values.auth.clientSecret .Values.auth.existingSecret.name) -}}
{{- fail "auth.mode workloadIdentity uses no Secret: unset auth.clientSecret and auth.existingSecret.name" -}}
{{- end -}}
{{- if and (not .Values.auth.existingSecret.name) (not (include "pcx.refreshTokenMode" .)) (not (include "pcx.workloadIdentityMode" .)) (not .Values.auth.clientSecret) -}}
{{- fail "set auth.clientSecret or auth.existingSecret.name: mode clientCredentials needs a client secret" -}}
{{- end -}}
{{- if and (not .Values.auth.existingSecret.name) (include "pcx.refreshTokenMode" .) (not .Values.auth.refreshToken) -}}
{{- fail "set auth.refreshToken or auth.existingSecret.name: mode refreshToken needs a refresh token" -}}
{{- end -}}
{{- if and .Values.auth.existingSecret.name (not (include "pcx.refreshTokenMode" .)) (not .Values.auth.existingSecret.key) -}}
{{- fail "auth.existingSecret.key is empty: mode clientCredentials needs the key of the client secret" -}}
{{- end -}}
{{- if and .Values.storage.enabled (not .Values.probe.enabled) (gt (int .Values.replicas) 1) -}}
{{- fail (printf "storage.enabled needs replicas: 1 (got %d): one exporter holds the lock on its storage; use probe mode to run shards, each with its own volume" (int .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.storage.existingClaim .Values.probe.enabled -}}
{{- fail "storage.existingClaim cannot be used in probe mode: each shard gets its own claim from the StatefulSet" -}}
{{- end -}}
{{- if and .Values.batchFiles.files .Values.batchFiles.existingConfigMap -}}
{{- fail "batchFiles: set files or existingConfigMap, not both" -}}
{{- end -}}
{{- if and .Values.storage.enabled (not .Values.probe.enabled) .Values.strategy (ne (.Values.strategy.type | default "") "Recreate") -}}
{{- fail "strategy: storage.enabled needs the Recreate strategy (the running pod holds the store's lock); unset strategy" -}}
{{- end -}}
{{- if .Values.intake.enabled -}}
{{- if not .Values.storage.enabled -}}
{{- fail "intake.enabled needs storage.enabled: the exporter keeps the batches registered through the intake in --storage.path, so that a restart loses none, and refuses to start an intake without it" -}}
{{- end -}}
{{- if and .Values.probe.enabled (gt (int .Values.replicas) 1) -}}
{{- fail (printf "intake.enabled in probe mode needs replicas: 1 (got %d): each shard keeps its own store, so a batch registered through the Service lands on one pod only; the others do not list it in /sd, and the shard its hash picks refuses to probe it. Run one shard, or hand batches over with batchFiles.existingConfigMap, which every shard reads" (int .Values.replicas)) -}}
{{- end -}}
{{- if and .Values.intake.existingSecret .Values.intake.tokens -}}
{{- fail "intake: set tokens or existingSecret, not both" -}}
{{- end -}}
{{- if not (or .Values.intake.existingSecret .Values.intake.tokens) -}}
{{- fail "intake.enabled needs its bearer tokens: set intake.existingSecret (a Secret you manage, one token a key) or intake.tokens" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.intake.secretKeys (not .Values.intake.existingSecret) -}}
{{- fail "intake.secretKeys names keys of intake.existingSecret, which is not set; the chart-made Secret's keys come from intake.tokens" -}}
{{- end -}}
{{- if hasKey (.Values.config | default dict) "intake" -}}
{{- fail "config.intake: the chart renders it from the intake values (intake.enabled, intake.existingSecret or intake.tokens, intake.maxBatches) and mounts the tokens; remove it" -}}
{{- end -}}
{{- include "pcx.validateClaimTemplate" . -}}
{{- $auth := .Values.config.auth | default dict -}}
{{- range $key := list "client_secret" "client_secret_file" "refresh_token_file" "access_token_file" -}}
{{- if hasKey $auth $key -}}
{{- fail (printf "config.auth.%s: the chart takes credentials from the auth values and mounts them from a Secret; remove it" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The configuration file: config with the chart's paths filled in. */}}
{{- define "pcx.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $auth := deepCopy ($cfg.auth | default dict) -}}
{{- $_ := required "config.auth.tenant_id is required: your partner tenant's GUID or domain" $auth.tenant_id -}}
{{- $_ := required "config.auth.client_id is required: the application (client) ID" $auth.client_id -}}
{{- if include "pcx.clientSecretKey" . -}}
{{- $_ := set $auth "client_secret_file" (printf "%s/client_secret" (include "pcx.secretDir" .)) -}}
{{- end -}}
{{- if include "pcx.refreshTokenMode" . -}}
{{- $_ := set $auth "refresh_token_file" (include "pcx.refreshTokenFile" .) -}}
{{- end -}}
{{- $_ := set $cfg "auth" $auth -}}
{{- if include "pcx.batchFilesOn" . -}}
{{- $globs := concat ($cfg.batch_files | default list) (list (printf "%s/*" (include "pcx.batchDir" .))) -}}
{{- $_ := set $cfg "batch_files" $globs -}}
{{- end -}}
{{- if .Values.intake.enabled -}}
{{- $files := list -}}
{{- range include "pcx.intakeKeys" . | fromJsonArray -}}
{{- $files = append $files (printf "%s/%s" (include "pcx.intakeDir" $) .) -}}
{{- end -}}
{{- $_ := set $cfg "intake" (dict "bearer_token_files" $files "max_batches" (int .Values.intake.maxBatches)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The spec of the storage claim, for the PVC and the StatefulSet's
volumeClaimTemplates alike. */}}
{{- define "pcx.claimSpec" -}}
accessModes:
  {{- toYaml .Values.storage.accessModes | nindent 2 }}
{{- with .Values.storage.storageClass }}
storageClassName: {{ . | quote }}
{{- end }}
resources:
  requests:
    storage: {{ .Values.storage.size | quote }}
{{- end -}}


{{/* The StatefulSet's volumeClaimTemplates, as the chart renders them. */}}
{{- define "pcx.claimTemplates" -}}
{{- if .Values.storage.enabled -}}
- metadata:
    name: data
    labels:
      {{- include "pcx.selectorLabels" . | nindent 6 }}
  spec:
    {{- include "pcx.claimSpec" . | nindent 4 }}
{{- end -}}
{{- end -}}

{{/* In probe mode a StatefulSet's volumeClaimTemplates are immutable: the
API server refuses the upgrade and leaves the release failed. Compare with
the StatefulSet in the cluster (lookup finds nothing in `helm template`
and on a first install) and refuse here, saying what to do instead. */}}
{{- define "pcx.validateClaimTemplate" -}}
{{- if .Values.probe.enabled -}}
{{- $live := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "pcx.fullname" .) -}}
{{- if $live -}}
{{- $have := list -}}
{{- range ($live.spec.volumeClaimTemplates | default list) -}}
{{- $req := ((.spec.resources | default dict).requests | default dict) -}}
{{- $have = append $have (printf "%s size=%v storageClass=%v accessModes=%v" .metadata.name (index $req "storage" | default "") (.spec.storageClassName | default "") (.spec.accessModes | default list | join ",")) -}}
{{- end -}}
{{- $want := list -}}
{{- if .Values.storage.enabled -}}
{{- $want = list (printf "data size=%v storageClass=%v accessModes=%v" .Values.storage.size .Values.storage.storageClass (.Values.storage.accessModes | join ",")) -}}
{{- end -}}
{{- if ne (join "; " $have) (join "; " $want) -}}
{{- fail (printf "storage: the StatefulSet %s has the volume claim template [%s], these values give [%s]; a StatefulSet's volumeClaimTemplates cannot change. Keep the old storage values, or: resize each claim (kubectl -n %s patch pvc data-%s-<ordinal> -p '{\"spec\":{\"resources\":{\"requests\":{\"storage\":\"<size>\"}}}}', if its StorageClass allows expansion), then kubectl -n %s delete statefulset %s --cascade=orphan, then upgrade again" $live.metadata.name (join "; " $have) (join "; " $want) .Release.Namespace (include "pcx.fullname" .) .Release.Namespace $live.metadata.name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
