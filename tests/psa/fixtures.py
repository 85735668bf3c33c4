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
version. Exit 0 when every fixture agrees, 1 otherwise.
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
    finally:
        shutil.rmtree(work)
    for level, version, verdict, f, messages in wrong:
        print(f"DISAGREE {f}: PSA says {verdict}" + (f"; regent: {'; '.join(messages)}" if messages else "; regent: no violation"))
    print(f"{totals['agree']} of {totals['fixtures']} fixtures agree with Pod Security Admission "
          f"({totals['fixtures'] - totals['agree']} disagree)")
    sys.exit(0 if totals["agree"] == totals["fixtures"] else 1)


if __name__ == "__main__":
    main()
