"""A local TP replica for tests: rank 0 in the test process, the followers spawned."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess

import torch

from worker.parallel.group import local_init_method
from worker.parallel.local import LocalRanks, join_followers, spawn_followers
from worker.parallel.rank0 import Rank0, start_rank0

TIMEOUT_S = 3.0  # collectives, and how long a follower waits for a silent rank 0
HEARTBEAT_S = 0.5


@contextmanager
def local_replica(tp: int = 2) -> Iterator[tuple[Rank0, list[BaseProcess]]]:
    """Like worker.parallel.local.local_rank0, but the test sees the follower processes."""
    init_method = local_init_method()
    followers = spawn_followers(
        tp, init_method, None, LocalRanks(timeout_s=TIMEOUT_S, start_timeout_s=60.0)
    )
    try:
        rank0 = start_rank0(
            tp, init_method, timeout_s=TIMEOUT_S, start_timeout_s=60.0, heartbeat_s=HEARTBEAT_S
        )
    except BaseException:
        join_followers(followers, 1.0)
        raise
    try:
        yield rank0, followers
    finally:
        rank0.close()
        join_followers(followers, 20.0)


def rank0_then_vanish(init_method: str, how: str) -> None:
    """A spawned rank 0 that joins and loads, then dies ("exit") or goes silent ("hang")."""
    torch.set_num_threads(1)
    if how == "exit":
        start_rank0(2, init_method, timeout_s=TIMEOUT_S, start_timeout_s=60.0)
        os._exit(3)
    start_rank0(2, init_method, timeout_s=TIMEOUT_S, start_timeout_s=60.0)
    os.kill(os.getpid(), signal.SIGSTOP)  # hung: every thread stops, heartbeat included
    time.sleep(60.0)  # not reached until the test kills this process
