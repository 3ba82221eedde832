"""The router's gRPC server (`orchestrator.service.RouterServer`) in a Ray actor, so that the
controller can push it the replica set and read its load wherever either runs."""

from __future__ import annotations

import time

from dilaserve.policy import Policy
from dilaserve.policy.cluster import ClusterSettings


class RouterActor:
    def __init__(self, policy: Policy, cluster: ClusterSettings) -> None:
        from dilaserve.core.locations import SHIPPED_MODEL_DIR
        from orchestrator.router import make_router
        from orchestrator.service import RouterServer
        from worker.models.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(cluster.model or SHIPPED_MODEL_DIR)
        self.server = RouterServer(policy, tokenizer, make_router(cluster.router_kind),
                                   host=cluster.router_host,
                                   port=cluster.router_port, metrics_port=cluster.metrics_port,
                                   http_port=cluster.router_http_port,
                                   max_calls=cluster.router_max_calls,
                                   tls=cluster.router_tls, tokens=cluster.router_tokens,
                                   replica_tls=cluster.replica_tls)

    def start(self) -> str:
        self.server.start()
        return self.server.target

    def http_url(self) -> str:
        """The OpenAI-compatible API's base URL ("" when off)."""
        return self.server.http_url

    def set_replicas(self, endpoints: list) -> None:
        self.server.set_replicas(endpoints)

    def set_routes(self, routes: list) -> None:
        self.server.set_routes(routes)

    def set_policy(self, policy: Policy) -> None:
        self.server.set_policy(policy)

    def take_arrivals(self) -> tuple[list, float]:
        """Arrivals since the last call, and this process's clock (the caller rebases them)."""
        return self.server.take_arrivals(), time.monotonic()

    def replica_views(self) -> list:
        return self.server.replica_views()

    def in_flight(self) -> dict[int, int]:
        return self.server.in_flight()

    def summary(self) -> dict:
        return self.server.summary()

    def stop(self, grace_s: float = 5.0) -> None:
        self.server.stop(grace_s)
