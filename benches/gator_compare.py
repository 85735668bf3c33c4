#!/usr/bin/env python3
"""`gator test` and `regent audit --gator-compat` on the same templates and
manifests: the violation sets compared, message for message, the
evaluation errors by object and Constraint (their texts are each engine's),
the exit codes, and the time and peak memory of each.

    benches/gator_compare.py --gator BIN [--regent BIN] -f PATH [-f PATH ...]
    benches/gator_compare.py --gator BIN [--regent BIN] --library GATEKEEPER_LIBRARY_CHECKOUT

With `--library`, each template of the library is run with its samples: the
template, the Constraint of each sample and every example object of that
sample, one run per sample (sample Constraints may share names). gator is
built by ../shared/tools/build-peers.sh (outside this repository); the
library is fetched outside it too. gator runs with its CEL driver off
(`--enable-k8s-native-validation=false`: Regent runs a template's Rego, gator
by default its CEL code when it has both); `--gator-cel` leaves it on and
compares only which objects each Constraint flags. Exit 0 when nothing
differs.
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# gator reports evaluation and match errors as results; these are they.
GATOR_ERROR = re.compile(r"(unable to match constraints|^(\[Implied by [^\]]+\] )?template:\d+:|eval_\w+_error|rego_\w+_error)")


def key(kind, namespace, name):
    return f"{kind} {namespace or ''}/{name}"


def run(cmd):
    """Runs `cmd`: its output, wall time and its own peak RSS (MiB)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        took = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        p.stdout, p.stderr = out.read().decode(), err.read().decode()
    return p, took, usage.ru_maxrss / 1024


def gator_results(gator, paths, cel):
    args = [gator, "test", "-o", "json", f"--enable-k8s-native-validation={'true' if cel else 'false'}"]
    for p in paths:
        args += ["-f", p]
    p, took, rss = run(args)
    if p.returncode not in (0, 1):
        raise SystemExit(f"gator failed ({p.returncode}):\n{p.stderr[-2000:]}")
    violations, errors = set(), set()
    for r in json.loads(p.stdout or "[]") or []:
        o = r["violatingObject"]
        meta = o.get("metadata", {})
        name = meta.get("name") or (meta.get("generateName", "") + "*" if meta.get("generateName") else "")
        k = key(o.get("kind"), meta.get("namespace"), name)
        c = r["constraint"]["metadata"]["name"]
        if GATOR_ERROR.search(r["msg"]):
            errors.add((k, c))
        else:
            violations.add((k, c, r.get("enforcementAction", ""), r["msg"]))
    return violations, errors, p.returncode, took, rss


def regent_results(regent, paths):
    args = [regent, "audit", "--gator-compat", "-o", "json"]
    for p in paths:
        args += ["-f", p]
    p, took, rss = run(args)
    if p.returncode not in (0, 1):
        raise SystemExit(f"regent failed ({p.returncode}):\n{p.stderr[-2000:]}")
    violations, errors = set(), set()
    for r in json.loads(p.stdout):
        k = key(r["kind"], r.get("namespace"), r["name"])
        if r["result"] in ("fail", "warn"):
            # A Constraint's line is `[name] msg`; gator prints msg alone.
            msg = r["message"]
            prefix = f"[{r['policy']}] "
            msg = msg[len(prefix):] if msg.startswith(prefix) else msg
            violations.add((k, r["policy"], r["enforcement"], msg))
        elif r["result"] == "error":
            errors.add((k, r["policy"]))
    return violations, errors, p.returncode, took, rss


def compare(gator, regent, paths, label, totals, verbose, cel):
    gv, ge, gcode, gt, grss = gator_results(gator, paths, cel)
    rv, re_, rcode, rt, rrss = regent_results(regent, paths)
    if cel:
        # gator runs a template's CEL code when it has one, Regent its Rego:
        # the messages are each code's own; compare who is flagged by what.
        gv = {(k, c, e, "") for k, c, e, _ in gv}
        rv = {(k, c, e, "") for k, c, e, _ in rv}
    totals["violations"] += len(gv)
    totals["errors"] += len(ge)
    totals["gator_s"] += gt
    totals["regent_s"] += rt
    totals["gator_rss"] = max(totals["gator_rss"], grss)
    totals["regent_rss"] = max(totals["regent_rss"], rrss)
    totals["runs"] += 1
    diff = False
    for what, only_g, only_r in (("violation", gv - rv, rv - gv), ("error", ge - re_, re_ - ge)):
        for x in sorted(only_g):
            print(f"{label}: {what} only gator reports: {x}")
            diff = True
        for x in sorted(only_r):
            print(f"{label}: {what} only regent reports: {x}")
            diff = True
    if gcode != rcode:
        print(f"{label}: exit codes differ: gator {gcode}, regent {rcode}")
        diff = True
    if diff:
        totals["differing_runs"] += 1
    elif verbose:
        print(f"{label}: {len(gv)} violations, {len(ge)} errors, exit {gcode}: same")


def library_runs(library):
    root = os.path.join(library, "library")
    for dirpath, _, files in sorted(os.walk(root)):
        if "template.yaml" not in files:
            continue
        samples = os.path.join(dirpath, "samples")
        if not os.path.isdir(samples):
            continue
        for sample in sorted(os.listdir(samples)):
            sdir = os.path.join(samples, sample)
            constraint = os.path.join(sdir, "constraint.yaml")
            if not os.path.isfile(constraint):
                continue
            objects = sorted(os.path.join(sdir, f) for f in os.listdir(sdir)
                             if f.endswith(".yaml") and f != "constraint.yaml")
            if objects:
                yield (os.path.relpath(sdir, root), [os.path.join(dirpath, "template.yaml"), constraint] + objects)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gator", required=True)
    ap.add_argument("--regent", default=os.path.join(ROOT, "target", "release", "regent"))
    ap.add_argument("-f", dest="paths", action="append", default=[])
    ap.add_argument("--library")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--gator-cel", action="store_true",
                    help="leave gator's CEL driver on (its default): templates with CEL code give their CEL "
                         "messages there, so only objects and Constraints are compared")
    args = ap.parse_args()
    version = subprocess.run([args.gator, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"gator: {version}")
    totals = dict(violations=0, errors=0, gator_s=0.0, regent_s=0.0, gator_rss=0.0, regent_rss=0.0,
                  runs=0, differing_runs=0)
    if args.library:
        for label, paths in library_runs(args.library):
            compare(args.gator, args.regent, paths, label, totals, args.verbose, args.gator_cel)
    if args.paths:
        compare(args.gator, args.regent, args.paths, "given paths", totals, args.verbose, args.gator_cel)
    print(f"{totals['runs']} runs, {totals['violations']} violations and {totals['errors']} errors by gator; "
          f"{totals['differing_runs']} runs differ")
    print(f"time: gator {totals['gator_s']:.2f} s, regent {totals['regent_s']:.2f} s "
          f"({totals['gator_s'] / max(totals['regent_s'], 1e-9):.1f}×); peak RSS gator {totals['gator_rss']:.0f} MiB, "
          f"regent {totals['regent_rss']:.0f} MiB")
    sys.exit(0 if totals["differing_runs"] == 0 else 1)


if __name__ == "__main__":
    main()
