{{- define "seldon-mesh.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
