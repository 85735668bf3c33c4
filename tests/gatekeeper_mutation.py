#!/usr/bin/env python3
"""Gatekeeper's own mutation examples through `regent eval --mutate`.

    tests/gatekeeper_mutation.py docs GATEKEEPER_CHECKOUT [--regent BIN]
    tests/gatekeeper_mutation.py library GATEKEEPER_LIBRARY_CHECKOUT [--regent BIN]

`docs` takes every YAML block of website/docs/mutation.md that declares
Assign, AssignMetadata, ModifySet or AssignImage objects without external
data, runs it on an input chosen to show the documented effect, and checks the
documented result. `library` loads every mutator sample of the
gatekeeper-library's mutation/ folder (each file alone, then all together),
loads all of them together and runs the samples' example Pods and a representative Pod and Deployment,
and checks that each patch applies (Python's jsonpatch, independent of Regent)
and that a second pass changes nothing.

The checkouts are read, never copied into this repository. Neither is
reachable from CI, so this is not part of tests/run.sh; the suite carries the
same documented examples as our own objects (tests/mutators.rs). Exit 0 when
everything holds, 1 otherwise. Needs PyYAML and jsonpatch (tests/tools.sh
installs both into target/test-tools/venv).
"""

import argparse
import copy
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import jsonpatch
import yaml

KINDS = {"Assign", "AssignMetadata", "ModifySet", "AssignImage"}
DIGEST = "@sha256:abcde67890123456789abc345678901a"


