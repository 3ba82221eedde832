"""The worker's Prometheus metrics (`dilaserve worker --metrics-port N`), on their own registry.

Per-class counts and latencies are fed by each request's event stream: the servicer wraps a
request's sink in a `MetricsSink`, which sees every event the serving loop sends (on the loop
thread) and counts the request's one ending; a client that hangs up first counts as cancelled.
Queue, rows and step time are read from a loop snapshot when Prometheus scrapes, the threshold
range and draining from the replica's Control state.

    dilaserve_worker_requests_total{slo_class}          submitted to the loop (valid requests)
    dilaserve_worker_requests_ended_total{slo_class}    finished + expired + rejected (as Stats)
    dilaserve_worker_requests_met_total{slo_class}      of those, finished within the deadline
    dilaserve_worker_{rejected,expired,cancelled,failed}_total{slo_class}
    dilaserve_worker_refused_total{reason}              invalid, or sent while draining
    dilaserve_worker_e2e_seconds{slo_class}             histogram of finished requests
    dilaserve_worker_{queued,running_rows,in_flight,max_rows}
    dilaserve_worker_threshold_{min,max}, dilaserve_worker_draining
    dilaserve_worker_step_seconds                       median of the last 1000 steps
    dilaserve_worker_predicted_step_seconds, dilaserve_worker_steps_total
    dilaserve_worker_machine_scale                      the factor the step-cost profile is
                                                        scaled by (dilaserve.profiles.machine_scale)
    dilaserve_worker_workload_speed                     tokens per step over the quality profile's,
                                                        learned (worker.scheduler.predictor)

Attainment per class is requests_met_total / requests_ended_total.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dilaserve.core.steps import FinishReason
from worker.service.events import (
    Event,
    FailedResult,
    Failure,
    FinalResult,
    LoopStats,
    RequestSink,
)

PREFIX = "dilaserve_worker"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SNAPSHOT_TIMEOUT_S = 2.0  # a scrape waits at most this long for the loop to finish its step


class WorkerMetrics:
    def __init__(self, loop, replica, classes: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry()
        r, by_class = self.registry, ["slo_class"]
        self.requests = Counter(f"{PREFIX}_requests", "requests submitted", by_class, registry=r)
        self.ended = Counter(
            f"{PREFIX}_requests_ended", "finished, expired or rejected", by_class, registry=r
        )
        self.met = Counter(
            f"{PREFIX}_requests_met", "finished within their deadline", by_class, registry=r
        )
        self.rejected = Counter(f"{PREFIX}_rejected", "refused at admission", by_class, registry=r)
        self.expired = Counter(
            f"{PREFIX}_expired", "deadline passed (not best-effort)", by_class, registry=r
        )
        self.cancelled = Counter(
            f"{PREFIX}_cancelled", "cancelled by the client or at shutdown", by_class, registry=r
        )
        self.failed = Counter(
            f"{PREFIX}_failed", "engine error or shutdown before a result", by_class, registry=r
        )
        self.refused = Counter(
            f"{PREFIX}_refused", "not submitted: invalid or draining", ["reason"], registry=r
        )
        self.e2e = Histogram(
            f"{PREFIX}_e2e_seconds",
            "arrival to final message, finished requests",
            by_class,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        for name in classes:  # every class has a series from the start, at 0
            for metric in (self.requests, self.ended, self.met, self.rejected, self.expired,
                           self.cancelled, self.failed, self.e2e):
                metric.labels(name)
        for reason in ("invalid", "draining"):
            self.refused.labels(reason)
        r.register(LoopCollector(loop, replica))

    def observing(self, slo_class: str, sink: RequestSink) -> MetricsSink:
        """Count a submitted request and watch its events on their way to `sink`."""
        self.requests.labels(slo_class).inc()
        return MetricsSink(self, slo_class, sink)

    def on_refused(self, reason: str) -> None:
        self.refused.labels(reason).inc()


class MetricsSink:
    """Passes every event on; the first ending (the loop's, or the client's hang-up) is counted."""

    def __init__(self, metrics: WorkerMetrics, slo_class: str, sink: RequestSink) -> None:
        self._m = metrics
        self._class = slo_class
        self._sink = sink
        self._lock = threading.Lock()
        self._ended = False

    def send(self, event: Event) -> None:
        if isinstance(event, FinalResult | FailedResult) and self._first_ending():
            self._count(event)
        self._sink.send(event)

    def client_gone(self) -> None:
        """The handler ended before the request did (client cancel, gRPC deadline)."""
        if self._first_ending():
            self._m.cancelled.labels(self._class).inc()

    def _first_ending(self) -> bool:
        with self._lock:
            first, self._ended = not self._ended, True
            return first

    def _count(self, event: FinalResult | FailedResult) -> None:
        m, c = self._m, self._class
        if isinstance(event, FinalResult):
            if event.finish_reason is FinishReason.CANCELLED:  # stopped at shutdown
                m.cancelled.labels(c).inc()
                return
            m.ended.labels(c).inc()
            if event.deadline_met:
                m.met.labels(c).inc()
            m.e2e.labels(c).observe(event.e2e_ms / 1e3)
        elif event.failure is Failure.REJECTED:
            m.ended.labels(c).inc()
            m.rejected.labels(c).inc()
        elif event.failure is Failure.EXPIRED:
            m.ended.labels(c).inc()
            m.expired.labels(c).inc()
        else:
            m.failed.labels(c).inc()


class LoopCollector:
    """Gauges read at scrape time: a loop snapshot (one per scrape) and the replica's state."""

    def __init__(self, loop, replica) -> None:
        self.loop = loop  # ServingLoop: stats_future()
        self.replica = replica  # ReplicaState: threshold_range, draining

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None)

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.loop.stats_future().result(timeout=SNAPSHOT_TIMEOUT_S)
        except Exception:  # stopped, or busy past the timeout: the loop gauges are left out
            stats = None
        yield from self._families(stats)

    def _families(self, s: LoopStats | None) -> Iterator[Metric]:
        t = self.replica.threshold_range
        yield _gauge("threshold_min", "lowest threshold load control may use", t.min)
        yield _gauge("threshold_max", "the threshold requests start at", t.max)
        yield _gauge("draining", "1 while draining (not admitting)", float(self.replica.draining))
        if s is None:
            return
        yield _gauge("queued", "requests waiting for a row", s.queued)
        yield _gauge("running_rows", "requests resident in engine rows", s.running)
        yield _gauge("in_flight", "accepted requests not yet ended", s.in_flight)
        yield _gauge("max_rows", "engine rows", s.max_rows)
        step = s.median_step_ms / 1e3 if not math.isnan(s.median_step_ms) else 0.0
        yield _gauge("step_seconds", "median step time over the last 1000 steps", step)
        yield _gauge("predicted_step_seconds", "the step-cost model's last prediction",
                     s.predicted_step_ms / 1e3)
        yield CounterMetricFamily(f"{PREFIX}_steps", "engine steps", value=s.steps)
        yield _gauge("machine_scale", "the factor this machine's steps scale the step-cost "
                     "profile by (1: within 10%, or not calibrated)", s.machine_scale)
        yield _gauge("workload_speed", "tokens committed per step over the quality profile's, "
                     "learned over recent steps (new requests are predicted with it)",
                     s.workload_speed)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


class MetricsServer:
    """The /metrics HTTP endpoint on its own thread (port 0: any free port)."""

    def __init__(self, metrics: WorkerMetrics, host: str, port: int) -> None:
        self._httpd, self._thread = start_http_server(port, addr=host, registry=metrics.registry)
        self.host = host
        self.port = self._httpd.server_port

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


def serve_metrics(worker, host: str, port: int) -> MetricsServer:
    """Count `worker`'s requests (call before its server starts) and serve them on host:port."""
    classes = [c.name for c in worker.policy.classes]
    worker.metrics = WorkerMetrics(worker.loop, worker.replica, classes)
    return MetricsServer(worker.metrics, host, port)
