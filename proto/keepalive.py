"""HTTP/2 keepalive for the links to replicas, so that a replica that hangs (a frozen process, a
host gone or a network cut without a TCP reset) is noticed in seconds rather than at each
request's deadline: the transport is closed when a ping goes unanswered, the calls on it end
UNAVAILABLE, and the router retries them on another replica.

Servers must accept pings that often, or gRPC answers them with GOAWAY ("too_many_pings").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keepalive:
    interval_s: float = 10.0  # a ping after this long without reads
    timeout_s: float = 5.0  # the link is dead when the ping's ack has not come by then

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"keepalive interval and timeout must be > 0, got {self}")

    def channel_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", int(self.interval_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),  # idle replicas are checked too
            ("grpc.http2.max_pings_without_data", 0),
            # any ping (flow control's too) unanswered this long closes the link: while one is
            # outstanding no keepalive ping is sent, so without this a frozen peer caught with a
            # flow-control ping in flight is only found out after gRPC's default minute
            ("grpc.http2.ping_timeout_ms", int(self.timeout_s * 1000)),
        ]


DEFAULT_KEEPALIVE = Keepalive()

# Calls the transport has received but the server has not yet handed to a handler. gRPC's own
# limits (1,000, and 3,000 at most) end the excess with a bare CANCELLED before any handler sees
# it: under 10x overload half the requests ended so (docs/reliability.md). Raised so that every
# call reaches a handler, which answers it explicitly (a refusal is decided there in
# milliseconds); past the hard limit gRPC still cancels, protecting the process's memory.
MAX_PENDING_CALLS = 50_000
MAX_PENDING_CALLS_HARD = 100_000

# what a worker or router server accepts: pings as often as once a second, with or without calls
SERVER_OPTIONS = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", MAX_PENDING_CALLS_HARD),
]
