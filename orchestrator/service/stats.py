"""The cluster as the router reports it: `StatsReply` (the Stats RPC) and `summary` (plain data for
`dilaserve status`). Request counts and attainment are the router's own bookkeeping; queue, rows
and thresholds are sums or ranges over the replicas' last polled Stats; each replica is named."""

from __future__ import annotations

import math

from orchestrator.service.bookkeeping import REFUSED_AT_ARRIVAL, BookSnapshot, Ending
from orchestrator.service.replica_pool import ReplicaSnapshot
from proto import dilaserve_pb2 as pb


def replica_stats(r: ReplicaSnapshot) -> pb.ReplicaStats:
    e, s = r.endpoint, r.stats
    message = pb.ReplicaStats(
        id=e.replica_id, target=e.target, state=e.state.value, node=e.node,
        node_type=e.config.node_type, tp=e.config.tp, block_size=e.config.block_size,
        min_threshold=e.config.threshold_min, max_threshold=e.config.threshold_max,
        in_flight=r.in_flight, healthy=r.healthy, error=r.error,
        machine_scale=1.0,
    )
    if s is not None:
        message.min_threshold, message.max_threshold = s.min_threshold, s.max_threshold
        message.queued, message.running, message.max_rows = s.queued, s.running, s.max_rows
        message.load, message.attainment = s.load, s.attainment
        message.predicted_step_ms = s.predicted_step_ms
        message.machine_scale = s.machine_scale or 1.0  # 0: a worker from before the field
        message.block_size = s.block_size or e.config.block_size
    return message


def cluster_stats(book: BookSnapshot, replicas: list[ReplicaSnapshot],
                  uptime_s: float) -> pb.StatsReply:
    polled = [r.stats for r in replicas if r.stats is not None]
    queued = sum(s.queued for s in polled)
    running = sum(s.running for s in polled)
    max_rows = sum(s.max_rows for s in polled)
    shed = book.total(*REFUSED_AT_ARRIVAL)  # refused by the router at once
    reply = pb.StatsReply(
        model=next((s.model for s in polled if s.model), ""),
        uptime_s=uptime_s,
        queued=queued,
        running=running,
        max_rows=max_rows,
        accepted=book.routed - book.total(Ending.REJECTED),
        rejected=book.total(Ending.REJECTED) + shed,
        finished=book.total(Ending.MET) + book.total(Ending.LATE),
        deadline_met=book.total(Ending.MET),
        expired=book.total(Ending.EXPIRED),
        cancelled=book.total(Ending.CANCELLED),
        failed=book.total(Ending.FAILED),
        attainment=book.attainment,
        classes=[
            pb.ClassStats(name=c.name, ended=c.ended, met=c.met, attainment=c.attainment,
                          target_attainment=c.target_attainment)
            for c in book.classes
        ],
        predicted_step_ms=max((s.predicted_step_ms for s in polled), default=0.0),
        predicted_drain_ms=max((s.predicted_drain_ms for s in polled), default=0.0),
        load=(queued + running) / max_rows if max_rows else 0.0,
        step_cost_error=math.nan,
        median_step_ms=math.nan,
        steps=sum(s.steps for s in polled),
        backlog_steps=sum(s.backlog_steps for s in polled),
        replicas=[replica_stats(r) for r in replicas],
        shed=shed,
        restarts=book.restarts,
    )
    if polled:
        reply.min_threshold = min(s.min_threshold for s in polled)
        reply.max_threshold = max(s.max_threshold for s in polled)
    return reply


def summary(book: BookSnapshot, replicas: list[ReplicaSnapshot], uptime_s: float) -> dict:
    return {
        "uptime_s": uptime_s,
        "requests": book.requests,
        "attainment": book.attainment,
        "shed": book.total(*REFUSED_AT_ARRIVAL),
        "overloaded": book.total(Ending.OVERLOADED),
        "rejected": book.total(Ending.REJECTED),
        "restarts": book.restarts,
        "invalid": book.invalid + book.total(Ending.INVALID),
        "prompt_token_mismatches": book.token_mismatches,
        "classes": {
            c.name: {
                "requests": c.requests,
                "ended": c.ended,
                "met": c.met,
                "attainment": c.attainment,
                "target_attainment": c.target_attainment,
                **{e.value: c.count(e) for e in Ending if e not in (Ending.MET,)},
            }
            for c in book.classes
        },
        "replicas": [_replica_summary(r) for r in replicas],
    }


def _replica_summary(r: ReplicaSnapshot) -> dict:
    m = replica_stats(r)
    return {
        "id": m.id, "target": m.target, "state": m.state, "node": m.node,
        "node_type": m.node_type, "tp": m.tp, "block_size": m.block_size,
        "threshold_range": (m.min_threshold, m.max_threshold),
        "queued": m.queued, "running": m.running, "max_rows": m.max_rows, "load": m.load,
        "in_flight": m.in_flight, "healthy": m.healthy, "error": m.error,
        "attainment": m.attainment, "predicted_step_ms": m.predicted_step_ms,
        "machine_scale": m.machine_scale,
        "polled": r.stats is not None,
    }
