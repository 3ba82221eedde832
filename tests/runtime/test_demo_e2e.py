"""The README's main command, end to end in its own process: `dilaserve demo` starts the
embedded cluster (local Ray, CPU replicas of the shipped model, router), runs a client workload
with deadlines through the router, reports, and stops cleanly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_demo_serves_a_client_workload_and_stops():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dilaserve.cli.main", "demo", "--rate", "4", "--duration", "5",
         "--port", "0"], capture_output=True, text=True, timeout=360, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    m = re.search(r"SLO attainment ([\d.]+)% \((\d+) requests: (\d+) met", out)
    assert m, out[-3000:]
    assert int(m.group(2)) == 20 and float(m.group(1)) >= 50.0, m.group(0)
    assert "0 other errors" in out
    assert re.search(r"\[ok \] \S+", out)  # answers are shown, and right
    assert re.search(r"#\d+\s+TP1 .* active\s+127\.0\.0\.1:\d+", out)  # status lists replicas
    assert "stopping the cluster" in out


def test_demo_names_a_bad_flag():
    proc = subprocess.run([sys.executable, "-m", "dilaserve.cli.main", "demo", "--rate", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "dilaserve demo: error: --rate" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_prints_the_router_and_stops_after_its_duration():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "dilaserve.cli.main", "serve", "--port", "0", "--duration", "2"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert re.search(r"router listening on 127\.0\.0\.1:\d+$", proc.stdout, re.M), proc.stdout
    assert "dilaserve serve: stopped" in proc.stderr


def test_serve_prints_what_the_controller_does_and_a_rejected_reload(tmp_path):
    policy = tmp_path / "policy.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.yaml",
                policy)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilaserve.cli.main", "serve", "--policy", str(policy),
         "--port", "0", "--duration", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = proc.stdout.readline()
        assert "router listening" in ready, ready
        policy.write_text(policy.read_text().replace("target_attainment: 0.95",
                                                     "target_attainment: 1.5", 1))
        out, err = proc.communicate(timeout=200)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "dilaserve serve: " in err and "plan (cold start)" in err
    rejected = [line for line in err.splitlines() if "policy reload rejected" in line]
    assert rejected and "policy.yaml:" in rejected[0] and "target_attainment" in rejected[0], err
