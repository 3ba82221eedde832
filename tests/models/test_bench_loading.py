"""`dilaserve bench-loading` runs end to end (on a tiny checkpoint: the ~300M one is the command's
own default, run by hand; its figure is in README): it measures in a fresh process and reports
the weights it loaded."""

from __future__ import annotations

import json

import pytest

from dilaserve.cli.bench_loading import TINY_SHAPE, build_checkpoint
from dilaserve.cli.main import main

pytestmark = pytest.mark.slow  # the measurement runs in a subprocess


def test_bench_loading_reports_peak_over_weights(tmp_path, capsys):
    build_checkpoint(tmp_path / "model", TINY_SHAPE)
    index = json.loads((tmp_path / "model" / "model.safetensors.index.json").read_text())
    out = tmp_path / "result.json"
    assert main(["bench-loading", "--model", str(tmp_path / "model"), "--dtype", "float32",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    bf16_bytes = index["metadata"]["total_size"]
    assert result["weight_bytes"] == bf16_bytes * 2 and result["dtype"] == "float32"
    assert result["peak_host_bytes"] > 0 and result["hwm_reset"] in (True, False)
    assert "ratio peak / weights:" in capsys.readouterr().out


def test_a_directory_without_weights_is_named(tmp_path, capsys):
    build_checkpoint(tmp_path, TINY_SHAPE)
    for shard in tmp_path.glob("*.safetensors"):
        shard.unlink()
    assert main(["bench-loading", "--model", str(tmp_path)]) == 2
    assert "no *.safetensors in" in capsys.readouterr().err
