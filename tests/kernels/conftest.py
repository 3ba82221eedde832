"""Import the Triton kernels in interpreter mode (CPU) when triton is installed.

TRITON_INTERPRET must be set before @triton.jit runs, i.e. before kernels.masked_head and
kernels.block_attention are imported, and again while the interpreter launches (its first launch
imports triton's gluon package, which checks it). It is restored after the import and set per test
by the `triton_kernels` fixture, so no other test sees it. Tests that need Triton take that
fixture and skip without it.
"""

from __future__ import annotations

import importlib
import os
from types import SimpleNamespace

import pytest

from kernels.dispatch import triton_installed


def _import_interpreted() -> SimpleNamespace | None:
    if not triton_installed():
        return None
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        head = importlib.import_module("kernels.masked_head")
        attention = importlib.import_module("kernels.block_attention")
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous
    if not (head.compiled_for_interpreter() and attention.compiled_for_interpreter()):
        return None  # imported earlier without the interpreter: cannot run on CPU
    return SimpleNamespace(head=head, attention=attention)


_KERNELS = _import_interpreted()
SKIP_REASON = (
    "triton is not installed (pip install '.[kernels]'): Triton comparisons skipped, "
    "the torch path is still tested"
    if not triton_installed()
    else "kernels were imported without TRITON_INTERPRET=1 before this conftest ran"
)


@pytest.fixture
def triton_kernels(monkeypatch) -> SimpleNamespace:
    if _KERNELS is None:
        pytest.skip(SKIP_REASON)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    return _KERNELS


@pytest.fixture
def force_triton(triton_kernels, monkeypatch) -> SimpleNamespace:
    """The dispatch takes the Triton path (interpreted) for CPU tensors."""
    monkeypatch.setenv("DILASERVE_KERNELS", "triton")
    return triton_kernels
