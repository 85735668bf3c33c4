#!/usr/bin/env python3
"""Side-by-side load benchmark of `regent serve` and its baselines (see load.sh).

`regent-echo` (the lightest correct webhook: the same TLS stack and accept
loop, the body parsed into serde_json::Value, the uid echoed),
`regent-echo --engine-parse` (the same, parsing as regent does) and `regent
serve` run on 127.0.0.1 with the same certificate; wrk drives them in turn
with the same 8 KB Pod AdmissionReview. Server CPU comes from
/proc/<pid>/stat (user + system) over each run, peak RSS from VmHWM.
"""
import argparse, json, paired, os, platform, re, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

median = statistics.median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGENT = os.path.join(ROOT, "target/release/regent")
ECHO = os.path.join(ROOT, "target/release/regent-echo")
TICK = os.sysconf("SC_CLK_TCK")

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("REGENT_BODY"), "rb"); wrk.body = f:read("*a"); f:close()
if os.getenv("REGENT_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
-- Every distinct latency (µs) and its count, for histograms pooled over runs.
done = function(summary, latency, requests)
  local f = io.open(os.getenv("REGENT_HIST"), "w")
  for i = 1, #latency do
    local us, count = latency(i)
    f:write(us, " ", count, "\\n")
  end
  f:close()
end
"""

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK

def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"port {port} never opened")

def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        raise SystemExit(f"cannot read wrk latency {text!r}")
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000, "m": v * 60000}[m.group(2)]

def wrk(url, conns, close, duration, body):
    hist_file = os.path.join(os.path.dirname(LUA_FILE), "latency.hist")
    env = dict(os.environ, REGENT_BODY=body, REGENT_CLOSE="1" if close else "0", REGENT_HIST=hist_file)
    threads = str(min(conns, 2))
    out = subprocess.run(["wrk", "-t", threads, "-c", str(conns), "-d", f"{duration}s", "--latency",
                          "-s", LUA_FILE, url], env=env, capture_output=True, text=True, timeout=duration + 30).stdout
    if "Requests/sec" not in out or "50%" not in out:
        raise SystemExit(f"wrk produced no result for {url} ({conns} connections):\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    hist = {}
    with open(hist_file) as f:
        for line in f:
            us, count = (int(float(x)) for x in line.split())
            hist[us] = hist.get(us, 0) + count
    return {"rps": rps, "total": total, "p50": p50, "p99": p99, "hist": hist,
            "errors": int(errors.group(1)) if errors else 0, "socket": sock.group(1) if sock else ""}

# The servers run as a Deployment runs them: a developer shell's
# RUST_BACKTRACE would make every error value capture a backtrace.
SERVER_ENV = {k: v for k, v in os.environ.items() if k not in ("RUST_BACKTRACE", "RUST_LIB_BACKTRACE")}

def start(cmd, port):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=SERVER_ENV)
    wait_port(port)
    return p

def synthetic_bundle(d, n, note):
    fields = ["privileged", "allowPrivilegeEscalation", "readOnlyRootFilesystem", "runAsNonRoot"]
    for i in range(n):
        os.makedirs(f"{d}/validate/p{i}", exist_ok=True)
        f = fields[i % 4]
        open(f"{d}/validate/p{i}/policy.rego", "w").write(
            f"# {note}\npackage validate.p{i}\n\nimport data.regent.lib.workload.containers\nimport rego.v1\n\n"
            f"violation contains v if {{\n\tsome c in containers\n\tc.container.securityContext.{f} == {'true' if i % 2 == 0 else 'false'}\n"
            f"\tv := {{\"path\": c.path, \"msg\": \"policy {i}\", \"fix\": \"fix {i}\"}}\n}}\n")

def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(r"^" + re.escape(name) + r" ([\d.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0

def startup_and_reload(certs, regent=REGENT):
    """Time to /readyz with the default bundle; a 200-policy bundle's compile, warm-up and swap."""
    port, admin = free_port(), free_port()
    t0 = time.perf_counter()
    p = subprocess.Popen([regent, "serve", "--addr", f"127.0.0.1:{port}", "--admin-addr", f"127.0.0.1:{admin}",
                          "--tls-cert", f"{certs}/tls.crt", "--tls-key", f"{certs}/tls.key", "--log", "warn"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=SERVER_ENV)
    ready = None
    while time.perf_counter() - t0 < 10:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                ready = time.perf_counter() - t0; break
        except Exception:
            time.sleep(0.002)
    p.terminate(); p.wait()
    d = tempfile.mkdtemp()
    synthetic_bundle(d, 200, "v1")
    port, admin = free_port(), free_port()
    p = subprocess.Popen([regent, "serve", "--addr", f"127.0.0.1:{port}", "--admin-addr", f"127.0.0.1:{admin}",
                          "--tls-cert", f"{certs}/tls.crt", "--tls-key", f"{certs}/tls.key", "--policies", d, "--log", "warn"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=SERVER_ENV)
    wait_port(admin)
    end = time.time() + 20
    while metric(admin, 'regent_bundle_reloads_total{result="success"}') < 1 and time.time() < end:
        time.sleep(0.01)
    first = metric(admin, "regent_bundle_reload_duration_seconds_sum")
    synthetic_bundle(d, 200, "v2")
    t_swap = time.perf_counter()
    while metric(admin, 'regent_bundle_reloads_total{result="success"}') < 2 and time.time() < end:
        time.sleep(0.002)
    observed = time.perf_counter() - t_swap
    second = metric(admin, "regent_bundle_reload_duration_seconds_sum") - first
    p.terminate(); p.wait()
    shutil.rmtree(d)
    return ready, first, second, observed

def start_setups(args, certs, setups):
    """One `regent serve` per setup (name -> extra arguments): (process, port, admin port)."""
    procs = {}
    for name, extra in setups.items():
        port, admin = free_port(), free_port()
        procs[name] = (start([args.regent, "serve", "--addr", f"127.0.0.1:{port}", "--admin-addr", f"127.0.0.1:{admin}",
                              "--tls-cert", f"{certs}/tls.crt", "--tls-key", f"{certs}/tls.key", "--log", "warn"] + extra, port), port, admin)
    return procs

def balanced_orders(n):
    """Orders of `n` setups in which each setup runs right after every other
    one equally often (a Williams design): what one setup leaves behind
    (deferred background work, a warm or cold cache) lands on each of the
    others alike, not always on the same one."""
    first = [0]
    lo, hi = 1, n - 1
    while len(first) < n:
        first.append(lo); lo += 1
        if len(first) < n:
            first.append(hi); hi -= 1
    rows = [[(r + b) % n for b in first] for r in range(n)]
    return rows + ([list(reversed(row)) for row in rows] if n % 2 else [])

def alternate(args, procs, path="/validate", rounds=None, settle=0.5, first_round=0):
    """wrk on each server in turn at 1 and 8 connections, `rounds` times
    (`args.rounds` by default), after a warm-up second each; each round in
    the next of `balanced_orders`, with `settle` seconds of quiet after each
    run (so no run starts in another's leftover work). The runs per (setup,
    connections), with the server CPU per request and the latency
    histogram."""
    results = {(n, c): [] for n in procs for c in (1, 8)}
    setups = list(procs.items())
    # A second of load on each first, not counted: the first connections,
    # page faults and lazily built state land in no round.
    for name, (proc, port, admin) in setups:
        wrk(f"https://127.0.0.1:{port}{path}", 8, False, 1, args.body)
    orders = balanced_orders(len(setups))
    for round_no in range(first_round, first_round + (args.rounds if rounds is None else rounds)):
        order = [setups[i] for i in orders[round_no % len(orders)]]
        for conns in (1, 8):
            for name, (proc, port, admin) in order:
                time.sleep(settle)
                c0 = cpu_seconds(proc.pid)
                r = wrk(f"https://127.0.0.1:{port}{path}", conns, False, args.duration, args.body)
                r["cpu_us"] = (cpu_seconds(proc.pid) - c0) * 1e6 / max(r["total"], 1)
                r["round"] = round_no
                results[(name, conns)].append(r)
    return results

def setups_table(title, setups, results, rss):
    """Prints the medians of alternated runs, one row per (connections,
    setup), under `title`; returns them by (setup, connections)."""
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print()
    print(title)
    print("| connections | setup | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for conns in (1, 8):
        for name in setups:
            row = {k: med([r[k] for r in results[(name, conns)]]) for k in ("rps", "p50", "p99", "cpu_us")}
            summary[(name, conns)] = row
            print(f"| {conns} | {name} | {row['rps']:,.0f} | {row['p50']:.2f} | {row['p99']:.2f} | {row['cpu_us']:.0f} | {rss[name]:.1f} |")
    return summary

def candidate_run(args, certs):
    """Admission with and without a candidate bundle as heavy as the live one
    (the default bundle, copied, one comment changed): the same server build,
    alternated, `rounds` times; medians and ratios."""
    cand = tempfile.mkdtemp()
    shutil.copytree(os.path.join(ROOT, "policies"), cand, dirs_exist_ok=True)
    first = sorted(os.path.join(r, f) for r, _, fs in os.walk(cand) for f in fs if f.endswith(".rego") and not f.endswith("_test.rego"))[0]
    open(first, "a").write("\n# candidate\n")
    setups = {"no candidate": [], "candidate": ["--candidate-policies", cand]}
    procs = start_setups(args, certs, setups)
    end = time.time() + 20
    while not metric(procs["candidate"][2], 'regent_candidate_reloads_total{result="success"}') and time.time() < end:
        time.sleep(0.05)
    if not metric(procs["candidate"][2], 'regent_candidate_reloads_total{result="success"}'):
        raise SystemExit("the candidate bundle never loaded")
    try:
        results = alternate(args, procs)
        admin = procs["candidate"][2]
        shadow = {k: metric(admin, f'regent_candidate_evaluations_total{{result="{k}"}}') for k in ("same", "diverged", "failed", "dropped")}
        rss = {n: peak_rss_mib(p.pid) for n, (p, _, _) in procs.items()}
    finally:
        for proc, _, _ in procs.values():
            proc.terminate(); proc.wait()
        shutil.rmtree(cand)
    summary = setups_table(f"candidate bundle as heavy as the live one; {args.rounds} alternated rounds of {args.duration}s, medians",
                           setups, results, rss)
    p99 = summary[("candidate", 1)]["p99"] / summary[("no candidate", 1)]["p99"]
    rps = summary[("candidate", 8)]["rps"] / summary[("no candidate", 8)]["rps"]
    print()
    print(f"p99 at 1 connection, candidate/none: {p99:.2f}× (target ≤ 1.10×)")
    print(f"req/s at 8 connections, candidate/none: {rps:.2f}× (target ≥ 0.60×)")
    total = sum(shadow.values())
    print(f"shadow evaluations: {shadow['same']:.0f} same, {shadow['diverged']:.0f} diverged, {shadow['failed']:.0f} failed, "
          f"{shadow['dropped']:.0f} dropped ({100 * shadow['dropped'] / max(total, 1):.1f} % of {total:.0f})")
    if args.json:
        json.dump({"p99_ratio_1": p99, "rps_ratio_8": rps, "shadow": shadow,
                   "rows": {f"{n}/{c}": v for (n, c), v in summary.items()}}, open(args.json, "w"), indent=2)

def exception_files(out, n, crowded=False, this_one=False):
    """`n` valid PolicyExceptions for other objects (spread over 200
    namespaces and five policies, or all in `shop` for `pod_security/privileged`), plus
    the one that excepts the benchmark's Pod, as one YAML file in `out`."""
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30 * 86400))
    policies = ["pod_security/privileged", "pod_security/host_path_volumes", "image_tag", "pod_security/capabilities_baseline", "pod_security/host_namespaces"]
    docs = []
    for i in range(n):
        ns, policy = ("shop", "pod_security/privileged") if crowded else (f"team-{i % 200}", policies[i % len(policies)])
        docs.append({"apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
                     "metadata": {"name": f"x-{i}", "namespace": ns},
                     "spec": {"policies": [policy], "match": {"kinds": ["Pod", "Deployment"], "names": [f"svc-{i}-*"]},
                              "owner": "team", "reason": "benchmark", "expires": expires}})
    if this_one:
        docs.append({"apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
                     "metadata": {"name": "web", "namespace": "shop"},
                     "spec": {"policies": ["pod_security/privileged"], "match": {"kinds": ["Pod"], "names": ["web-*"]},
                              "owner": "shop-team", "reason": "benchmark", "expires": expires}})
    os.makedirs(out, exist_ok=True)
    # JSON is YAML: one document per line, `---` between.
    with open(os.path.join(out, "exceptions.yaml"), "w") as f:
        f.write("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    return len(docs)

def exceptions_run(args, certs):
    """A privileged Pod (denied by `pod_security`, so the exception lookup
    runs) with no exception loaded, with 1,000 for other objects (elsewhere,
    and all in its namespace for its policy), and with 1,000 others plus the
    one that excepts it: the same build, alternated; medians and ratios."""
    work = tempfile.mkdtemp()
    review = json.load(open(args.body))
    for c in review["request"]["object"]["spec"]["containers"]:
        c.setdefault("securityContext", {})["privileged"] = True
    body = os.path.join(work, "privileged-pod-review.json")
    json.dump(review, open(body, "w"))
    args.body = body
    dirs = {}
    for name, crowded, this in [("1000 elsewhere", False, False), ("1000 same ns+policy", True, False),
                                ("1000 elsewhere + this one", False, True)]:
        d = os.path.join(work, name.replace(" ", "_").replace("+", "plus"))
        dirs[name] = (d, exception_files(d, 1000, crowded, this))
    setups = {"no exceptions": []}
    setups.update({name: ["--exceptions", d] for name, (d, _) in dirs.items()})
    procs = start_setups(args, certs, setups)
    for name, (d, n) in dirs.items():
        admin = procs[name][2]
        end = time.time() + 20
        while metric(admin, 'regent_exceptions{status="valid"}') != n and time.time() < end:
            time.sleep(0.05)
        if metric(admin, 'regent_exceptions{status="valid"}') != n:
            raise SystemExit(f"{name}: the {n} exceptions never loaded")
    try:
        results = alternate(args, procs)
        rss = {n: peak_rss_mib(p.pid) for n, (p, _, _) in procs.items()}
        excepted = metric(procs["1000 elsewhere + this one"][2], 'regent_exceptions_applied_total{policy="pod_security"}')
    finally:
        for proc, _, _ in procs.values():
            proc.terminate(); proc.wait()
        shutil.rmtree(work)
    summary = setups_table(f"privileged 8 KB Pod; policy exceptions loaded; {args.rounds} alternated rounds of {args.duration}s, medians",
                           setups, results, rss)
    print()
    base = "no exceptions"
    out = {}
    for name in dirs:
        rps = summary[(name, 8)]["rps"] / summary[(base, 8)]["rps"]
        p99 = summary[(name, 1)]["p99"] / summary[(base, 1)]["p99"]
        cpu = summary[(name, 8)]["cpu_us"] - summary[(base, 8)]["cpu_us"]
        out[name] = {"rps_ratio_8": rps, "p99_ratio_1": p99, "cpu_us_delta_8": cpu}
        print(f"{name} ÷ none: req/s at 8 connections {rps:.3f}×, p99 at 1 connection {p99:.3f}×, "
              f"server CPU {cpu:+.1f} µs/req (target for none matching: within 5 %)")
    print(f"requests excepted by shop/web in the last setup: {excepted:.0f}")
    if args.json:
        json.dump({"ratios": out, "rows": {f"{n}/{c}": v for (n, c), v in summary.items()}}, open(args.json, "w"), indent=2)

def decision_log_run(args, certs):
    """Admission with the decision log off, off again (a second identical
    server: what the method reads when nothing differs), on with a file
    sink logging every decision, and on with an HTTP sink nobody listens on
    (every batch fails, records are dropped): the same build, alternated.
    Prints the medians, then each setup against the log off, round by round
    (`paired.py`): req/s, pooled p99 and server CPU per request, each with a
    95 % interval, and whether "within 5 %" is shown."""
    work = tempfile.mkdtemp()
    dead = free_port()  # nothing listens here
    setups = {
        "log off": [],
        "log off (again)": [],
        "file sink, all decisions": ["--decision-log", f"file:{work}/d.log", "--decision-log-allowed", "all"],
        "unreachable http sink, all": ["--decision-log", f"http://127.0.0.1:{dead}/logs", "--decision-log-allowed", "all",
                                        "--decision-log-attempts", "1", "--decision-log-timeout", "1s"],
    }
    # Fresh processes every `block` rounds: what one process happens to be
    # (its memory layout, where its threads landed) is averaged out too.
    block = 8
    results = {(n, c): [] for n in setups for c in (1, 8)}
    rss = {n: 0.0 for n in setups}
    sent = lost = unsent = 0.0
    try:
        for start_round in range(0, args.rounds, block):
            for n in setups:
                if setups[n] and setups[n][1].startswith("file:"):
                    setups[n][1] = f"file:{work}/d{start_round}.log"
            procs = start_setups(args, certs, setups)
            try:
                part = alternate(args, procs, rounds=min(block, args.rounds - start_round), first_round=start_round)
                for k, v in part.items():
                    results[k] += v
                for n, (p, _, _) in procs.items():
                    rss[n] = max(rss[n], peak_rss_mib(p.pid))
                file_admin, dead_admin = procs["file sink, all decisions"][2], procs["unreachable http sink, all"][2]
                sent += metric(file_admin, 'regent_decision_log_records_total{result="sent",sink="file"}')
                lost += sum(metric(dead_admin, f'regent_decision_log_records_total{{result="{r}",sink="http"}}')
                            for r in ("dropped", "failed"))
                unsent += sum(metric(file_admin, f'regent_decision_log_records_total{{result="{r}",sink="{s}"}}')
                              for r, s in (("dropped", "file"), ("dropped", "pending"), ("failed", "file")))
            finally:
                for proc, _, _ in procs.values():
                    proc.terminate(); proc.wait()
    finally:
        shutil.rmtree(work)
    setups_table(f"decision log; 8 KB Pod; {args.rounds} alternated rounds of {args.duration}s, medians",
                 setups, results, rss)
    print()
    print(f"÷ log off, round by round: ratio [95 % interval: paired bootstrap over {args.rounds} rounds "
          f"in blocks of {block} on fresh processes]; p99 from the latency histograms pooled over the rounds")
    print("| setup | req/s at 1 | req/s at 8 | p99 at 1 | p99 at 8 | server CPU per request at 8 |")
    print("|---|---|---|---|---|---|")
    out = {}
    for name in list(setups)[1:]:
        c = {conns: paired.compare(results[(name, conns)], results[("log off", conns)], block=block) for conns in (1, 8)}
        out[name] = {f"{k}_{conns}": {"ratio": c[conns][k]["ratio"], "ci": c[conns][k]["ci"]}
                     for conns in (1, 8) for k in ("rps", "tail", "cpu")}
        print(f"| {name} | {paired.fmt(c[1]['rps'])} | {paired.fmt(c[8]['rps'])} | {paired.fmt(c[1]['tail'])} "
              f"| {paired.fmt(c[8]['tail'])} | {paired.fmt(c[8]['cpu'])} |")
    print()
    # "Within 5 %": no worse than 5 % with 95 % confidence: req/s at least
    # 0.95× and p99 at most 1.05× at the interval's worse end.
    for name, o in out.items():
        misses = [f"{k} ({o[k]['ci'][0]:.3f})" for k in ("rps_1", "rps_8") if o[k]["ci"][0] < 0.95]
        misses += [f"{k} ({o[k]['ci'][1]:.3f})" for k in ("tail_1", "tail_8") if o[k]["ci"][1] > 1.05]
        o["within_5_percent"] = not misses
        verdict = "shown" if not misses else "not shown: " + ", ".join(misses)
        print(f"{name}: within 5 % of the log off (req/s ≥ 0.95×, p99 ≤ 1.05× at the 95 % interval's end): {verdict}")
        # The ratios themselves, without their intervals: what one run of
        # this length reads (weaker: the control misses it by noise alone
        # in some runs).
        outside = [f"{k} ({o[k]['ratio']:.3f})" for k in ("rps_1", "rps_8") if o[k]["ratio"] < 0.95]
        outside += [f"{k} ({o[k]['ratio']:.3f})" for k in ("tail_1", "tail_8") if o[k]["ratio"] > 1.05]
        o["ratios_within_5_percent"] = not outside
        print(f"{name}: ratios within 5 %: " + ("yes" if not outside else "no: " + ", ".join(outside)))
    print(f"records written by the file sink: {sent:.0f} (dropped or failed: {unsent:.0f}); "
          f"lost to the unreachable sink (dropped + failed): {lost:.0f}")
    if args.json:
        json.dump({"ratios": out, "records": {"file_sent": sent, "file_unsent": unsent, "dead_lost": lost}},
                  open(args.json, "w"), indent=2)

def library_bundle(library, out):
    """Every template of a gatekeeper-library checkout with the first (sorted)
    sample Constraint of its directory, as one bundle directory. Returns the
    number of templates."""
    n = 0
    root = os.path.join(library, "library")
    for dirpath, _, files in sorted(os.walk(root)):
        if "template.yaml" not in files:
            continue
        rel = os.path.relpath(dirpath, root).replace(os.sep, "_")
        samples = os.path.join(dirpath, "samples")
        constraints = sorted(os.path.join(r, f) for r, _, fs in os.walk(samples) for f in fs if f == "constraint.yaml") \
            if os.path.isdir(samples) else []
        shutil.copy(os.path.join(dirpath, "template.yaml"), os.path.join(out, f"{rel}-template.yaml"))
        if constraints:
            shutil.copy(constraints[0], os.path.join(out, f"{rel}-constraint.yaml"))
        n += 1
    return n

def library_run(args, certs):
    """The default bundle alone, and the default bundle with every template
    of the gatekeeper-library (one sample Constraint each): the same build,
    alternated, `rounds` times; medians and ratios."""
    lib = tempfile.mkdtemp()
    n = library_bundle(args.gatekeeper_library, lib)
    commit = subprocess.run(["git", "-C", args.gatekeeper_library, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or "?"
    setups = {"default bundle": [], f"default + library ({n} templates)": ["--policies", lib, "--with-default-bundle"]}
    procs = start_setups(args, certs, setups)
    wait_ready(procs)
    constraints = metric(procs[list(setups)[1]][2], 'regent_bundle_policies{kind="constraint"}')
    try:
        results = alternate(args, procs)
        rss = {n: peak_rss_mib(p.pid) for n, (p, _, _) in procs.items()}
    finally:
        for proc, _, _ in procs.values():
            proc.terminate(); proc.wait()
        shutil.rmtree(lib)
    setups_table(f"gatekeeper-library {commit}: {n} templates, {constraints:.0f} Constraints loaded; "
                 f"{args.rounds} alternated rounds of {args.duration}s, medians", setups, results, rss)

def wait_ready(procs, within=60):
    end = time.time() + within
    for name, (_, _, admin) in procs.items():
        while time.time() < end:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)

def mutators_run(args, certs):
    """The mutating webhook (`/mutate`) with the default bundle's native
    mutating policies, with the same defaults as Gatekeeper mutators
    (tests/fixtures/mutators/defaults.yaml) alone, and with both: the same
    build, alternated, `rounds` times; medians."""
    fixture = os.path.join(ROOT, "tests/fixtures/mutators")
    n = sum(open(os.path.join(fixture, f)).read().count("\nkind: ") + 0 for f in os.listdir(fixture) if f.endswith(".yaml"))
    setups = {"native mutating policies (default bundle)": [],
              f"{n} Gatekeeper mutators alone": ["--policies", fixture],
              f"default bundle + {n} Gatekeeper mutators": ["--policies", fixture, "--with-default-bundle"]}
    procs = start_setups(args, certs, setups)
    wait_ready(procs)
    try:
        results = alternate(args, procs, "/mutate")
        rss = {name: peak_rss_mib(p.pid) for name, (p, _, _) in procs.items()}
    finally:
        for proc, _, _ in procs.values():
            proc.terminate(); proc.wait()
    summary = setups_table(f"/mutate, {args.rounds} alternated rounds of {args.duration}s, medians", setups, results, rss)
    if args.json:
        json.dump({"rows": {f"{n}/{c}": v for (n, c), v in summary.items()}}, open(args.json, "w"), indent=2)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--body", default=os.path.join(ROOT, "benches/fixtures/pod-review.json"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--regent", default=REGENT, help="the regent binary to measure (e.g. an older build)")
    ap.add_argument("--echo", default=ECHO,
                    help="the regent-echo binary (e.g. one built the same way as --regent)")
    ap.add_argument("--candidate", action="store_true",
                    help="instead of regent vs echo: regent without and with a candidate bundle (shadow evaluation)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternated rounds (every mode; each figure is the median over them)")
    ap.add_argument("--gatekeeper-library", metavar="DIR",
                    help="instead of regent vs echo: the default bundle alone and with every template of this "
                         "gatekeeper-library checkout (one sample Constraint each)")
    ap.add_argument("--decision-log", action="store_true",
                    help="instead of regent vs echo: the decision log off (twice: the second is the method's "
                         "control), on with a file sink (all decisions), and on with an unreachable HTTP sink; "
                         "ratios with 95 %% intervals (use --rounds 32 --duration 3)")
    ap.add_argument("--exceptions", action="store_true",
                    help="instead of regent vs echo: a privileged Pod with no policy exception, 1,000 for other "
                         "objects, and 1,000 plus the one that excepts it")
    ap.add_argument("--mutators", action="store_true",
                    help="instead of regent vs echo: /mutate with the native mutating policies, the same defaults "
                         "as Gatekeeper mutators, and both")
    args = ap.parse_args()
    regent_bin = args.regent
    global LUA_FILE
    work = tempfile.mkdtemp()
    LUA_FILE = os.path.join(work, "post.lua"); open(LUA_FILE, "w").write(LUA)
    certs = os.path.join(work, "certs")
    subprocess.run([REGENT, "cert", "--out", certs, "--dns", "localhost,127.0.0.1"], check=True, capture_output=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
          f"wrk on the same cores; body {os.path.getsize(args.body)} bytes; {args.duration}s per run")
    if args.candidate:
        candidate_run(args, certs)
        shutil.rmtree(work)
        return
    if args.decision_log:
        decision_log_run(args, certs)
        shutil.rmtree(work)
        return
    if args.exceptions:
        exceptions_run(args, certs)
        shutil.rmtree(work)
        return
    if args.mutators:
        mutators_run(args, certs)
        shutil.rmtree(work)
        return
    if args.gatekeeper_library:
        library_run(args, certs)
        shutil.rmtree(work)
        return
    eport, e2port, rport, radmin = free_port(), free_port(), free_port(), free_port()
    tls = ["--tls-cert", f"{certs}/tls.crt", "--tls-key", f"{certs}/tls.key"]
    echo = start([args.echo, "--addr", f"127.0.0.1:{eport}"] + tls, eport)
    echo2 = start([args.echo, "--engine-parse", "--addr", f"127.0.0.1:{e2port}"] + tls, e2port)
    regent = start([regent_bin, "serve", "--addr", f"127.0.0.1:{rport}", "--admin-addr", f"127.0.0.1:{radmin}"] + tls, rport)
    time.sleep(0.3)
    servers = [("echo", echo, eport), ("echo (engine parse)", echo2, e2port), ("regent", regent, rport)]
    configs = [(1, False), (8, False), (64, False), (8, True)]
    runs = {}  # (conns, close, server) -> one result per round
    try:
        # Rounds alternate the servers at each connection count, so that the
        # machine's drift (this one's speed moves by ±20 % within minutes)
        # falls on all of them; the table shows each figure's median.
        for _ in range(args.rounds):
            for conns, close in configs:
                for name, proc, port in servers:
                    c0 = cpu_seconds(proc.pid)
                    r = wrk(f"https://127.0.0.1:{port}/validate", conns, close, args.duration, args.body)
                    r["cpu_us"] = (cpu_seconds(proc.pid) - c0) * 1e6 / max(r["total"], 1)
                    r["rss"] = peak_rss_mib(proc.pid)
                    runs.setdefault((conns, close, name), []).append(r)
    finally:
        for _, proc, _ in servers:
            proc.terminate()
        for _, proc, _ in servers:
            proc.wait()
    rows = []
    for conns, close in configs:
        group = {}
        for name, _, _ in servers:
            rs = runs[(conns, close, name)]
            group[name] = {k: median([r[k] for r in rs]) for k in ("rps", "p50", "p99", "cpu_us")}
            group[name]["rss"] = max(r["rss"] for r in rs)
            group[name]["errors"] = sum(r["errors"] for r in rs)
            group[name]["socket"] = "; ".join(r["socket"] for r in rs if r["socket"])
            group[name]["rounds"] = [r["rps"] for r in rs]
        rows.append((conns, close, group))
    print()
    print("load generator: wrk. echo = the lightest correct webhook (same TLS stack and accept loop, body parsed "
          "into serde_json::Value, uid echoed); echo (engine parse) = the same, parsing as regent does. "
          f"{args.rounds} alternated round(s) of {args.duration}s per server and connection count; medians.")
    print("| connections | server | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB | req/s ÷ echo | p99 ÷ echo |")
    print("|---|---|---|---|---|---|---|---|---|")
    for conns, close, group in rows:
        label = f"{conns}{' (no keep-alive)' if close else ''}"
        e = group["echo"]
        for name, x in group.items():
            ratio = f"{x['rps'] / e['rps']:.2f}×" if name != "echo" else ""
            p99r = f"{x['p99'] / e['p99']:.2f}×" if name != "echo" else ""
            print(f"| {label} | {name} | {x['rps']:,.0f} | {x['p50']:.2f} | {x['p99']:.2f} | {x['cpu_us']:.0f} | {x['rss']:.1f} | {ratio} | {p99r} |")
        for name, x in group.items():
            if x["errors"] or x["socket"]:
                print(f"  ! {name}: {x['errors']} non-2xx, socket errors: {x['socket']}")
    by = {(c, k): g for c, k, g in rows}
    r8, r1 = by[(8, False)], by[(1, False)]
    print()
    if args.rounds > 1:
        per_round = ", ".join(f"{r / e:.2f}×" for r, e in zip(r8["regent"]["rounds"], r8["echo"]["rounds"]))
        print(f"req/s at 8 connections, regent ÷ echo in each round: {per_round}")
    print(f"regent ÷ echo, req/s at 8 connections: {r8['regent']['rps'] / r8['echo']['rps']:.2f}× (target ≥ 0.5×); "
          f"p99 at 1 connection: {r1['regent']['p99'] / r1['echo']['p99']:.2f}× (target ≤ 2×); "
          f"regent peak RSS {max(g['regent']['rss'] for _, _, g in rows):.1f} MiB (target ≤ 32)")
    ready, first, second, observed = startup_and_reload(certs, regent_bin)
    print()
    print(f"ready after start (default bundle, spawn to /readyz 200): {ready * 1e3:.0f} ms")
    print(f"200-policy bundle: first compile+warm-up {first * 1e3:.0f} ms; after a change: compile+warm-up+swap {second * 1e3:.0f} ms "
          f"(file written to new bundle live, debounce included: {observed * 1e3:.0f} ms)")
    if args.json:
        json.dump({"rows": [{"connections": c, "no_keepalive": k, **{f"{n}_{key}": v for n, d in p.items() for key, v in d.items()}}
                            for c, k, p in rows], "ready_ms": ready * 1e3, "reload_200_ms": second * 1e3}, open(args.json, "w"), indent=2)
    shutil.rmtree(work)

if __name__ == "__main__":
    main()
