"""`dilaserve plan`: files in, a plan out; errors name the field, exit 2, no traceback."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from dilaserve.cli import plan as plan_cli
from tests.solver.solver_helpers import profiles

WORKLOAD = """
classes:
  - name: chat
    rate: 20
    prompt: {mean: 128, p90: 256}
    output: {mean: 128, p90: 128}
    deadline_s: 0.5
    max_accuracy_drop: 0.02
    priority: 1
  - name: batch
    rate: 5000
    prompt: 128
    output: 128
    slo_scale: 5
policy:
  tp_degrees: [1, 2]
"""


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dilaserve")
    plan_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["plan", *argv])
    return args.func(args)


@pytest.fixture
def files(tmp_path):
    prof = profiles((1,))
    prof.step_costs[0].save(tmp_path / "profiles" / "step_cost_tp1.json")
    prof.quality.save(tmp_path / "profiles" / "quality.json")
    (tmp_path / "workload.yaml").write_text(WORKLOAD)
    (tmp_path / "cluster.yaml").write_text("nodes:\n  - {count: 1, gpus: 4, gpu_type: H100}\n")
    return tmp_path


def test_plan_table(files, capsys):
    rc = run(["--cluster", str(files / "cluster.yaml"), "--workload", str(files / "workload.yaml"),
              "--profiles", str(files / "profiles")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "replica groups" in out and "class batch is short" in out


def test_plan_json_compact_spec_highs_and_current(files, capsys):
    prof = files / "profiles"
    common = ["--workload", str(files / "workload.yaml"), "--profiles", str(prof), "--json"]
    assert run(["--cluster", "1x4:H100", "--solver", "highs", *common]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "optimal" and data["solver"] == "highs"
    assert {c["name"] for c in data["classes"]} == {"chat", "batch"}
    (files / "current.json").write_text(json.dumps(data))
    assert run(["--cluster", "1x4:H100", "--current", str(files / "current.json"), *common]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reconfig_gpu_s"] == 0


@pytest.mark.parametrize("edit, message", [
    (lambda w: w.replace("rate: 20", "rate: -3"), r"workload.classes\[0\] \(chat\): rate"),
    (lambda w: w.replace("deadline_s: 0.5", "deadlin_s: 0.5"), "unknown field"),
    (lambda w: w.replace("max_accuracy_drop: 0.02", "min_threshold: 0.999"),
     r"classes\[0\] \(chat\)\.min_threshold"),
    (lambda w: w.replace("tp_degrees: [1, 2]", "tp_degrees: [3]"), "policy.tp_degrees"),
    (lambda w: w.replace("    prompt: 128\n", ""), r"classes\[1\] \(batch\)\.prompt"),
    (lambda w: w + "  : [", "not valid"),
])
def test_bad_workload_exits_2_naming_the_field(files, capsys, edit, message):
    (files / "bad.yaml").write_text(edit(WORKLOAD))
    rc = run(["--cluster", "1x4:H100", "--workload", str(files / "bad.yaml"),
              "--profiles", str(files / "profiles")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    assert err.startswith("dilaserve plan: error:")
    assert re.search(message, err), err


@pytest.mark.parametrize("cluster, message", [
    ("4x0:H100", "gpus_per_node"), ("banana", "neither a file nor a spec"),
    ("1x4:A100", r"no step-cost profile for 'A100'"),
])
def test_bad_cluster(files, capsys, cluster, message):
    rc = run(["--cluster", cluster, "--workload", str(files / "workload.yaml"),
              "--profiles", str(files / "profiles")])
    assert rc == 2
    assert message.replace("\\", "") in capsys.readouterr().err.replace("\\", "")


def test_missing_arguments_and_profiles(files, capsys):
    assert run(["--cluster", "1x4:H100"]) == 2
    assert "--workload is required" in capsys.readouterr().err
    assert run(["--cluster", "1x4:H100", "--workload", str(files / "workload.yaml"),
                "--profiles", str(files / "nope")]) == 2
    assert "is neither llada-8b, shipped nor a directory" in capsys.readouterr().err
    (files / "only_step").mkdir()
    profiles((1,)).step_costs[0].save(files / "only_step" / "s.json")
    assert run(["--cluster", "1x4:H100", "--workload", str(files / "workload.yaml"),
                "--profiles", str(files / "only_step")]) == 2
    assert "no quality profile" in capsys.readouterr().err


def test_bench_small(capsys):
    assert run(["--bench", "--bench-sizes", "8", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["solver"] for r in rows} == {"cbc", "highs"}
    assert all(r["gpus"] == 8 and r["primary_gap"] <= 0.01 for r in rows)
    assert run(["--bench", "--bench-sizes", "7"]) == 2


def test_the_documented_plan_runs_on_published_and_derived_profiles(capsys):
    """The README's line: the default profiles (LLaDA-8B) on a GPU only derived by roofline; the
    plan says where its numbers come from."""
    assert run(["--cluster", "4x8:H100", "--workload", "deploy/workloads/llada-8b-chat.yaml"]) == 0
    out = capsys.readouterr().out
    assert "profile llada-8b H100: derived from A100 by roofline" in out
    assert run(["--cluster", "2x4:L40S", "--workload", "deploy/workloads/llada-8b-chat.yaml",
                "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profiles"]["provenance"] == {"L40S": "derived from A100 by roofline "
                                                      "(datasheet ratios)"}
    assert "at 16 GB/s" in " ".join(data["reasons"])  # PCIe, not the A100's NVLink


def test_cpu_plans_only_measured_tp_degrees(capsys):
    assert run(["--cluster", "1x4:cpu", "--profiles", "shipped", "--workload",
                "deploy/workloads/embedded.yaml", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {g["tp"] for g in data["groups"]} == {1}
    assert any("not profiled: measure with dilaserve profile --tp N" in n for n in data["reasons"])


def test_a_gpu_without_a_profile_names_the_derive_command(capsys):
    assert run(["--cluster", "1x8:A100", "--workload", "deploy/workloads/llada-8b-chat.yaml",
                "--profiles", "shipped"]) == 2
    err = capsys.readouterr().err
    assert "no step-cost profile for 'A100' in profiles 'shipped'" in err
    assert "dilaserve profile --derive A100 --from DIR" in err
