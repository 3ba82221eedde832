"""`dilaserve policy validate` as a person runs it: a summary and 0, or the problems and 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dilaserve.cli.main import main
from dilaserve.core.locations import SHIPPED_MODEL_DIR
from worker.measure.profile_files import profiles_dir

ROOT = Path(__file__).resolve().parents[2]
POLICIES = sorted((ROOT / "deploy" / "policies").glob("*.yaml"))
CLASSES = """default_class: a
classes:
  - name: a
    deadline: {ms: 100, per_token_ms: 2}
    quality_floor: {max_accuracy_drop: 0.01}
    priority: 2
  - name: b
    best_effort: true
"""


def validate(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["policy", "validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_every_shipped_policy_validates(capsys, path):
    code, out, err = validate(capsys, str(path))
    assert code == 0, err
    assert f"{path}: a valid cluster policy" in out and "reconfigure: tick every" in out


def test_summary_shows_classes_cluster_and_knobs(capsys):
    code, out, _ = validate(capsys, str(ROOT / "deploy" / "policies" / "default.yaml"))
    assert code == 0
    assert "default: standard" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("interactive"))
    assert "40 ms + 3 ms/tok" in row and "136 ms" in row and "drop <= 0.01 -> tau >= " in row
    assert "none (best-effort)" in out
    assert "ask Ray (without GPUs: 2 CPU replicas x 1 thread)" in out
    assert "router: 127.0.0.1:50051" in out and "tick every 5 s" in out


def test_errors_name_field_and_line_and_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(CLASSES.replace("ms: 100", "ms: -1") + "cluster:\n  max_tp: 3\n")
    code, out, err = validate(capsys, str(bad))
    assert code == 2 and out == ""
    assert f"dilaserve policy: error: {bad}:4: classes[0](a).deadline.ms" in err
    assert f"dilaserve policy: error: {bad}:10: cluster.max_tp" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("classes: [\n", "not valid YAML"),
        ("\x00\x01binary", "not valid YAML"),
        ("- a list\n", "a policy is a mapping"),
        ("", "a policy is a mapping"),
    ],
)
def test_garbage_is_an_error_not_a_traceback(capsys, tmp_path, text, expected):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    code, _, err = validate(capsys, str(path))
    assert code == 2 and expected in err and "Traceback" not in err


def test_missing_file_and_a_directory(capsys, tmp_path):
    code, _, err = validate(capsys, str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such file" in err
    code, _, err = validate(capsys, str(tmp_path))
    assert code == 2 and "no such file" in err


def test_worker_mode_ignores_the_cluster_section(capsys, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(CLASSES + "cluster:\n  max_tp: 3\n")
    code, out, _ = validate(capsys, str(path), "--worker")
    assert code == 0 and "a valid worker policy" in out and "cluster:" not in out
    assert validate(capsys, str(path))[0] == 2


def test_floors_unresolved_without_a_profile_here(capsys, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(CLASSES + "cluster:\n  model: /models/not-on-this-machine\n")
    code, out, _ = validate(capsys, str(path))
    assert code == 0
    assert "not resolved here: no /models/not-on-this-machine/profiles/quality.json" in out
    assert "drop <= 0.01 " in out and "-> tau" not in out


def test_a_broken_quality_profile_is_an_error(capsys, tmp_path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "quality.json").write_text(json.dumps({"schema": "nope"}))
    path = tmp_path / "p.yaml"
    path.write_text(CLASSES)
    code, _, err = validate(capsys, str(path), "--profiles", str(profiles))
    assert code == 2 and "not a quality profile" in err and "Traceback" not in err


def test_check_model_requires_the_model_and_its_profiles_here(capsys, tmp_path):
    code, out, _ = validate(capsys, str(ROOT / "deploy" / "policies" / "default.yaml"),
                            "--check-model")
    shipped = len(list(profiles_dir(SHIPPED_MODEL_DIR).glob("step_cost.*.json")))
    assert code == 0 and f"{SHIPPED_MODEL_DIR.name} with {shipped} step-cost profile(s) is on " \
        "this machine" in out
    model = tmp_path / "model"
    model.mkdir()
    path = tmp_path / "p.yaml"
    path.write_text(CLASSES.replace("max_accuracy_drop", "min_threshold").replace("0.01", "0.6")
                    + f"cluster:\n  model: {model}\n")
    code, _, err = validate(capsys, str(path), "--check-model")
    assert code == 2 and f"cluster.model: {model} is not a model directory" in err
    (model / "config.json").write_text("{}")
    code, _, err = validate(capsys, str(path), "--check-model")
    assert code == 2 and "cluster.profiles:" in err and "dilaserve profile" in err
    code, _, err = validate(capsys, str(path), "--check-model", "--worker")
    assert code == 2 and "--check-model: needs a cluster policy" in err
