"""The replicas the router sends requests to: the set the controller pushes, each one's last polled
Stats, and the router's own count of its requests on each.

Thread-safe: the controller's thread calls `set_endpoints` and reads views; the router's event loop
counts requests and records polls. gRPC channels are not kept here (they belong to the event loop:
see `channels.py`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dilaserve.core.limits import RequestLimits, tightest
from orchestrator.service.views import TypicalRequest, replica_view
from orchestrator.types import ReplicaConfig, ReplicaState, ReplicaView
from proto import dilaserve_pb2 as pb
from worker.service.convert import limits_of


@dataclass(frozen=True)
class ReplicaEndpoint:
    """A replica as the controller describes it to the router."""

    replica_id: int
    target: str  # "host:port" of the replica's worker gRPC service
    config: ReplicaConfig
    node: int
    state: ReplicaState  # LOADING: never routed; ACTIVE; DRAINING: not routed, requests finish


@dataclass
class _Replica:
    endpoint: ReplicaEndpoint
    in_flight: int = 0
    by_priority: Counter = field(default_factory=Counter)  # in_flight split by priority
    stats: pb.StatsReply | None = None
    polled_at: float | None = None
    healthy: bool = True  # until a poll or a call says otherwise
    error: str = ""


@dataclass(frozen=True)
class ReplicaSnapshot:
    """One replica at one moment, for Stats, summaries and metrics."""

    endpoint: ReplicaEndpoint
    in_flight: int
    stats: pb.StatsReply | None
    polled_at: float | None
    healthy: bool
    error: str


class ReplicaPool:
    def __init__(self, cache_mode: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._replicas: dict[int, _Replica] = {}
        self._typical = TypicalRequest()
        self._limits: RequestLimits | None = None  # recomputed when a poll or the set changes
        self.cache_mode = cache_mode
        self.clock = clock

    # ---- the controller's side -----------------------------------------------------------------

    def set_endpoints(self, endpoints: Sequence[ReplicaEndpoint]) -> list[ReplicaEndpoint]:
        """Replace the set; returns the endpoints that left it (or moved to another target)."""
        ids = [e.replica_id for e in endpoints]
        if len(set(ids)) != len(ids):
            raise ValueError(f"set_replicas: replica ids must be unique, got {ids}")
        gone = []
        with self._lock:
            fresh: dict[int, _Replica] = {}
            for endpoint in endpoints:
                old = self._replicas.get(endpoint.replica_id)
                if old is not None and old.endpoint.target == endpoint.target:
                    old.endpoint = endpoint
                    fresh[endpoint.replica_id] = old
                else:
                    fresh[endpoint.replica_id] = _Replica(endpoint)
                    if old is not None:
                        gone.append(old.endpoint)
            gone += [r.endpoint for rid, r in self._replicas.items() if rid not in fresh]
            self._replicas = fresh
            self._limits = self._tightest_limits()
        return gone

    def endpoints(self) -> list[ReplicaEndpoint]:
        with self._lock:
            return [r.endpoint for r in self._replicas.values()]

    def endpoint(self, replica_id: int) -> ReplicaEndpoint | None:
        with self._lock:
            replica = self._replicas.get(replica_id)
            return replica.endpoint if replica is not None else None

    # ---- the event loop's side -----------------------------------------------------------------

    def started(self, replica_id: int, target: str, priority: int = 0) -> bool:
        """A request of ours (of `priority`) went to this replica; False if it has left the set
        meanwhile."""
        with self._lock:
            replica = self._replicas.get(replica_id)
            if replica is None or replica.endpoint.target != target:
                return False
            replica.in_flight += 1
            replica.by_priority[priority] += 1
            return True

    def ended(self, replica_id: int, target: str, priority: int = 0) -> None:
        """The end of what `started` counted, with the same priority."""
        with self._lock:
            replica = self._replicas.get(replica_id)
            # the same id at another target is a new replica: it never had this request
            if replica is not None and replica.endpoint.target == target and replica.in_flight:
                replica.in_flight -= 1
                if replica.by_priority[priority] > 1:
                    replica.by_priority[priority] -= 1
                else:
                    del replica.by_priority[priority]

    def record_poll(self, endpoint: ReplicaEndpoint, stats: pb.StatsReply | None,
                    error: str = "") -> None:
        with self._lock:
            replica = self._replicas.get(endpoint.replica_id)
            if replica is None or replica.endpoint.target != endpoint.target:
                return  # it left (or moved) while the poll was out
            replica.polled_at = self.clock()
            replica.healthy = stats is not None
            replica.error = error
            if stats is not None:
                replica.stats = stats
                self._limits = self._tightest_limits()

    def mark_unhealthy(self, replica_id: int, error: str) -> None:
        """A call to it failed the way a dead replica fails; the next good poll clears it."""
        with self._lock:
            replica = self._replicas.get(replica_id)
            if replica is not None:
                replica.healthy = False
                replica.error = error

    def note_request(self, prompt_len: int, canvas_len: int) -> None:
        with self._lock:
            self._typical = self._typical.with_request(prompt_len, canvas_len)

    # ---- what the router and the controller read -----------------------------------------------

    def views(self) -> list[ReplicaView]:
        with self._lock:
            typical = self._typical
            return [
                replica_view(r.endpoint, r.stats, r.in_flight, r.healthy, typical, self.cache_mode,
                             tuple(sorted(r.by_priority.items())))
                for r in self._replicas.values()
            ]

    def request_limits(self) -> RequestLimits | None:
        """What every replica that reported its limits accepts (None before any did): read on
        every request, so kept up to date as polls come in rather than computed here."""
        return self._limits

    def _tightest_limits(self) -> RequestLimits | None:
        reported = (limits_of(r.stats) for r in self._replicas.values() if r.stats is not None)
        return tightest(x for x in reported if x is not None)

    def in_flight(self) -> dict[int, int]:
        with self._lock:
            return {rid: r.in_flight for rid, r in self._replicas.items()}

    def snapshots(self) -> list[ReplicaSnapshot]:
        with self._lock:
            return [
                ReplicaSnapshot(r.endpoint, r.in_flight, r.stats, r.polled_at, r.healthy, r.error)
                for r in sorted(self._replicas.values(), key=lambda r: r.endpoint.replica_id)
            ]
