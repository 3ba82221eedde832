"""The benchmarking null engine behind a real worker: the serving path runs, the model does not."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.service.helpers import TOKENIZER, make_worker, serving
from worker.engine.null_engine import NullEngine

pytestmark = pytest.mark.slow


def test_null_engine_streams_one_block_per_step_and_fills_the_canvas():
    with serving(make_worker(engine_class=NullEngine)) as (_, client):
        result = client.generate("abc", 20, request_id="n1")  # canvas 24: three blocks of 8
        assert [p.block_index for p in result.partials] == [0, 1, 2]
        token = TOKENIZER.decode([3])
        assert result.text == token * 24 and result.finish_reason == "length"
        assert result.forwards == 3
        stats = client.stats()
        assert stats.finished == 1 and stats.steps == 3


def test_worker_cli_offers_the_null_engine():
    out = subprocess.run(
        [sys.executable, "-m", "dilaserve.cli.main", "worker", "--help"],
        capture_output=True, text=True, timeout=60,
    )
    assert "--engine {model,null}" in out.stdout and "benchmarking engine" in out.stdout
