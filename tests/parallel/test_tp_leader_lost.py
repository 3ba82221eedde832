"""A follower whose rank 0 dies, or goes silent, leaves with LeaderLost instead of hanging."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from tests.parallel.tp_helpers import TIMEOUT_S, rank0_then_vanish
from worker.parallel.follower import LeaderLost, run_follower
from worker.parallel.group import local_init_method


@pytest.mark.parametrize("how", ["exit", "hang"])
def test_follower_exits_when_rank0_is_gone(how):
    init_method = local_init_method()
    rank0 = multiprocessing.get_context("spawn").Process(
        target=rank0_then_vanish, args=(init_method, how), daemon=True
    )
    rank0.start()
    raised: list[BaseException] = []

    def follow() -> None:
        try:
            run_follower(1, 2, init_method, timeout_s=TIMEOUT_S, start_timeout_s=30.0)
        except BaseException as err:
            raised.append(err)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        follower.join(30.0 + 3 * TIMEOUT_S)  # the spawned rank 0's start-up, then one timeout
        assert not follower.is_alive(), "the follower hung after losing rank 0"
        assert len(raised) == 1 and isinstance(raised[0], LeaderLost), raised
        assert "lost rank 0" in str(raised[0])
    finally:
        if rank0.is_alive() and how == "hang":
            rank0.terminate()
        rank0.join(10.0)
    if how == "exit":
        assert rank0.exitcode == 3
