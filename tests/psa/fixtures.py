#!/usr/bin/env python3
"""Runs Kubernetes' own Pod Security Admission fixtures through Regent's
`pod_security` policy: for every level (baseline, restricted) and every
version (v1.0 ... the newest in the checkout), each `fail` Pod must have at
least one `pod_security` violation and each `pass` Pod none.

    tests/psa/fixtures.py PATH-TO-pod-security-admission-CHECKOUT [--regent BIN] [-v]

The checkout is fetched outside this repository (its fixtures are
Kubernetes', not ours): `git clone https://github.com/kubernetes/pod-security-admission`.
Each level and version is judged by `regent audit` (objects as they are, no
mutation) on a bundle holding only the policy, set to that level and
version.

Then the mutating companion (`mutate.pod_security_defaults`): every
restricted `fail` Pod of the newest version goes through `regent eval
--mutate`; a Pod whose violations the companion may fix (fields the user left
unset, on a Linux Pod that does not run as user 0) must be restricted-clean
after it, and a second pass must change nothing. Exit 0 when everything
agrees, 1 otherwise.
"""
import argparse, collections, json, os, re, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POLICY = os.path.join(ROOT, "policies", "validate", "pod_security")


def bundle(dirpath, level, version):
    """A bundle of the policy alone, at `level` and `version`."""
    target = os.path.join(dirpath, "validate", "pod_security")
    os.makedirs(target, exist_ok=True)
    for f in ("policy.rego", "parameters.schema.yaml"):
        shutil.copy(os.path.join(POLICY, f), target)
    with open(os.path.join(target, "data.yaml"), "w") as out:
        out.write(f"enforcement: deny\nparameters:\n  level: {level}\n  version: {version}\n")


MUTATOR = os.path.join(ROOT, "policies", "mutate", "pod_security_defaults")


def mutation_bundle(dirpath):
    """pod_security at restricted, latest, with the companion on."""
    bundle(dirpath, "restricted", "latest")
    target = os.path.join(dirpath, "mutate", "pod_security_defaults")
    os.makedirs(target, exist_ok=True)
    for f in ("policy.rego", "parameters.schema.yaml"):
        shutil.copy(os.path.join(MUTATOR, f), target)
    with open(os.path.join(target, "data.yaml"), "w") as out:
        out.write("enforcement: deny\norder: 40\nparameters: {}\n")


