"""How the router turns away a call it cannot take: at once, explicitly, and in its own books.

The call limit (`router.max_concurrent_calls`): at most that many Generate calls, gRPC and HTTP
together, are in the router's hands at once. The check is the first thing the Generate handler
does, so a call past it is refused in well under a millisecond of the handler's time with
RESOURCE_EXHAUSTED and a retry hint, and counted in the router's books (its class's, or the
class-less `UNKNOWN_CLASS` bucket when the request names no class the policy has). gRPC's own
concurrency limit (the server's `maximum_concurrent_rpcs`) is not used: it refuses before any
handler runs, so its refusals never reached the books and the router's attainment could not be
compared with its clients' (docs/reliability.md).

Every RESOURCE_EXHAUSTED the router sends carries the hint: over gRPC the standard retry
pushback trailer (`grpc-retry-pushback-ms`, which gRPC clients with a retry policy obey), over
HTTP a `Retry-After` header on the 429.
"""

from __future__ import annotations

RETRY_AFTER_S = 1  # the router's view of its replicas' load refreshes in about this long
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"
RETRY_HINT = ((RETRY_PUSHBACK_KEY, str(RETRY_AFTER_S * 1000)),)
# where refusals of requests naming no class the policy has are counted: not a valid class name
# (class names are letters, digits, '_', '.' and '-'), so no class's count is mixed with it
UNKNOWN_CLASS = "(unknown)"


class CallLimit:
    """Calls in the router's hands; used on the router's event loop thread only."""

    def __init__(self, max_calls: int | None) -> None:
        if max_calls is not None and max_calls < 1:
            raise ValueError(f"max_calls must be >= 1 (None: no limit), got {max_calls}")
        self.max_calls = max_calls
        self.in_flight = 0

    def take(self) -> bool:
        """One more call, if there is room (then `release` it when it ends)."""
        if self.max_calls is not None and self.in_flight >= self.max_calls:
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    def refusal(self) -> str:
        return (f"overloaded: the router is serving its limit of {self.max_calls} calls at "
                f"once (router.max_concurrent_calls); retry in {RETRY_AFTER_S} s")
