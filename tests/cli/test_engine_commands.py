"""The engine-level CLI commands on the shipped model, run as a user would."""

import json
import subprocess
import sys

import pytest

from dilaserve.cli.main import main


def test_generate_decodes_with_the_shipped_model(capsys):
    assert main(["generate", "sort:3141>", "rev:abc>"]) == 0
    out = capsys.readouterr().out
    assert "sort:3141> ->" in out and "rev:abc> ->" in out and "forwards" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "ADD:1+1="], "outside the model's vocabulary"),
        (["generate", "x", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["bench-engine", "--canvas", "30", "--block-size", "8"], "not a multiple"),
        (["bench-engine", "--tasks", "nope"], "--tasks"),
        (["profile", "--what", "speed"], "--what"),
        (["generate", "x", "--model", "/nonexistent"], "--model"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_bench_engine_prints_all_configurations_and_ratios(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dilaserve.cli.main",
            "bench-engine",
            "--requests",
            "4",
            "--batches",
            "4",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    names = [c["name"] for c in summary["configs"]]
    assert names[0].startswith("(1) llada-baseline") and names[1].startswith("(2) fast-dllm")
    assert names[2].startswith("(2n) fast-dllm") and "no-cache" in names[2]
    assert names[3].startswith("(3) dilaserve") and "b4" in names[3]
    assert set(summary["ratios"]) == {"(2)/(1)", "(2)/(2n)", "(3 b4)/(2)"}
    assert "ratio (2)/(1)" in proc.stdout


@pytest.mark.slow
def test_profile_quick_writes_valid_profiles(tmp_path):
    from dilaserve.profiles.quality import QualityProfile
    from dilaserve.profiles.step_cost import StepCostProfile

    assert main(["profile", "--quick", "--cache-modes", "dual", "--out", str(tmp_path)]) == 0
    (cost_file,) = tmp_path.glob("step_cost.*.dual.json")
    cost = StepCostProfile.load(cost_file)
    assert cost.tp == 1 and cost.cache_mode == "dual" and min(cost.cost.coef) >= 0
    quality = QualityProfile.load(tmp_path / "quality.json")
    assert quality.reference.threshold == 0.9 and len(quality.points) >= 21
