"""The router's estimate of a call's wait before its handler: its event loop's lateness."""

from __future__ import annotations

import asyncio
import time

import pytest

from orchestrator.service.loop_lag import LoopLag


def test_the_lag_rises_while_the_loop_is_held_and_falls_when_it_is_free():
    async def run() -> tuple[float, float, float]:
        lag = LoopLag(interval_s=0.02)
        task = asyncio.create_task(lag.run())
        await asyncio.sleep(0.1)
        idle = lag.seconds
        time.sleep(0.1)  # a handler holding the loop: every ready callback waits behind it
        await asyncio.sleep(0.01)  # the lag's timer, long due, fires first: one late sample
        held = lag.seconds
        await asyncio.sleep(0.3)
        after = lag.seconds
        task.cancel()
        return idle, held, after

    idle, held, after = asyncio.run(run())
    assert held > 0.03 and held > 2 * max(idle, after)


def test_samples_smooth_and_never_go_negative():
    lag = LoopLag()
    lag.record(-1.0)
    assert lag.seconds == 0.0
    lag.record(0.1)
    lag.record(0.1)
    assert lag.seconds == pytest.approx(0.075)
    with pytest.raises(ValueError, match="interval_s"):
        LoopLag(interval_s=0)
