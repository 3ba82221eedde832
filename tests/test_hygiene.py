"""The suite's own rule (tests/conftest.py): a test that starts a process or a server is `slow`."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys

import grpc
import pytest

from tests.conftest import UnmarkedSlowTest


def test_an_unmarked_test_cannot_start_a_subprocess_a_process_or_a_server():
    with pytest.raises(UnmarkedSlowTest, match="starts a subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    with pytest.raises(UnmarkedSlowTest, match="starts a process"):
        multiprocessing.get_context("spawn").Process(target=print).start()
    with pytest.raises(UnmarkedSlowTest, match="starts a gRPC server"):
        grpc.aio.server()

    async def http_server():  # aiohttp and other asyncio servers
        await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)

    with pytest.raises(UnmarkedSlowTest, match="starts a server"):
        asyncio.run(http_server())


@pytest.mark.slow
def test_a_slow_test_may():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
