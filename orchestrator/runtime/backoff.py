"""Backing off replica starts that keep failing (pure: the caller passes the time).

A replica that cannot be placed, fails to load or dies while loading is asked for again by the
controller's next reconcile, a second later. Where the cause persists (a model that does not fit,
a node whose GPUs are held by someone else) that turns into a start every tick, each one logged
and each one holding a placement group for a while. Per (node, TP degree), consecutive failed
starts space the next one out: `first_s`, then doubling, up to `max_s`; a replica of that kind
that comes up serving clears it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StartBackoff:
    first_s: float = 5.0
    max_s: float = 300.0
    _failures: dict[tuple, int] = field(default_factory=dict)
    _not_before: dict[tuple, float] = field(default_factory=dict)

    def failed(self, key: tuple, now: float) -> float:
        """Record a failed start; returns how long the next start of `key` waits."""
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        delay = min(self.max_s, self.first_s * 2 ** (count - 1))
        self._not_before[key] = now + delay
        return delay

    def succeeded(self, key: tuple) -> None:
        self._failures.pop(key, None)
        self._not_before.pop(key, None)

    def wait_s(self, key: tuple, now: float) -> float:
        """Seconds until a start of `key` may be tried (0: now)."""
        return max(0.0, self._not_before.get(key, now) - now)

    def failures(self, key: tuple) -> int:
        return self._failures.get(key, 0)
