"""`dilaserve bench-kernels` runs end to end at toy shapes and rejects bad arguments clearly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dilaserve.cli.main import main

TOY = [
    "bench-kernels",
    "--hidden",
    "64",
    "--vocab",
    "1000",
    "--intermediate",
    "128",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--block",
    "4",
    "--mask-token",
    "1",
    "--batches",
    "1,2",
    "--canvases",
    "16",
    "--cpu-head-dim",
    "16",
    "--repeats",
    "1",
    "--budget-gib",
    "0.01",
]


def test_bench_kernels_prints_the_three_comparisons(capsys):
    assert main(TOY) == 0
    out = capsys.readouterr().out
    assert "GPU timings: not measured" in out
    assert "fused masked LM head vs mask-only torch path" in out
    assert "block attention over cached K/V" in out
    assert "llada-style (logits over the whole canvas)" in out and "fused head" in out


def test_bench_kernels_bad_arguments_exit_2(capsys):
    assert main([*TOY, "--batches", "0"]) == 2
    assert "dilaserve bench-kernels: error: --batches: expected positive integers" in (
        capsys.readouterr().err
    )


@pytest.mark.slow
def test_runs_from_the_source_tree_with_only_torch(tmp_path):
    """A GPU box has torch and triton but not the serving stack: bench-kernels must not need it."""
    blocked = ["grpc", "pydantic", "yaml", "ray", "pulp", "highspy", "safetensors", "google"]
    script = (
        "import runpy, sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        f"sys.argv = ['dilaserve', *{TOY!r}]\n"
        "runpy.run_module('dilaserve.cli.main', run_name='__main__')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "longest canvas" in done.stdout
