"""Paired comparisons of alternated load runs (used by load.py).

On a shared 2-core machine a setup's req/s and p99 drift by several per
cent from one run to the next, as much as the effects we measure. Two
things make a comparison hold anyway:

- each round runs every setup, seconds apart, so a setup is compared with
  the baseline *round by round* (the same indices are resampled for both);
- tail latencies come from the runs' latency histograms *pooled* over all
  rounds (wrk's `done` hook writes each run's histogram), not from the
  median of per-run p99s, which a single stall in a short run moves.

Each ratio comes with a 95 % interval from a paired bootstrap over the
rounds (resample the rounds with replacement, recompute the ratio). When
the rounds ran on several sets of server processes (restarted between
blocks of rounds: two identical processes can differ by a few per cent for
as long as they live), the blocks are resampled first and the rounds
within each drawn block next, so the interval includes that spread too.
"""
import math
import random

BIN = math.log(1.005)  # histogram bins 0.5 % wide
RESAMPLES = 1000


def binned(hist):
    """{latency µs: count} -> {bin: count} on the shared logarithmic grid."""
    out = {}
    for us, count in hist.items():
        b = int(math.log(max(us, 1)) / BIN)
        out[b] = out.get(b, 0) + count
    return out


def _pooled_percentile(rows, idx, bins, q):
    """The `q` quantile (0..1) in µs of the rows at `idx` summed."""
    total_by_bin = [sum(col) for col in zip(*(rows[i] for i in idx))]
    need = q * sum(total_by_bin)
    seen = 0
    for b, c in zip(bins, total_by_bin):
        seen += c
        if seen >= need:
            return math.exp((b + 0.5) * BIN)
    return math.exp((bins[-1] + 0.5) * BIN) if bins else float("nan")


def _interval(samples):
    s = sorted(samples)
    return s[int(0.025 * len(s))], s[min(len(s) - 1, int(0.975 * len(s)))]


def compare(runs, base, q=0.99, seed=1, block=None):
    """`runs` and `base`: one dict per round (same order) with `rps`,
    `total`, `cpu_us`, `hist` ({µs: count}) and `round`; `block` rounds ran
    on one set of processes (None: all did). Returns ratios to the base
    with 95 % intervals: req/s (ratio of the rounds' sums), the pooled
    `q` latency, and server CPU per request."""
    n = min(len(runs), len(base))
    runs, base = runs[:n], base[:n]
    hs = [binned(r.get("hist") or {}) for r in runs]
    hb = [binned(r.get("hist") or {}) for r in base]
    bins = sorted(set().union(*hs, *hb))
    rows = [[h.get(b, 0) for b in bins] for h in hs]
    rows_b = [[h.get(b, 0) for b in bins] for h in hb]

    def rps(idx):
        return sum(runs[i]["rps"] for i in idx) / sum(base[i]["rps"] for i in idx)

    def cpu(idx):
        per = lambda rs: sum(rs[i]["cpu_us"] * rs[i]["total"] for i in idx) / max(sum(rs[i]["total"] for i in idx), 1)
        return per(runs) / per(base)

    def tail(idx):
        return _pooled_percentile(rows, idx, bins, q) / _pooled_percentile(rows_b, idx, bins, q)

    everything = list(range(n))
    groups = {}
    for i in everything:
        groups.setdefault(runs[i].get("round", i) // block if block else 0, []).append(i)
    groups = list(groups.values())
    rng = random.Random(seed)

    def draw():
        picked = [rng.choice(groups) for _ in groups]
        return [rng.choice(g) for g in picked for _ in g]

    draws = [draw() for _ in range(RESAMPLES)]
    out = {}
    for key, f in (("rps", rps), ("tail", tail), ("cpu", cpu)):
        out[key] = {"ratio": f(everything), "ci": _interval([f(d) for d in draws])}
    return out


def fmt(r):
    lo, hi = r["ci"]
    return f"{r['ratio']:.3f}× [{lo:.3f}, {hi:.3f}]"
