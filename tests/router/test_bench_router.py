"""`dilaserve bench-router` end to end at a tiny size (processes, router, null engine), and its
goal evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dilaserve.cli.bench_router import evaluate_goals


@pytest.mark.slow
def test_bench_router_runs_both_ways_and_reports_the_goals(tmp_path: Path):
    out = tmp_path / "r.json"
    done = subprocess.run(
        [sys.executable, "-m", "dilaserve.cli.main", "bench-router", "--requests", "40",
         "--concurrency", "4", "--latency-requests", "10", "--open-requests", "20",
         "--open-rate", "50", "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "throughput through the router" in done.stdout
    assert "added p99 at 1 in flight" in done.stdout
    report = json.loads(out.read_text())
    for kind, count in (("concurrent", 40), ("sequential", 10), ("open", 20)):
        for way in ("direct", "router"):
            assert report[kind][way]["finished"] == count and not report[kind][way]["errors"]
    assert report["open_rate"] == 50


def _way(throughput: float, p99_ms: float) -> dict:
    return {"throughput": throughput, "p99_ms": p99_ms, "errors": {}}


def test_goals_are_judged_on_the_measured_numbers():
    report = {
        "concurrency": 16, "open_rate": 100.0,
        "concurrent": {"direct": _way(1000, 20), "router": _way(590, 30)},
        "sequential": {"direct": _way(900, 1.0), "router": _way(500, 2.9)},
        "open": {"direct": _way(100, 2.0), "router": _way(100, 3.5)},
    }
    verdicts = dict(evaluate_goals(report))
    assert verdicts["throughput through the router 0.59x direct at 16 in flight (goal >= 0.6)"] \
        is False
    assert verdicts["added p99 at 1 in flight: 1.90 ms (goal <= 2 ms)"] is True
    assert verdicts["added p99 at Poisson 100/s: 1.50 ms (goal <= 2 ms)"] is True
    assert verdicts["added p99 at 16 in flight: 10.00 ms (goal <= 2 ms)"] is False
    assert verdicts["0 requests ended with an error (goal 0)"] is True
