"""`dilaserve bench --mode live|compare` end to end in its own process: policies, each on its own
embedded cluster (local Ray, CPU replicas of the shipped model, the router on a free port),
replaying a few seconds of Poisson arrivals of held-out task prompts; the simulated mode's
table and JSON come out, with measured accuracy (live), or beside the simulated run of the same
requests on the host as measured under traffic (compare)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dilaserve.core.locations import SHIPPED_MODEL_DIR
from dilaserve.profiles.quality import QualityProfile
from worker.measure.profile_files import QUALITY_FILE, profiles_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]
REFERENCE = QualityProfile.load(profiles_dir(SHIPPED_MODEL_DIR) / QUALITY_FILE).reference


def bench(tmp_path, mode: str, *flags: str) -> tuple[str, str, dict]:
    """`dilaserve bench --mode MODE` on a few seconds of Poisson arrivals in its own process:
    (stdout, stdout + stderr, the JSON it wrote)."""
    out = tmp_path / f"{mode}.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dilaserve.cli.main", "bench", "--mode", mode, "--trace",
         "poisson", "--request-rate", "8", "--duration", "4", "--slo-scale", "20", "--port",
         "0", "--json", str(out), *flags],
        capture_output=True, text=True, timeout=180, env=env)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text
    return proc.stdout, text, json.loads(out.read_text())


def test_two_policies_live_on_the_embedded_cluster(tmp_path):
    stdout, _, data = bench(tmp_path, "live", "--policies", "static,dilaserve", "--warmup", "0")
    assert "static " in stdout and "dilaserve " in stdout and "p50 ms" in stdout
    (point,) = data["points"]
    results = {r["policy"]: r for r in point["results"]}
    assert set(results) == {"static", "dilaserve"}
    for r in results.values():
        assert r["requests"] == point["requests"] > 10
        assert r["met"] + r["late"] + r["expired"] + r["rejected"] + r["shed"] <= r["requests"]
        assert r["met"] > 0 and r["replica_steps"] > 0
        # measured: exact answers of held-out prompts, about as the quality profile says
        assert r["mean_accuracy"] > REFERENCE.accuracy - 0.15
        assert r["latency_p50_s"] < 1.0
    assert results["static"]["layout"] == "TP1 x tau 0.9"
    assert results["dilaserve"]["layout"].startswith("ILP")


def test_compare_measures_the_host_under_traffic_and_simulates_the_same_requests(tmp_path):
    stdout, text, data = bench(tmp_path, "compare", "--policies", "static", "--seeds", "0")
    assert "calibration traffic" in text and "rows within" in stdout
    (pair,) = data["pairs"]
    live, sim, host = pair["live"], pair["sim"], pair["host"]
    assert live["requests"] == sim["requests"] > 10
    assert live["replica_steps"] > 0 and sim["replica_steps"] > 0
    # measured on the running replicas: their steps against the profile, the loop's own time,
    # and the path outside the replica (a real gRPC path takes some time)
    assert 0.2 < host["step_scale"] < 5.0
    assert 0.0 <= host["loop_s_per_request"] < 0.05
    assert 0.0 < host["rpc_ms"]["p50"] <= host["rpc_ms"]["p90"] < 1000.0
    assert host["requests"] > 10
