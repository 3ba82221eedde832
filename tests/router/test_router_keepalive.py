"""A replica whose process hangs (frozen, not dead: its port still accepts connections, nothing
answers) is found out by the router's keepalive pings, and the request offered to it goes to the
next choice instead of waiting there until its deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from dilaserve.policy import default_policy
from proto.keepalive import Keepalive
from tests.router.helpers import ONE_PER_STEP, FixedOrder, routing, workers
from tests.service.helpers import make_worker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _worker_process() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilaserve.cli.main", "worker", "--engine", "null", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # "dilaserve worker: serving MODEL on HOST:PORT (..."
    found = re.search(r" on (\S+:\d+) ", line)
    if found is None:
        proc.kill()
        raise AssertionError(f"the worker did not start: {line!r}")
    return proc, found.group(1)


def test_a_frozen_replica_is_found_out_and_its_request_goes_to_the_next_choice():
    proc, target = _worker_process()
    try:
        policy = default_policy()  # the worker process's
        with workers(make_worker(policy)) as (healthy,), \
                routing([SimpleNamespace(target=target), healthy], router=FixedOrder(0, 1),
                        policy=policy,
                        keepalive=Keepalive(interval_s=1.0, timeout_s=1.0)) as (_, client):
            first = client.generate("abc", 8, deadline_ms=20_000, **ONE_PER_STEP)
            assert first.replica == "0"  # the link to the worker process is up
            os.kill(proc.pid, signal.SIGSTOP)
            # without keepalive this call waits on the frozen replica past its deadline
            second = client.generate("abc", 8, deadline_ms=20_000, **ONE_PER_STEP)
            assert second.replica == "1" and second.deadline_met
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(10)
