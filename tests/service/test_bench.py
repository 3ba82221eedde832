"""The benchmark's parts (arrivals, scoring, rate search) and its --quick run end to end."""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.helpers import write_task_model_dir
from worker.client.bench_metrics import highest_sustained_rate, percentile, summarize
from worker.client.loadgen import ReplayOutcome, arrival_times

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("process", "cv"), [("poisson", 1.0), ("gamma", 2.0), ("gamma", 4.0)])
def test_arrivals_have_the_asked_rate_and_burstiness(process, cv):
    times = arrival_times(50.0, 20_000, process, random.Random(1), cv)
    gaps = [b - a for a, b in zip([0.0, *times], times)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(1 / 50, rel=0.1)
    assert statistics.pstdev(gaps) / mean == pytest.approx(cv, rel=0.15)


def test_bad_arrivals():
    with pytest.raises(ValueError, match="unknown process"):
        arrival_times(1.0, 3, "uniform", random.Random(0))
    with pytest.raises(ValueError, match="rate"):
        arrival_times(0.0, 3, "poisson", random.Random(0))


def test_summary_counts_rejected_and_late_as_misses():
    outcomes = [
        ReplayOutcome("add", "p1", "met", 10.0, True, 0.9, 5),
        ReplayOutcome("add", "p2", "late", 30.0, False, 0.7, 4),
        ReplayOutcome("rev", "p3", "rejected", 0.0, False, 0.0, 0),
        ReplayOutcome("rev", "p4", "expired", 0.0, False, 0.0, 0),
    ]
    s = summarize(10.0, outcomes)
    assert s.attainment == 0.25 and s.rejected == 1 and s.late == 2 and s.errors == 0
    assert s.accuracy == 0.5 and s.per_task == {"add": 0.5}
    assert s.p50_ms == 10.0 and s.p99_ms == 30.0 and s.mean_threshold == pytest.approx(0.8)


def test_percentile_is_nearest_rank():
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile([1, 2, 3, 4], 0.99) == 4
    assert percentile([], 0.5) != percentile([], 0.5)  # nan


def test_rate_search_brackets_then_bisects():
    rate, tried = highest_sustained_rate(lambda r: 1.0 if r <= 37 else 0.5, 10.0, refinements=6)
    assert 33 < rate <= 37 and tried[:3] == [(10.0, 1.0), (20.0, 1.0), (40.0, 0.5)]
    low, _ = highest_sustained_rate(lambda r: 1.0 if r <= 3 else 0.0, 10.0, refinements=0)
    assert low == 2.5
    assert highest_sustained_rate(lambda r: 0.0, 1.0, max_doublings=3)[0] == 0.0


@pytest.mark.slow
def test_quick_benchmark_runs_and_prints_every_configuration(tmp_path):
    model_dir = write_task_model_dir(tmp_path / "model")
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "dilaserve.cli.main", "bench-worker", "--quick",
         "--model", str(model_dir), "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("fcfs+none", "edf+none", "edf+threshold"):
        assert name in proc.stdout
    assert "reproduce: dilaserve bench-worker --quick" in proc.stdout
    assert "scheduler time per step" in proc.stdout and "goals:" in proc.stdout
    result = json.loads(out.read_text())
    assert result["capacity"] > 0
    for config in result["configs"].values():
        assert config["trials"]["poisson"]["1.5"]["requests"] == 30
        assert config["trials"]["poisson"]["1.5"]["errors"] == 0
