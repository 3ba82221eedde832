"""The router's Prometheus metrics, on their own registry (served when a metrics port is given).

Counts come from the router's bookkeeping and the replica pool when Prometheus scrapes (one
source of truth with Stats); only latencies are observed as requests end.

    dilaserve_router_requests_total{slo_class}              requests that arrived in the class
                                                            (valid, or refused at the call limit)
    dilaserve_router_requests_ended_total{slo_class}        met + late + expired + shed +
                                                            overloaded + rejected
    dilaserve_router_requests_met_total{slo_class}
    dilaserve_router_attainment{slo_class}                  met / ended (1 when none ended)
    dilaserve_router_endings_total{slo_class,ending}        every ending (bookkeeping.Ending)
    dilaserve_router_shed_total{slo_class}                  refused by the router at once
                                                            (shed or overloaded)
    dilaserve_router_restarts_total                         restarted on another replica
    dilaserve_router_e2e_seconds{slo_class}                 histogram: arrival (at the transport:
                                                            loop_lag.py) to final message
    dilaserve_router_decision_seconds{decision}             histogram: the handler's start to the
                                                            decision (refused, or routed: first
                                                            offered)
    dilaserve_router_loop_lag_seconds                       the event loop's lateness (loop_lag.py)
    dilaserve_router_replica_{in_flight,queued,running,threshold_min,threshold_max,healthy}
                                                            {replica,target,state}
    dilaserve_router_replicas{node_type,tp,state}           replicas per layout and state
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from orchestrator.service.bookkeeping import REFUSED_AT_ARRIVAL, BookSnapshot, Ending
from orchestrator.service.replica_pool import ReplicaSnapshot

PREFIX = "dilaserve_router"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
DECISION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class RouterMetrics:
    def __init__(self, book: Callable[[], BookSnapshot],
                 replicas: Callable[[], list[ReplicaSnapshot]]) -> None:
        self.registry = CollectorRegistry()
        self.e2e = Histogram(f"{PREFIX}_e2e_seconds", "arrival at the router's transport to "
                             "final message",
                             ["slo_class"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.decision = Histogram(f"{PREFIX}_decision_seconds", "the router's handler's start "
                                  "to its decision: refused, or routed (first offered to a "
                                  "replica)",
                                  ["decision"], buckets=DECISION_BUCKETS, registry=self.registry)
        self.loop_lag = Gauge(f"{PREFIX}_loop_lag_seconds", "how late the router's event loop "
                              "runs (smoothed): a new call's estimated wait before its handler",
                              registry=self.registry)
        self.registry.register(_Collector(book, replicas))
        self._server = None

    def observe_e2e(self, slo_class: str, seconds: float) -> None:
        self.e2e.labels(slo_class).observe(seconds)

    def observe_decision(self, seconds: float, refused: bool) -> None:
        self.decision.labels("refused" if refused else "routed").observe(seconds)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics over HTTP; returns the port (an ephemeral one for 0)."""
        server, _ = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Collector:
    def __init__(self, book: Callable[[], BookSnapshot],
                 replicas: Callable[[], list[ReplicaSnapshot]]) -> None:
        self._book = book
        self._replicas = replicas

    def collect(self) -> Iterator[Metric]:
        yield from self._classes(self._book())
        yield from self._per_replica(self._replicas())

    def _classes(self, book: BookSnapshot) -> Iterator[Metric]:
        by_class = ["slo_class"]
        requests = CounterMetricFamily(f"{PREFIX}_requests", "requests that arrived",
                                       labels=by_class)
        ended = CounterMetricFamily(f"{PREFIX}_requests_ended", "met, late, expired, shed, "
                                    "overloaded or rejected", labels=by_class)
        met = CounterMetricFamily(f"{PREFIX}_requests_met", "finished within their deadline",
                                  labels=by_class)
        shed = CounterMetricFamily(f"{PREFIX}_shed", "refused by the router", labels=by_class)
        endings = CounterMetricFamily(f"{PREFIX}_endings", "requests by how they ended",
                                      labels=["slo_class", "ending"])
        attainment = GaugeMetricFamily(f"{PREFIX}_attainment", "met / ended", labels=by_class)
        for c in book.classes:
            requests.add_metric([c.name], c.requests)
            ended.add_metric([c.name], c.ended)
            met.add_metric([c.name], c.met)
            shed.add_metric([c.name], sum(c.count(e) for e in REFUSED_AT_ARRIVAL))
            attainment.add_metric([c.name], c.attainment)
            for ending in Ending:
                endings.add_metric([c.name, ending.value], c.count(ending))
        restarts = CounterMetricFamily(f"{PREFIX}_restarts", "requests restarted on another "
                                       "replica after one failed", value=book.restarts)
        yield from (requests, ended, met, shed, endings, attainment, restarts)

    def _per_replica(self, replicas: list[ReplicaSnapshot]) -> Iterator[Metric]:
        labels = ["replica", "target", "state"]
        gauges = {
            name: GaugeMetricFamily(f"{PREFIX}_replica_{name}", help_text, labels=labels)
            for name, help_text in (
                ("in_flight", "the router's requests on the replica"),
                ("queued", "queued at the replica (last poll)"),
                ("running", "rows running at the replica (last poll)"),
                ("threshold_min", "the replica's lowest threshold (last poll)"),
                ("threshold_max", "the replica's starting threshold (last poll)"),
                ("healthy", "1 if its last poll succeeded"),
            )
        }
        layouts = GaugeMetricFamily(f"{PREFIX}_replicas", "replicas per layout and state",
                                    labels=["node_type", "tp", "state"])
        counts: dict[tuple[str, str, str], int] = {}
        for r in replicas:
            layout = (r.endpoint.config.node_type, str(r.endpoint.config.tp),
                      r.endpoint.state.value)
            counts[layout] = counts.get(layout, 0) + 1
        for layout, n in sorted(counts.items()):
            layouts.add_metric(list(layout), n)
        yield layouts
        for r in replicas:
            e = r.endpoint
            key = [str(e.replica_id), e.target, e.state.value]
            s = r.stats
            gauges["in_flight"].add_metric(key, r.in_flight)
            gauges["healthy"].add_metric(key, 1.0 if r.healthy else 0.0)
            gauges["queued"].add_metric(key, s.queued if s else 0)
            gauges["running"].add_metric(key, s.running if s else 0)
            low, high = (s.min_threshold, s.max_threshold) if s else (
                e.config.threshold_min, e.config.threshold_max)
            gauges["threshold_min"].add_metric(key, low)
            gauges["threshold_max"].add_metric(key, high)
        yield from gauges.values()
