"""What `dilaserve bench-chaos` reads and prints besides the calls themselves: the router's
refusal-decision histogram, the longest run of a class shed after a kill, and the summary table."""

from __future__ import annotations

from dilaserve.benches.chaos_load import Call


def decision_buckets(metrics_url: str) -> dict[float, float]:
    """The router's refusal-decision histogram: cumulative count per bucket upper bound (s)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(metrics_url, timeout=10).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name != "dilaserve_router_decision_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("decision") == "refused":
                out[float(sample.labels["le"])] = sample.value
    return out


def bucket_percentiles(before: dict[float, float],
                       after: dict[float, float]) -> tuple[float, float] | None:
    """p50 and p99 (ms, as the upper bound of the bucket each falls in) of the observations
    between two readings."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None

    def at(q: float) -> float:
        return 1e3 * next(b for b, c in zip(bounds, counts) if c >= q * counts[-1])

    return at(0.5), at(0.99)


def longest_shed(calls: list[Call], from_s: float, window_s: float = 0.5) -> str:
    """The longest run of windows after `from_s` in which some class had every request refused
    (refusals counted as RESOURCE_EXHAUSTED at arrival)."""
    worst = (0.0, "")
    for slo in sorted({c.slo_class for c in calls}):
        windows: dict[int, list[Call]] = {}
        for c in calls:
            if c.slo_class == slo and c.sent_s >= from_s:
                windows.setdefault(int((c.sent_s - from_s) / window_s), []).append(c)
        run = longest = 0
        for w in range(max(windows, default=-1) + 1):
            group = windows.get(w, [])
            if group and all(not c.admitted for c in group):
                run += 1
                longest = max(longest, run)
            elif group:
                run = 0
        if longest * window_s > worst[0]:
            worst = (longest * window_s, slo)
    if not worst[1]:
        return "after the kill no class had all its requests refused in any 0.5 s window"
    return (f"after the kill class {worst[1]} had all its requests refused for "
            f"{worst[0]:.1f} s in a row (0.5 s windows)")


def summary_table(rows: list[dict]) -> str:
    lines = [f"{'scenario':<18} {'sent':>6} {'ok':>6} {'refused':>8} {'expired':>8} "
             f"{'invalid':>8} {'other':>6} {'lost':>5} {'admitted met':>13} {'all met':>8} "
             f"{'router':>7} {'best-effort met':>16} "
             f"{'refusal p50/p99 ms: client':>27} {'router':>13}"]
    for r in rows:
        s = r["statuses"]
        other = r["sent"] - sum(s.get(k, 0) for k in ("ok", "RESOURCE_EXHAUSTED",
                                                      "DEADLINE_EXCEEDED", "INVALID_ARGUMENT",
                                                      "lost"))
        att = "-" if r["attainment_admitted"] is None else f"{r['attainment_admitted']:.1%}"
        client = "-" if r["client_attainment"] is None else f"{r['client_attainment']:.1%}"
        router = "-" if r["router_attainment"] is None else f"{r['router_attainment']:.1%}"
        best_effort = (f"{r['best_effort_met']} / {r['best_effort_admitted']}"
                       if r["best_effort_admitted"] else "-")
        p50, p99 = r["refusal_p50_ms"], r["refusal_p99_ms"]
        refusal = "-" if p50 is None else f"{p50:.1f} / {p99:.1f}"
        at_router = r["router_refusal_ms"]
        at_router = "-" if at_router is None else f"{at_router[0]:g} / {at_router[1]:g}"
        lines.append(f"{r['scenario']:<18} {r['sent']:>6} {s.get('ok', 0):>6} "
                     f"{s.get('RESOURCE_EXHAUSTED', 0):>8} {s.get('DEADLINE_EXCEEDED', 0):>8} "
                     f"{s.get('INVALID_ARGUMENT', 0):>8} {other:>6} {r['lost']:>5} {att:>13} "
                     f"{client:>8} {router:>7} {best_effort:>16} {refusal:>27} "
                     f"{at_router:>13}")
        for note in r["notes"]:
            lines.append(f"{'':<18} {note}")
    return "\n".join(lines)
