from __future__ import annotations

import asyncio.base_events
import contextlib
import multiprocessing.process
import socketserver
import subprocess
from pathlib import Path

import grpc
import grpc.aio
import pytest
import torch

from worker.models.config import ModelConfig
from worker.models.transformer import DiffusionTransformer


def make_random_model(
    num_kv_heads: int = 2, seed: int = 0, sharpen: float = 3.0, max_seq_len: int = 160
) -> DiffusionTransformer:
    """A small random model; `sharpen` scales the LM head so confidences spread over (0, 1)."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        vocab_size=40,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=num_kv_heads,
        intermediate_size=128,
        max_seq_len=max_seq_len,
        mask_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        name="random-test",
    )
    model = DiffusionTransformer(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model


@pytest.fixture(scope="session")
def random_model() -> DiffusionTransformer:
    return make_random_model()


# -- test hygiene: a test that starts a process or a server is `slow` ----------------------------
# `make test` runs every test; `make test-quick` (`-m "not slow"`) the rest. So that the split
# stays true, an unmarked test that starts a subprocess, a process, a Ray cluster (Ray starts
# processes), a gRPC server or an HTTP server fails at once, naming what it started.


class UnmarkedSlowTest(RuntimeError):
    """Raised when a test without the `slow` marker starts a process or a server."""


def _refusal(what: str):
    def refuse(*_args, **_kwargs):
        raise UnmarkedSlowTest(f"this test {what} but is not marked slow: add "
                               f"@pytest.mark.slow (or pytestmark) so `make test-quick` skips it")
    return refuse


_execute_child = subprocess.Popen._execute_child


def _popen_unless_cbc(self, args, *rest, **kwargs):
    """PuLP runs its bundled CBC binary as a subprocess for milliseconds: the solver's own
    implementation, allowed; any other program is refused."""
    program = args[0] if isinstance(args, list | tuple) else str(args).split()[0]
    if Path(str(program)).name.startswith("cbc"):
        return _execute_child(self, args, *rest, **kwargs)
    return _refusal("starts a subprocess")()


_GUARDED = (
    (subprocess.Popen, "_execute_child", _popen_unless_cbc),
    (multiprocessing.process.BaseProcess, "start", _refusal("starts a process")),
    (socketserver.TCPServer, "server_bind", _refusal("starts a TCP server")),
    (asyncio.base_events.BaseEventLoop, "create_server", _refusal("starts a server")),
    (grpc, "server", _refusal("starts a gRPC server")),
    (grpc.aio, "server", _refusal("starts a gRPC server")),
)


@contextlib.contextmanager
def _guarded(item: pytest.Item):
    if item.get_closest_marker("slow") is not None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        for owner, name, refusal in _GUARDED:
            patch.setattr(owner, name, refusal)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with _guarded(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with _guarded(item):
        return (yield)
