#!/usr/bin/env python3
"""Per-stage CPU attribution of `regent serve` under load (see attribute.sh).

Reads `perf script` output of a `perf record --call-graph dwarf` of the
server and charges each sample to a stage: the first frame, from the leaf
up, that belongs to a stage's code (so an allocation or a memcpy is charged
to whoever asked for it). Samples with no stage frame in their (possibly
truncated) stack are "other". Prints a Markdown table: share of samples and
CPU µs per request (the server's CPU per request times the share).

    perf script -F comm,tid,ip,sym,dso -i perf.data | attribute.py --cpu-us 176
"""
import argparse, re, sys

# (stage, frame pattern), tried in order on each frame from the leaf up.
STAGES = [
    ("evaluation (regorus)", r"regorus::(rvm|interpreter|builtins|engine|scheduler|compiler)|regent::runtime::"),
    ("JSON → engine value (review::parse)", r"regent::review::parse|serde_json::|regorus::value::.*[Dd]eserializ"),
    ("policy input and decision (regent::decision/compiled/native)", r"regent::(decision|compiled|native|gatekeeper|policy)::"),
    ("response building (review::Response, JSON, base64)", r"regent::review::|base64::"),
    ("metrics (prometheus)", r"prometheus::|regent::metrics::"),
    ("logging (tracing)", r"tracing|regent::serve::admission::log"),
    ("TLS (rustls, ring)", r"rustls::|ring::|ring_core|aws_lc"),
    ("HTTP (hyper, axum, tower)", r"hyper::|h2::|axum::|tower::|http::|http_body|regent::serve::connections::|regent::serve::admission::"),
    ("async runtime (tokio)", r"tokio::"),
    ("kernel (network, scheduling)", r"\[kernel|^\s*$"),
]
COMPILED = [(name, re.compile(p)) for name, p in STAGES]

def stage_of(frames):
    for sym, dso in frames:
        for name, pat in COMPILED:
            if name.startswith("kernel"):
                continue
            if pat.search(sym):
                return name
    if frames and "kernel" in frames[0][1]:
        return "kernel (network, scheduling)"
    return "other"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu-us", type=float, required=True, help="server CPU µs per request in the same run")
    ap.add_argument("--comm", default="", help="only samples of threads whose name starts with this")
    args = ap.parse_args()
    counts, total = {}, 0
    frames, keep = [], True
    def flush():
        nonlocal total
        if frames and keep:
            s = stage_of(frames)
            counts[s] = counts.get(s, 0) + 1
            total += 1
    for line in sys.stdin:
        if not line.strip():
            flush(); frames = []; keep = True
            continue
        if not line.startswith((" ", "\t")):
            flush(); frames = []
            keep = line.split()[0].startswith(args.comm) if args.comm else True
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            frames.append((m.group(1), m.group(2)))
    flush()
    order = [n for n, _ in STAGES] + ["other"]
    print("| stage | share of server CPU | CPU µs per request |")
    print("|---|---|---|")
    for name in sorted(counts, key=lambda n: -counts[n]):
        share = counts[name] / max(total, 1)
        print(f"| {name} | {100 * share:.1f} % | {share * args.cpu_us:.0f} |")
    print(f"| total ({total} samples) | 100 % | {args.cpu_us:.0f} |")

if __name__ == "__main__":
    main()
