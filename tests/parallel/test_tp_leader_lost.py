"""A follower whose rank 0 dies, or goes silent, leaves with LeaderLost instead of hanging; rank 0
fails the step when a follower died."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from dilaserve.core.steps import AdmitRow, DecodeSettings, StepPlan
from tests.parallel.tp_helpers import TIMEOUT_S, local_replica, rank0_then_vanish
from worker.engine.engine import EngineConfig
from worker.parallel.engine import TensorParallelEngine
from worker.parallel.follower import LeaderLost, run_follower
from worker.parallel.group import local_init_method

pytestmark = pytest.mark.slow


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
            rank0.kill()  # the test's own stopped rank 0, by its handle
        rank0.join(10.0)
    if how == "exit":
        assert rank0.exitcode == 3


def test_rank0_fails_the_step_when_a_follower_died():
    with local_replica(2) as (rank0, followers):
        engine = TensorParallelEngine(rank0.model, EngineConfig(max_rows=2), rank0.leader)
        followers[0].kill()  # the test's own spawned follower, by its handle
        followers[0].join(10.0)
        row = AdmitRow("a", (5, 6, 7), 8, DecodeSettings(block_size=8))
        with pytest.raises(RuntimeError, match="peer|remote worker|imed out"):
            engine.step(StepPlan(admit=(row,), run=("a",)))
    # leaving the context sent Stop to nobody and left the groups without hanging
