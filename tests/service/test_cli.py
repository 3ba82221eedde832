"""`dilaserve worker` and `dilaserve generate --target` as a person runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dilaserve.cli.generate_local import duration_ms
from dilaserve.cli.main import main
from tests.service.helpers import POLICY_YAML, write_model_dir

ROOT = Path(__file__).resolve().parents[2]


def start_worker(model_dir: Path, policy: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilaserve.cli.main", "worker", "--model", str(model_dir),
         "--policy", str(policy), "--port", "0", "--grace-s", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    line = proc.stdout.readline()
    if "serving" not in line:
        proc.kill()
        raise AssertionError(f"worker did not start: {line!r} {proc.stderr.read()}")
    return proc, line.split(" on ")[1].split()[0]


@pytest.mark.slow
def test_worker_serves_generate_target_and_stops_on_sigterm(tmp_path, capsys):
    model_dir = write_model_dir(tmp_path / "model")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML)
    proc, target = start_worker(model_dir, policy)
    try:
        assert target.startswith("127.0.0.1:")
        code = main(["generate", "abc", "12+3", "--target", target, "--deadline", "5s",
                     "--max-new-tokens", "8"])
        out = capsys.readouterr().out
        assert code == 0, out
        assert "abc ->" in out and "12+3 ->" in out and "deadline met" in out
        assert main(["generate", "abc", "--target", target, "--slo-class", "gold"]) == 1
        assert "INVALID_ARGUMENT: slo_class" in capsys.readouterr().out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert "stopped" in proc.stderr.read()


def test_worker_refuses_a_bad_policy_naming_the_field(tmp_path, capsys):
    policy = tmp_path / "bad.yaml"
    policy.write_text(POLICY_YAML.replace("ms: 20000", "ms: -1", 1))
    assert main(["worker", "--policy", str(policy), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:5: classes[0](standard).deadline.ms" in err and "Traceback" not in err


def test_worker_without_profiles_says_how_to_make_them(tmp_path, capsys):
    model_dir = write_model_dir(tmp_path / "model")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["worker", "--model", str(model_dir), "--profiles", str(empty)]) == 2
    assert "dilaserve profile" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "ms"), [("2s", 2000), ("500ms", 500), ("1.5", 1500)])
def test_deadline_durations(text, ms):
    assert duration_ms(text) == ms


def test_local_generate_reports_the_deadline(capsys):
    assert main(["generate", "rev:abc>", "--deadline", "60s"]) == 0
    assert "deadline 60000 ms met" in capsys.readouterr().out
