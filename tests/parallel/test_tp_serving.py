"""A TP=2 replica built as `dilaserve worker --tp 2` builds it (rank 0 serving gRPC here, rank 1
spawned) answers like a one-device replica, and shuts down with its follower exiting cleanly."""

from __future__ import annotations

import time

from dilaserve.policy import default_policy
from worker.client import WorkerClient
from worker.models import tasks
from worker.parallel.local import LocalRanks, start_local_tp_worker
from worker.service.server import ServerThread
from worker.service.setup import load_worker


def _answers(worker, prompts: list[str]) -> list[str]:
    server = ServerThread(worker)
    server.start()
    try:
        with WorkerClient(server.target) as client:
            return [client.generate(p, 32, timeout=60).text for p in prompts]
    finally:
        server.stop(grace_s=1.0)


def test_tp2_worker_serves_like_tp1_and_stops_cleanly():
    examples = tasks.heldout_set(2)
    prompts = [ex.prompt for ex in examples]
    expected = _answers(load_worker(None, default_policy()), prompts)
    replica = start_local_tp_worker(
        None, default_policy(), 2, ranks=LocalRanks(timeout_s=10.0, start_timeout_s=60.0)
    )
    try:
        got = _answers(replica.worker, prompts)
    finally:
        started = time.monotonic()
        codes = replica.close()
    assert got == expected
    assert sum(a == ex.answer for a, ex in zip(got, examples)) >= len(examples) // 2
    assert codes == [0] and time.monotonic() - started < 10.0
