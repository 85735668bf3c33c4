#!/usr/bin/env python3
"""Builds the corpus for `tests/evaluators.rs` from a gatekeeper-library
checkout (kept outside this repository): every template's Rego and libs with
the parameters of each of its sample Constraints, and every sample object of
the library plus variants with container and pod fields removed (where
policies meet undefined values).

    python3 benches/evaluator_corpus.py LIBRARY_CHECKOUT OUT.json
    REGENT_EVALUATOR_CORPUS=OUT.json cargo test --release --test evaluators -- --ignored
"""
import copy
import glob
import json
import os
import sys

import yaml

CONTAINER_FIELDS = ["securityContext", "resources", "image", "ports", "volumeMounts", "readinessProbe", "livenessProbe"]
POD_FIELDS = ["securityContext", "volumes", "hostNetwork", "hostPID", "serviceAccountName"]


def pod_specs(obj):
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if "containers" in spec:
        yield spec
    template = (spec.get("template") or {}).get("spec")
    if isinstance(template, dict):
        yield template
    job = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
    if isinstance(job, dict):
        yield job


def variants(obj):
    yield obj
    for field in CONTAINER_FIELDS:
        v, changed = copy.deepcopy(obj), False
        for spec in pod_specs(v):
            for key in ("containers", "initContainers", "ephemeralContainers"):
                for c in spec.get(key) or []:
                    if isinstance(c, dict) and field in c:
                        del c[field]
                        changed = True
        if changed:
            yield v
    for field in POD_FIELDS:
        v, changed = copy.deepcopy(obj), False
        for spec in pod_specs(v):
            if field in spec:
                del spec[field]
                changed = True
        if changed:
            yield v
    v = copy.deepcopy(obj)
    meta = v.get("metadata") or {}
    if meta.pop("labels", None) is not None or meta.pop("annotations", None) is not None:
        yield v


def main(library, out):
    root = os.path.join(library, "library")
    templates, objects = [], []
    for d, _, files in sorted(os.walk(root)):
        if "template.yaml" in files:
            target = yaml.safe_load(open(os.path.join(d, "template.yaml")))["spec"]["targets"][0]
            rego, libs = target.get("rego"), target.get("libs") or []
            for code in target.get("code") or []:
                if rego is None and code.get("engine") == "Rego":
                    rego, libs = code["source"]["rego"], code["source"].get("libs") or []
            if rego is not None:
                params = [doc.get("spec", {}).get("parameters") or {}
                          for c in sorted(glob.glob(os.path.join(d, "samples", "*", "constraint.yaml")))
                          for doc in yaml.safe_load_all(open(c)) if doc]
                templates.append({"name": os.path.relpath(d, root), "rego": rego, "libs": libs, "params": params + [{}]})
        for f in sorted(files):
            if f.startswith("example") and f.endswith(".yaml"):
                for doc in yaml.safe_load_all(open(os.path.join(d, f))):
                    if isinstance(doc, dict) and "kind" in doc:
                        objects.extend(variants(doc))
    json.dump({"templates": templates, "objects": objects}, open(out, "w"), default=str)
    print(f"{len(templates)} templates, {sum(len(t['params']) for t in templates)} parameter sets, {len(objects)} objects")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
