#!/usr/bin/env python3
"""Derives seldon-v1-fields.txt: every JSON field of Seldon Core v1.18.2's SeldonDeployment
types, as a path, from operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go.

Usage (the `fetch` snapshot of github:SeldonIO/seldon-core, or any clone):
  git -C seldon-core show v1.18.2:operator/apis/machinelearning.seldon.io/v1/seldondeployment_types.go \
    | python3 derive_seldon_v1_fields.py > seldon-v1-fields.txt

Seldon's own struct types are expanded; Kubernetes and KEDA types (PodSpec, ObjectMeta,
Container, ResourceRequirements, EnvVar, MetricSpec, ScaleTriggers, ...) are leaves: seldon-mesh
passes those through whole (k8s-openapi types). The graph's `children` is a leaf too (it is a
PredictiveUnit again). `metadata` of the SeldonDeployment is added by hand: only its
`labels`/`annotations` carry Seldon meaning; the annotation keys are a separate list
(seldon-v1-annotations.txt).
"""
import re
import sys

src = sys.stdin.read()
structs = {}
for m in re.finditer(r"^type (\w+) struct \{(.*?)^\}", src, re.S | re.M):
    fields = []
    for line in m.group(2).splitlines():
        f = re.match(r"\s*(\w+)\s+(\S+)\s+`json:\"([^,\"]*)", line)
        if f and f.group(3):
            fields.append((f.group(3), re.sub(r"[\[\]\*]", "", f.group(2))))
    structs[m.group(1)] = fields
# Seldon's ObjectMeta copy (componentSpecs[].metadata) is a Kubernetes ObjectMeta: a leaf.
LEAVES = {"ObjectMeta", "PredictiveUnit"}

def walk(t, path, seen):
    for name, ty in structs[t]:
        p = f"{path}.{name}"
        print(p)
        if ty in structs and ty not in LEAVES and ty not in seen:
            walk(ty, p, seen | {ty})

print("metadata.labels")
print("metadata.annotations")
walk("SeldonDeploymentSpec", "spec", set())
walk("PredictiveUnit", "spec.predictors.graph", {"PredictiveUnit"})
