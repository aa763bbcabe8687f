{{/*
Names. Ferry is one install per cluster, so object names are fixed: the
binaries' defaults and the injector's expectations use them too.
*/}}
{{- define "ferry.controlName" -}}ferry-control{{- end }}
{{- define "ferry.webhookServiceName" -}}ferry-webhook{{- end }}
{{- define "ferry.webhookConfigurationName" -}}ferry-injector{{- end }}
{{- define "ferry.webhookCertSecret" -}}ferry-webhook-cert{{- end }}

{{/* Labels of every object; part-of: ferry also keeps the webhook off Ferry's own pods. */}}
{{- define "ferry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: ferry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ferry
{{- end }}

{{/* Selector of the ferry-control pods (immutable in the Deployment). */}}
{{- define "ferry.controlSelector" -}}
app.kubernetes.io/name: ferry
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control
{{- end }}

{{/* <registry>/<repository>:<tag>, for "control" or "proxy". */}}
{{- define "ferry.image" -}}
{{- $root := index . 0 -}}
{{- $which := index . 1 -}}
{{- $image := index $root.Values.image $which -}}
{{- $tag := default $root.Chart.AppVersion $root.Values.image.tag -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/%s:%s" $root.Values.image.registry $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end }}

{{/* ferry-control's Service as proxies resolve it. */}}
{{- define "ferry.controlHost" -}}
{{- printf "%s.%s.svc.%s" (include "ferry.controlName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end }}

{{- define "ferry.discoveryAddress" -}}
{{- default (printf "%s:8090" (include "ferry.controlHost" .)) .Values.proxy.discoveryAddress -}}
{{- end }}

{{/* Whether ferry-control serves discovery and the CA with TLS too (the CA makes its certificate). */}}
{{- define "ferry.tlsEnabled" -}}
{{- if and .Values.control.tls.enabled .Values.identity.enabled -}}true{{- end -}}
{{- end }}

{{/* The Secret holding the CA's trust anchors and issuer. */}}
{{- define "ferry.identitySecret" -}}
{{- default "ferry-identity" .Values.identity.existingSecret -}}
{{- end }}

{{/* Whether the chart renders the identity Secret from supplied PEMs (fails on half a set). */}}
{{- define "ferry.identitySupplied" -}}
{{- $i := .Values.identity -}}
{{- $given := list $i.trustAnchorPEM $i.issuer.certPEM $i.issuer.keyPEM | compact | len -}}
{{- if and $i.existingSecret (gt $given 0) -}}
{{- fail "identity: give either existingSecret or the PEMs (trustAnchorPEM, issuer.certPEM, issuer.keyPEM), not both" -}}
{{- end -}}
{{- if and (gt $given 0) (lt $given 3) -}}
{{- fail "identity: trustAnchorPEM, issuer.certPEM and issuer.keyPEM go together: give all three or none" -}}
{{- end -}}
{{- if eq $given 3 -}}true{{- end -}}
{{- end }}

{{/*
What to do with one Gateway API CRD (argument: list of root context, the
CRD as a dict). Prints "install" or a reason to skip it:

- absent from the cluster (or no cluster: `helm template` and client-side
  dry runs, where `lookup` returns nothing): install;
- present and installed by this release (Helm's ownership annotations):
  install, i.e. keep managing it, unless that would downgrade it: the
  cluster holds the experimental channel and this is standard (the
  server would drop experimental fields of stored objects), or the
  cluster's bundle-version is a newer release than the chart's;
- present and not ours (another installer, another release, kubectl):
  skip. Helm would otherwise refuse the whole install for a conflict of
  ownership, or, if told to take it over, overwrite a CRD it does not own.
*/}}
{{- define "ferry.crdAction" -}}
{{- $root := index . 0 -}}
{{- $crd := index . 1 -}}
{{- $existing := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $crd.metadata.name -}}
{{- if not $existing -}}
install
{{- else -}}
{{- $have := default (dict) $existing.metadata.annotations -}}
{{- $ours := default (dict) $crd.metadata.annotations -}}
{{- $haveChannel := index $have "gateway.networking.k8s.io/channel" | default "" -}}
{{- $haveBundle := index $have "gateway.networking.k8s.io/bundle-version" | default "" -}}
{{- $ourBundle := index $ours "gateway.networking.k8s.io/bundle-version" | default "" -}}
{{- if not (and (eq (index $have "meta.helm.sh/release-name" | default "") $root.Release.Name) (eq (index $have "meta.helm.sh/release-namespace" | default "") $root.Release.Namespace)) -}}
skip: exists and is not managed by this release
{{- else if and (eq $haveChannel "experimental") (ne $root.Values.gatewayAPI.channel "experimental") -}}
skip: the cluster has the experimental channel
{{- else if and (regexMatch "^v[0-9]+\\.[0-9]+\\.[0-9]+$" $haveBundle) (regexMatch "^v[0-9]+\\.[0-9]+\\.[0-9]+" $ourBundle) (semverCompare (printf "> %s" $ourBundle) $haveBundle) -}}
skip: the cluster has a newer bundle ({{ $haveBundle }})
{{- else -}}
install
{{- end -}}
{{- end -}}
{{- end }}

{{/* The CRD files of the chosen channel, as a list of "path" strings. */}}
{{- define "ferry.crdFiles" -}}
{{- $channel := .Values.gatewayAPI.channel -}}
{{- if not (has $channel (list "standard" "experimental")) -}}
{{- fail (printf "gatewayAPI.channel must be standard or experimental, not %q" $channel) -}}
{{- end -}}
{{- if not (.Files.Glob (printf "files/gateway-api/%s/*.yaml" $channel)) -}}
{{- fail (printf "gatewayAPI.channel=%s: this chart does not carry that channel's CRDs (Helm's release record, a Secret of at most 1 MiB, cannot hold both channels and the rendered CRDs; see the chart's README). Install them with kubectl apply --server-side -f files/gateway-api/%s/ and keep gatewayAPI.installCRDs=false" $channel $channel) -}}
{{- end -}}
{{- range $path, $_ := .Files.Glob (printf "files/gateway-api/%s/gateway.networking.*.yaml" $channel) }}
{{- if not (contains "_vap_" $path) }}
{{ $path }}
{{- end }}
{{- end }}
{{- end }}