def at(obj, path):
    """The value at a field path (`spec.containers[0].securityContext.x`), or None."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            obj = obj[i] if isinstance(obj, list) and i < len(obj) else None
        else:
            obj = obj.get(part) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def fixable(pod, paths):
    """Whether the companion may fix every violation at `paths` of `pod`."""
    spec = pod.get("spec", {})
    psc = spec.get("securityContext") or {}
    if (spec.get("os") or {}).get("name") == "windows":
        return False
    root = psc.get("runAsUser") == 0 or any(
        ((c.get("securityContext") or {}).get("runAsUser") == 0)
        for f in ("containers", "initContainers", "ephemeralContainers") for c in spec.get(f) or [])
    for p in paths:
        if at(pod, p) is not None:
            return False  # the user set it: never replaced
        if p.endswith(".securityContext.seccompProfile") and psc.get("seccompProfile") is not None:
            return False
        if p.endswith(".securityContext.runAsNonRoot") and (psc.get("runAsNonRoot") is not None or root
                                                           or spec.get("hostUsers") is False):
            return False
        if not re.search(r"\.(allowPrivilegeEscalation|capabilities\.drop|seccompProfile|runAsNonRoot)$", p):
            return False
    return True


def mutation_check(regent, data, work, totals, wrong):
    """The companion on the newest restricted `fail` Pods."""
    versions = sorted(os.listdir(os.path.join(data, "restricted")), key=lambda v: int(v.split(".")[1]))
    fail_dir = os.path.join(data, "restricted", versions[-1], "fail")
    b = os.path.join(work, "mutation")
    mutation_bundle(b)
    audit = lambda d: subprocess.run([regent, "audit", "--policies", b, "-o", "json", "-f", d],
                                     capture_output=True, text=True)
    before = collections.defaultdict(list)
    for r in json.loads(audit(fail_dir).stdout):
        if r["policy"] == "pod_security" and r["result"] == "fail":
            before[r["source"].rsplit("#", 1)[0]].append(r["path"])
    out = subprocess.run([regent, "eval", "--policies", b, "--mutate", "-o", "json", "-f", fail_dir],
                         capture_output=True, text=True)
    mutated_dir = os.path.join(work, "mutated")
    os.makedirs(mutated_dir)
    for r in json.loads(out.stdout):
        f = r["source"].rsplit("#", 1)[0]
        obj = r.get("mutated") or yaml_load(f)
        with open(os.path.join(mutated_dir, os.path.basename(f)), "w") as o:
            json.dump(obj, o)
    after = collections.defaultdict(list)
    for r in json.loads(audit(mutated_dir).stdout):
        if r["policy"] == "pod_security" and r["result"] == "fail":
            after[os.path.basename(r["source"].rsplit("#", 1)[0])].append(r["path"])
    again = json.loads(subprocess.run([regent, "eval", "--policies", b, "--mutate", "-o", "json", "-f", mutated_dir],
                                      capture_output=True, text=True).stdout)
    for r in again:
        totals["mutation idempotent checks"] += 1
        if r.get("patch"):
            wrong.append(("mutation", "latest", "idempotent", r["source"], [json.dumps(r["patch"])]))
    for f, paths in sorted(before.items()):
        pod = yaml_load(f)
        if fixable(pod, paths):
            totals["fixable fail pods"] += 1
            left = after.get(os.path.basename(f), [])
            if left:
                wrong.append(("mutation", "latest", "clean after mutation", os.path.basename(f), left))
            else:
                totals["fixed"] += 1
        else:
            totals["not fixable"] += 1


def yaml_load(path):
    """One YAML fixture as JSON."""
    import yaml  # PyYAML: pip install pyyaml
    with open(path) as f:
        return yaml.safe_load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("psa", help="a checkout of kubernetes/pod-security-admission")
    ap.add_argument("--regent", default=os.path.join(ROOT, "target", "debug", "regent"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    data = os.path.join(args.psa, "test", "testdata")
    if not os.path.isdir(data):
        sys.exit(f"{data}: not a pod-security-admission checkout")
    totals = collections.Counter()
    wrong = []
    work = tempfile.mkdtemp()
    try:
        for level in ("baseline", "restricted"):
            versions = sorted(os.listdir(os.path.join(data, level)), key=lambda v: int(v.split(".")[1]))
            for version in versions:
                b = os.path.join(work, f"{level}-{version}")
                bundle(b, level, version)
                fixtures = []
                for verdict in ("pass", "fail"):
                    d = os.path.join(data, level, version, verdict)
                    if os.path.isdir(d):
                        fixtures += [(verdict, os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".yaml")]
                files = []
                for _, f in fixtures:
                    files += ["-f", f]
                out = subprocess.run([args.regent, "audit", "--policies", b, "-o", "json"] + files,
                                     capture_output=True, text=True)
                if out.returncode not in (0, 1):
                    sys.exit(f"regent audit failed on {level}/{version}:\n{out.stderr}")
                failing = collections.defaultdict(list)
                for r in json.loads(out.stdout):
                    if r["policy"] == "pod_security" and r["result"] == "fail":
                        failing[r["source"].rsplit("#", 1)[0]].append(r["message"])
                for verdict, f in fixtures:
                    got = "fail" if failing.get(f) else "pass"
                    totals["fixtures"] += 1
                    if got == verdict:
                        totals["agree"] += 1
                    else:
                        wrong.append((level, version, verdict, os.path.relpath(f, data), failing.get(f)))
                    if args.verbose and verdict == "fail":
                        for m in failing.get(f, []):
                            print(f"{level}/{version} {os.path.basename(f)}: {m}")
        mutation_check(args.regent, data, work, totals, wrong)
    finally:
        shutil.rmtree(work)
    for level, version, verdict, f, messages in wrong:
        if level == "mutation":
            print(f"MUTATION {f}: not {verdict}: {'; '.join(messages)}")
        else:
            print(f"DISAGREE {f}: PSA says {verdict}" + (f"; regent: {'; '.join(messages)}" if messages else "; regent: no violation"))
    print(f"{totals['agree']} of {totals['fixtures']} fixtures agree with Pod Security Admission "
          f"({totals['fixtures'] - totals['agree']} disagree)")
    print(f"mutating companion on the newest restricted fail Pods: {totals['fixed']} of {totals['fixable fail pods']} "
          f"fixable Pods restricted-clean after mutation ({totals['not fixable']} hold a value the user set); "
          f"{totals['mutation idempotent checks']} mutated Pods mutated again: "
          f"{sum(1 for w in wrong if w[2] == 'idempotent')} changed")
    sys.exit(0 if not wrong else 1)


if __name__ == "__main__":
    main()
