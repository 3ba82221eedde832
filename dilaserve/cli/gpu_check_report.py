"""`dilaserve gpu-check`'s summary for people: one section per phase, from the summary JSON."""

from __future__ import annotations

from dilaserve.cli.tables import num, pct, table

MIB = 1 << 20


def _ms(value: float | None) -> str:
    return num(value, 2)


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    scale, unit = next((s, u) for s, u in ((1e9, "GB"), (1e6, "MB"), (1.0, "kB"))
                       if value >= s or u == "kB")
    return f"{value / (scale if unit != 'kB' else 1e3):,.2f} {unit}"


def report(summary: dict) -> str:
    d = summary["device"]
    lines = [f"gpu-check: {summary['shape']} shape, {summary['dtype']}, on {d['name']}"
             + (f" (driver {d['driver']})" if d["driver"] else "")
             + f"; torch {d['torch']}" + (f", CUDA {d['cuda']}" if d["cuda"] else "")
             + (f", triton {d['triton']}" if d["triton"] else "")]
    for name, phase in summary["phases"].items():
        status = phase["status"]
        took = f" ({phase['seconds']:.1f} s)" if "seconds" in phase else ""
        if status != "ok":
            lines += ["", f"{name}: {status}{took}: {phase.get('why', '')}"]
            continue
        lines += ["", f"{name}: ok{took}"]
        lines += SECTIONS[name](phase, summary)
    head = summary["batch1_reuse_vs_bandwidth"]
    if head is not None:
        versus = ("no bandwidth known" if head["bound_ms"] is None else
                  f"{head['times_bound']:.2f}x the bound of {head['bound_ms']:.2f} ms")
        lines += ["", f"batch-1 reuse step ({head['cache_mode']} cache, prompt {head['prompt']}):"
                      f" {head['time_ms']:.2f} ms, {versus} (weight bytes / bandwidth)"]
    verdict = "ok" if summary["ok"] else "FAILED"
    lines += ["", f"{verdict} in {summary['seconds']:.0f} s (budget {summary['budget_s']:g} s); "
                  f"summary: {summary['written'][-1]}"]
    return "\n".join(lines)


def _build(p: dict, summary: dict) -> list[str]:
    peak = p["device_peak_over_weights"]
    device_peak = "" if peak is None else f"device peak {peak:.2f}x the weights; "
    return [f"  {p['parameters']:,} parameters, {_bytes(p['weight_bytes'])} of weights "
            f"made on {summary['device']['device']} in {p['build_seconds']:.2f} s; {device_peak}"
            f"host peak grew {p['host_peak_growth_bytes'] / MIB:,.0f} MiB",
            f"  {p['layers']} layers, hidden {p['hidden']:,}, vocab {p['vocab']:,}; tokenizer "
            f"{p['tokenizer_vocab']:,} ids, mask {p['mask_id']}, EOS {p['eos_id']}"]


def _steps(p: dict, summary: dict) -> list[str]:
    columns = [k for k in p["table"][0] if k.endswith("_ms")]
    header = ["batch", "prompt", *(c.removesuffix("_ms").replace("_", " ") for c in columns)]
    rows = [[str(r["batch"]), str(r["prompt"]), *(_ms(r.get(c)) for c in columns)]
            for r in p["table"]]
    lines = ["  step times, ms (median; none = a full forward without cache):",
             *table(header, rows, "  ")]
    for mode, error in p["heldout_error"].items():
        coef = ", ".join(f"{c:.3g}" for c in p["profiles"][mode])
        lines.append(f"  {mode}: fit error {pct(p['fit_error'][mode])}, held-out "
                     f"{pct(error)}; coef [{coef}]")
    lines += [f"  profile: {path}" for path in summary["written"] if "step_cost." in path]
    bound = p["bandwidth"]
    source = summary["device"]["bandwidth_source"]
    tbs = summary["device"]["bandwidth_tbs"]
    lines.append(f"  batch-1 reuse step vs weight bytes / bandwidth "
                 f"({'unknown' if tbs is None else f'{tbs:g} TB/s'}: {source}):")
    header = ["cache", "prompt", "step ms", "bound ms", "x bound", "+KV bound ms", "eff. TB/s"]
    rows = [[r["cache_mode"], str(r["prompt"]), _ms(r["time_ms"]), _ms(r["bound_ms"]),
             num(r["times_bound"], 2), _ms(r["bound_with_kv_ms"]), num(r["achieved_tbs"], 3)]
            for r in bound]
    return lines + table(header, rows, "  ")


def _kernels(p: dict, summary: dict) -> list[str]:
    fused = "triton" if p["triton"] else "planned from its tiles: triton does not run here"
    lines = [f"  masked LM head, torch vs fused ({fused}):"]
    header = ["batch", "torch MiB", "fused MiB", "torch ms", "fused ms", "tokens agree"]
    rows = [[str(r["batch"]), num(r["torch_bytes"] / MIB, 2), num(r["fused_bytes"] / MIB, 2),
             _ms(r["torch_ms"]), _ms(r["fused_ms"]), num(r.get("token_agreement"), 4)]
            for r in p["head"]]
    lines += table(header, rows, "  ")
    lines.append("  block attention over cached K/V, torch vs triton:")
    header = ["keys", "batch", "torch MiB", "fused MiB", "torch ms", "fused ms", "max diff"]
    rows = [[str(r["canvas"]), str(r["batch"]), num(r["torch_bytes"] / MIB, 2),
             num(r["fused_bytes"] / MIB, 2) if "fused_bytes" in r else "-",
             _ms(r["torch_ms"]), _ms(r.get("fused_ms")),
             f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"] for r in p["attention"]]
    return lines + table(header, rows, "  ")


def _serve(p: dict, summary: dict) -> list[str]:
    stats = p["worker_stats"]
    lines = [f"  {len(p['requests'])} requests through the worker's gRPC service on "
             f"{p['device']} ({p['dtype']}), health {p['health']}; {stats['steps']} steps, median "
             f"{_ms(stats['median_step_ms'])} ms, step-cost error {pct(stats['step_cost_error'])}"]
    header = ["prompt tokens", "new tokens", "finish", "forwards", "e2e ms", "text"]
    rows = [[str(r["prompt_tokens"]), str(r["tokens"]), r["finish"], str(r["forwards"]),
             num(r["e2e_ms"], 0), repr(r["text"][:40])] for r in p["requests"]]
    return lines + table(header, rows, "  ")


SECTIONS = {"build": _build, "steps": _steps, "kernels": _kernels, "serve": _serve}
