"""Every metric the Grafana dashboard (deploy/grafana/dilaserve.json) queries is one the router or
a worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest

from orchestrator.service.bookkeeping import RouterBook
from orchestrator.service.metrics import RouterMetrics
from orchestrator.service.replica_pool import ReplicaEndpoint, ReplicaSnapshot
from orchestrator.types import ReplicaConfig, ReplicaState
from tests.service.helpers import make_worker
from worker.service.metrics import WorkerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dilaserve.json"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _exported() -> set[str]:
    book = RouterBook({"standard": 0.9})
    book.arrived("standard")
    endpoint = ReplicaEndpoint(0, "h:1", ReplicaConfig("cpu", 1, 32, 0.5, 0.9), 0,
                               ReplicaState.ACTIVE)
    router = RouterMetrics(book.snapshot, lambda: [ReplicaSnapshot(endpoint, 0, None, None,
                                                                   True, "")])
    router.observe_e2e("standard", 0.1)
    router.observe_decision(0.001, True)
    worker = make_worker()
    worker.loop.start()  # its gauges are read from a snapshot the loop thread takes
    try:
        metrics = WorkerMetrics(worker.loop, worker.replica)
        text = (generate_latest(router.registry).decode()
                + generate_latest(metrics.registry).decode())
    finally:
        worker.loop.stop()
        worker.loop.join(10)
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_every_metric_the_dashboard_queries_is_exported():
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"dilaserve_[a-z0-9_]+", target["expr"])}
    exported = _exported()
    missing = sorted(q for q in queried if q not in exported
                     and not any(q.removesuffix(s) + s in exported for s in SUFFIXES))
    assert queried and missing == []
