#!/usr/bin/env python3
"""What a policy bundle does to real workloads, per object: warnings, denials
and limits set. Runs `regent eval --mutate -o json` on the manifests given
(a directory of YAML or JSON) and prints the median and maximum warnings per
object, how many objects are denied, and how many get a resource limit from
a mutating policy.

    benches/warnings.py [--regent BIN] [--policies DIR ...] [--with-default-bundle] MANIFESTS

Used to measure the default bundle as shipped and as the chart installs it
(tests/fixtures/real-world, or a larger public corpus kept outside the
repository), before and after a change to its policies.
"""
import argparse
import json
import statistics
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--regent", default="target/debug/regent")
    ap.add_argument("--policies", action="append", default=[])
    ap.add_argument("--with-default-bundle", action="store_true")
    ap.add_argument("manifests")
    a = ap.parse_args()
    cmd = [a.regent, "eval", "--mutate", "-o", "json", "-f", a.manifests]
    for p in a.policies:
        cmd += ["--policies", p]
    if a.with_default_bundle:
        cmd.append("--with-default-bundle")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"regent eval failed ({out.returncode}): {out.stderr[-2000:]}")
    records = json.loads(out.stdout)
    warnings = [len(r.get("warnings", [])) for r in records]
    denied = sum(1 for r in records if not r["allowed"])
    limits = sum(
        1
        for r in records
        if any("/limits" in op.get("path", "") or "limits" in json.dumps(op.get("value", ""))
               for op in (r.get("patch") or []))
    )
    by_policy = {}
    for r in records:
        for w in r.get("warnings", []):
            p = w.split("]")[0].lstrip("[")
            by_policy[p] = by_policy.get(p, 0) + 1
    print(json.dumps({
        "objects": len(records),
        "warnings_median": statistics.median(warnings) if warnings else 0,
        "warnings_max": max(warnings) if warnings else 0,
        "warnings_total": sum(warnings),
        "denied": denied,
        "limits_set": limits,
        "warnings_by_policy": dict(sorted(by_policy.items())),
    }, indent=1))


if __name__ == "__main__":
    main()
