"""A policy as a few lines a person can check at a glance (`dilaserve policy validate`)."""

from __future__ import annotations

from dilaserve.policy.cluster import ClusterSettings, ReconfigureSettings
from dilaserve.policy.types import Policy, SloClass
from dilaserve.profiles.quality import QualityProfile

EXAMPLE_TOKENS = 32  # the canvas a per-token deadline is shown at


def policy_lines(policy: Policy, quality: QualityProfile | None, quality_note: str) -> list[str]:
    """Classes and worker settings; floors resolved on `quality` when there is one."""
    rows = [("class", "deadline", f"at {EXAMPLE_TOKENS} tok", "quality floor", "prio", "target")]
    for c in policy.classes:
        rows.append(_class_row(c, quality, policy.worker.block_size))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"classes (default: {policy.default_class}; floors: {quality_note}):"]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    w = policy.worker
    s = w.scheduler
    lines.append(
        f"worker: threshold range [{w.threshold_range.min:g}, {w.threshold_range.max:g}], block "
        f"{w.block_size}, cache {w.cache_mode}, max_new_tokens {w.max_new_tokens}, ordering "
        f"{s.ordering}, load control {s.load_control}, admission {'on' if s.admission else 'off'}"
    )
    return lines


def _class_row(c: SloClass, quality: QualityProfile | None, block: int) -> tuple[str, ...]:
    if c.has_deadline:
        parts = []
        if c.deadline_ms is not None:
            parts.append(f"{c.deadline_ms:g} ms")
        if c.deadline_per_token_ms is not None:
            parts.append(f"{c.deadline_per_token_ms:g} ms/tok")
        deadline = " + ".join(parts)
        example = f"{c.deadline_s(EXAMPLE_TOKENS) * 1e3:g} ms"
    else:
        deadline, example = "none", "-"
    if c.best_effort:
        deadline += " (best-effort)"
    return (c.name, deadline, example, _floor(c, quality, block), str(c.priority),
            f"{c.target_attainment:g}")


def _floor(c: SloClass, quality: QualityProfile | None, block: int) -> str:
    parts = []
    if c.min_threshold is not None:
        parts.append(f"tau >= {c.min_threshold:g}")
    if c.max_accuracy_drop is not None:
        parts.append(f"drop <= {c.max_accuracy_drop:g}")
    if not parts:
        return "none (the replica's range)"
    text = ", ".join(parts)
    if c.max_accuracy_drop is not None and quality is not None:
        text += f" -> tau >= {c.floor(quality, block):g}"
    return text


def cluster_lines(c: ClusterSettings) -> list[str]:
    model = c.model or "the shipped tiny-dlm"
    profiles = c.profiles or "MODEL/profiles"
    if c.nodes:
        shape = ", ".join(f"{n.count} x {n.node_type} ({n.gpus_per_node} GPUs)" for n in c.nodes)
    else:
        shape = (f"ask Ray (without GPUs: {c.cpu_slots} CPU replicas x {c.cpu_threads} "
                 f"thread{'s' if c.cpu_threads > 1 else ''})")
    metrics = f"port {c.metrics_port}" if c.metrics_port is not None else "off"
    http = f"port {c.router_http_port}" if c.router_http_port is not None else "off"
    levels = "/".join(f"{t:g}" for t in c.thresholds)
    return [
        f"cluster: model {model}; profiles {profiles}; replicas on {c.device} in {c.dtype}",
        f"  nodes: {shape}; max TP {c.max_tp}; threshold levels {levels}",
        f"  router: {c.router_host}:{c.router_port}, at most {c.router_max_calls} calls at once; "
        f"HTTP API: {http}; router metrics: {metrics}",
        "  " + security_line(c),
        "  " + reconfigure_line(c.reconfigure),
    ]


def security_line(c: ClusterSettings) -> str:
    """Where the secrets are, never what they are."""
    if c.router_tls is None:
        tls = "plaintext"
    else:
        clients = " (clients must present a certificate)" if c.router_tls.client_ca_file else ""
        tls = f"TLS{clients}"
    tokens = ("no tokens" if c.router_tokens is None else
              f"tokens: client from {c.router_tokens.client}, admin from {c.router_tokens.admin}")
    replicas = "mutual TLS" if c.replica_tls is not None else "plaintext"
    return f"security: router {tls}, {tokens}; router <-> replicas {replicas}"


def reconfigure_line(r: ReconfigureSettings) -> str:
    return (
        f"reconfigure: tick every {r.period_s:g} s; re-plan on {r.drift:.0%} rate drift "
        f"sustained {r.sustain_s:g} s over >= {r.min_requests} requests, at most "
        f"every {r.min_interval_s:g} s (rates over {r.window_s:g} s, headroom {r.headroom:.0%}); "
        f"drain timeout {r.drain_timeout_s:g} s; placement timeout {r.placement_timeout_s:g} s; "
        f"at most {r.max_draining_fraction:.0%} of devices draining"
    )