def regent_eval(regent, bundle, obj, operation="CREATE"):
    """(patch or None, mutated object, mutated_by) of one object."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "object.json"
        path.write_text(json.dumps(obj))
        out = subprocess.run(
            [regent, "eval", "--policies", str(bundle), "-f", str(path),
             "--mutate", "-o", "json", "--operation", operation],
            capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"regent eval failed: {out.stderr.strip()}")
    record = json.loads(out.stdout)[0]
    if "patch" not in record:
        return None, obj, []
    return record["patch"], record["mutated"], record.get("mutated_by", [])


def checked(regent, bundle, obj, operation="CREATE"):
    """Mutates, applies the patch independently, and mutates again."""
    patch, mutated, by = regent_eval(regent, bundle, obj, operation)
    problems = []
    if patch is not None:
        applied = jsonpatch.apply_patch(copy.deepcopy(obj), patch)
        if applied != mutated:
            problems.append("the patch does not give the mutated object")
    again, _, by_again = regent_eval(regent, bundle, mutated, operation)
    if again is not None:
        problems.append(f"not idempotent: a second pass patches {again} (by {by_again})")
    return patch, mutated, by, problems


def pod(name="nginx-1", namespace="default", containers=None, **spec):
    spec = dict(spec)
    spec["containers"] = containers or [{"name": "nginx", "image": "nginx:latest"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def expectations():
    """(name, location) of a documented object -> (input, operation, check)."""
    c = lambda o: o["spec"]["containers"]  # noqa: E731
    return {
        ("demo-annotation-owner", "metadata.annotations.owner"): [
            (pod(), "CREATE", lambda o: o["metadata"].get("annotations", {}).get("owner") == "admin"),
        ],
        ("demo-annotation-owner", "metadata.labels.owner"): [
            (pod(), "CREATE", lambda o: o["metadata"]["labels"]["owner"] == "admin"),
        ],
        ("demo-annotation-owner", "metadata.labels.namespace"): [
            (pod(namespace="payments"), "CREATE", lambda o: o["metadata"]["labels"]["namespace"] == "payments"),
        ],
        ("remove-err-logging", "spec.containers[name: *].args"): [
            (pod(containers=[{"name": "a", "args": ["--v=2", "--alsologtostderr"]}]), "CREATE",
             lambda o: c(o)[0]["args"] == ["--v=2"]),
        ],
        ("assign-container-image", "spec.containers[name:*].image"): [
            (pod(containers=[{"name": "a", "image": "my.registry.io:2000/repo/app:latest"}]), "CREATE",
             lambda o: c(o)[0]["image"] == "my.registry.io/repo/app" + DIGEST),
        ],
        ("demo-privileged", "spec.containers[name:foo].securityContext.privileged"): [
            (pod(namespace="bar", containers=[{"name": "foo"}]), "CREATE",
             lambda o: c(o)[0]["securityContext"]["privileged"] is False),
            (pod(namespace="bar", containers=[{"name": "other"}]), "CREATE",
             lambda o: c(o) == [{"name": "other"}]),
            (pod(namespace="default", containers=[{"name": "foo"}]), "CREATE",
             lambda o: c(o) == [{"name": "foo"}]),
        ],
        ("demo-image-pull-policy", "spec.containers[name:*].imagePullPolicy"): [
            (pod(containers=[{"name": "a"}, {"name": "b", "imagePullPolicy": "Never"}]), "CREATE",
             lambda o: [x["imagePullPolicy"] for x in c(o)] == ["Always", "Always"]),
            (pod(namespace="system", containers=[{"name": "a"}]), "CREATE",
             lambda o: "imagePullPolicy" not in c(o)[0]),
        ],
        ("demo-env-create-only", "spec.containers[name:*].env[name:DEPLOYMENT_TIMESTAMP].value"): [
            (pod(), "CREATE",
             lambda o: c(o)[0]["env"] == [{"name": "DEPLOYMENT_TIMESTAMP", "value": "2024-01-01T00:00:00Z"}]),
            (pod(), "UPDATE", lambda o: "env" not in c(o)[0]),
        ],
        ("demo-sidecar", "spec.containers[name:networking]"): [
            (pod(), "CREATE", lambda o: c(o)[1] == {
                "name": "networking", "imagePullPolicy": "Always", "image": "quay.io/foo/bar:latest",
                "command": ["/bin/bash", "-c", "sleep INF"]}),
        ],
        ("demo-dns-policy", "spec.dnsPolicy"): [
            (pod(), "CREATE", lambda o: o["spec"]["dnsPolicy"] == "None"
             and o["spec"]["dnsConfig"] == {"nameservers": ["1.2.3.4"]}),
        ],
        ("add-nginx-digest", "spec.containers[name:nginx].image"): [
            (pod(containers=[{"name": "nginx", "image": "nginx:latest"}, {"name": "x", "image": "busybox"}]), "CREATE",
             lambda o: [x["image"] for x in c(o)] == ["nginx" + DIGEST, "busybox"]),
        ],
    }


def docs(args):
    text = (pathlib.Path(args.checkout) / "website/docs/mutation.md").read_text()
    blocks = re.findall(r"```(?:yaml)?\n(.*?)```", text, re.S)
    expect = expectations()
    failures, ran = 0, 0
    for block in blocks:
        try:
            objs = [d for d in yaml.safe_load_all(block) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue
        mutators = [d for d in objs if d.get("apiVersion", "").startswith("mutations.gatekeeper.sh/")
                    and d.get("kind") in KINDS]
        if not mutators:
            continue
        name, location = mutators[0]["metadata"]["name"], mutators[0]["spec"].get("location")
        if "externalData" in json.dumps(mutators):
            print(f"skip  {name}: external data")
            continue
        cases = expect.get((name, location))
        if cases is None:
            print(f"FAIL  {name} ({location}): a documented example with no expectation here")
            failures += 1
            continue
        with tempfile.TemporaryDirectory() as tmp:
            (pathlib.Path(tmp) / "mutators.yaml").write_text(yaml.safe_dump_all(mutators))
            for obj, operation, check in cases:
                ran += 1
                _, mutated, by, problems = checked(args.regent, tmp, obj, operation)
                ok = check(mutated) and not problems
                failures += not ok
                print(f"{'ok   ' if ok else 'FAIL '} {name} ({location}) on {operation}: "
                      f"mutated by {by or 'nothing'}{'; ' + '; '.join(problems) if problems else ''}")
    print(f"docs: {ran} cases, {failures} failed")
    return failures == 0


def library(args):
    root = pathlib.Path(args.checkout) / "mutation"
    samples = sorted(p for p in root.rglob("*.yaml")
                     if any(d and d.get("apiVersion", "").startswith("mutations.gatekeeper.sh/")
                            for d in yaml.safe_load_all(p.read_text())))
    examples = sorted(p for p in root.rglob("example*.yaml") if p not in samples)
    failures = 0
    for s in samples:
        with tempfile.TemporaryDirectory() as tmp:
            (pathlib.Path(tmp) / s.name).write_text(s.read_text())
            out = subprocess.run([args.regent, "check", tmp], capture_output=True, text=True)
            n = len([d for d in yaml.safe_load_all(s.read_text()) if d])
            ok = out.returncode == 0
            failures += not ok
            print(f"{'ok   ' if ok else 'FAIL '} loads {s.relative_to(root)} ({n} mutators)"
                  + ("" if ok else f": {out.stdout.strip()} {out.stderr.strip()}"))
    representative_pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"initContainers": [{"name": "init", "image": "busybox:1.36"}],
                 "containers": [{"name": "app", "image": "registry.example.com/web:1.4",
                                 "securityContext": {"runAsUser": 1001}},
                                {"name": "cache", "image": "redis:7", "args": ["--save", ""]}]}}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example.com/web:1.4"}]}}}}
    # Every sample together (the library names the Assign and the ModifySet
    # of capabilities alike; they are different kinds, so both load), then
    # each sample alone on its own example Pods.
    with tempfile.TemporaryDirectory() as tmp:
        for i, s in enumerate(samples):
            (pathlib.Path(tmp) / f"{i:02d}-{s.name}").write_text(s.read_text())
        out = subprocess.run([args.regent, "check", tmp], capture_output=True, text=True)
        total = out.stdout.count(" mutator  ")
        print(f"{'ok   ' if out.returncode == 0 else 'FAIL '} all samples together: {total} mutators")
        failures += out.returncode != 0
        objects = [("representative Pod", representative_pod), ("representative Deployment", deployment)]
        objects += [(str(e.relative_to(root)), yaml.safe_load(e.read_text())) for e in examples]
        for what, obj in objects:
            patch, _, by, problems = checked(args.regent, tmp, obj)
            failures += bool(problems)
            print(f"{'FAIL ' if problems else 'ok   '} {what}: {len(patch or [])} patch operations by "
                  f"{len(by)} mutators{'; ' + '; '.join(problems) if problems else ''}")
    print(f"library: {len(samples)} sample files, {len(examples)} example objects, {failures} failed")
    return failures == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["docs", "library"])
    ap.add_argument("checkout")
    ap.add_argument("--regent", default=str(pathlib.Path(__file__).resolve().parents[1] / "target/debug/regent"))
    args = ap.parse_args()
    ok = docs(args) if args.what == "docs" else library(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
