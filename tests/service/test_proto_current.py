"""The committed generated code is what `python -m proto.compile` produces from the .proto."""

from __future__ import annotations

from pathlib import Path

from proto.compile import GENERATED, ROOT, compile_proto


def test_generated_code_is_current(tmp_path: Path):
    for fresh in compile_proto(tmp_path):
        committed = ROOT / "proto" / fresh.name
        assert committed.is_file(), f"{committed} is missing: run `python -m proto.compile`"
        assert fresh.read_text() == committed.read_text(), (
            f"{committed} is stale: run `python -m proto.compile` and commit the result"
        )
    assert {p.name for p in (tmp_path / "proto").iterdir()} >= set(GENERATED)
