"""How far behind the router's event loop runs, as an estimate of how long a call waited between
reaching the server's transport and reaching its handler.

gRPC (and the HTTP server) hand a new call to the router's event loop as one more ready callback,
so when the loop is saturated a call waits in line behind every callback ready before it; so does
a timer that comes due. `LoopLag` sleeps `interval_s` at a time and measures how late it wakes:
the same wait, measured about every `interval_s` (or as often as the loop gets to it). The
router starts a request's clock that long before its handler ran, so its deadline and its books
count the time it waited unseen, as its client's clock does (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

INTERVAL_S = 0.005  # ~200 wake-ups a second: well under 1% of a core
SMOOTHING = 0.5  # weight of the newest sample


class LoopLag:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 interval_s: float = INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.clock = clock
        self.interval_s = interval_s
        self.seconds = 0.0  # the smoothed lateness: 0 on an idle loop

    def record(self, late_s: float) -> None:
        self.seconds += SMOOTHING * (max(0.0, late_s) - self.seconds)

    async def run(self) -> None:
        """Measure until cancelled (a task on the loop it measures)."""
        while True:
            due = self.clock() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.record(self.clock() - due)
