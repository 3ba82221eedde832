"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout_s: float = 10.0, what: str = "the condition",
             detail: Callable[[], object] | None = None, poll_s: float = 0.01) -> T:
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout_s`
    naming `what` and, if given, `detail()` (the state that was not reached)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}"
                                 + (f": {detail()}" if detail is not None else ""))
        time.sleep(poll_s)
