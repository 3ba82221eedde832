"""The worker's Prometheus metrics: scraped over HTTP after real requests on the shipped model, and
the per-request counting rules (one ending per request, whoever ends it first)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import Future
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dilaserve.cli.main import main
from dilaserve.core.steps import FinishReason
from dilaserve.policy import ThresholdRange, load_policy
from tests.net import free_port
from worker.client import WorkerClient, WorkerError
from worker.service.events import FailedResult, Failure, FinalResult, PartialResult
from worker.service.metrics import WorkerMetrics, serve_metrics
from worker.service.server import ServerThread
from worker.service.servicer import ControlState
from worker.service.setup import load_worker

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "deploy" / "policies" / "default.yaml"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def by_class(name: str, slo_class: str) -> tuple[str, tuple]:
    return (name, (("slo_class", slo_class),))


@pytest.mark.slow
def test_scrape_after_real_requests_on_the_shipped_model():
    worker = load_worker(None, load_policy(POLICY))
    metrics = serve_metrics(worker, "127.0.0.1", 0)
    server = ServerThread(worker)
    server.start()
    try:
        with WorkerClient(server.target) as client:
            done = [client.generate(p, 32) for p in ("sort:0482397>", "rev:hello>")]
            done.append(client.generate("sort:3141>", 32, slo_class="interactive"))
            with pytest.raises(WorkerError) as rejected:  # cannot finish in 1 ms
                client.generate("rev:abcdefgh>", 128, deadline_ms=1, commit_rule="topk")
            assert rejected.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(WorkerError):
                client.generate("sort:11>", 8, slo_class="gold")
            stats = client.stats()
            got = scrape(metrics.port)
            client.control(threshold_range=(0.6, 0.8))
            after_control = scrape(metrics.port)
    finally:
        server.stop()
        metrics.stop()
    standard = [g for g in done if g.slo_class == "standard"]
    assert got[by_class("dilaserve_worker_requests_total", "standard")] == 3
    assert got[by_class("dilaserve_worker_requests_total", "interactive")] == 1
    assert got[by_class("dilaserve_worker_requests_total", "batch")] == 0  # a series from start
    assert got[by_class("dilaserve_worker_requests_ended_total", "standard")] == 3
    assert got[by_class("dilaserve_worker_requests_met_total", "standard")] == sum(
        g.deadline_met for g in standard
    )
    assert got[by_class("dilaserve_worker_rejected_total", "standard")] == 1
    assert got[("dilaserve_worker_refused_total", (("reason", "invalid"),))] == 1
    assert got[by_class("dilaserve_worker_e2e_seconds_count", "standard")] == 2
    assert got[by_class("dilaserve_worker_e2e_seconds_sum", "standard")] == pytest.approx(
        sum(g.e2e_ms for g in standard) / 1e3
    )
    bucket = ("dilaserve_worker_e2e_seconds_bucket", (("le", "+Inf"), ("slo_class", "standard")))
    assert got[bucket] == 2
    assert got[("dilaserve_worker_queued", ())] == 0
    assert got[("dilaserve_worker_running_rows", ())] == 0
    assert got[("dilaserve_worker_in_flight", ())] == 0
    assert got[("dilaserve_worker_steps_total", ())] == stats.steps > 0
    assert got[("dilaserve_worker_step_seconds", ())] > 0
    assert got[("dilaserve_worker_machine_scale", ())] == stats.machine_scale > 0
    assert got[("dilaserve_worker_workload_speed", ())] > 0
    assert (got[("dilaserve_worker_threshold_min", ())],
            got[("dilaserve_worker_threshold_max", ())]) == (0.5, 0.9)
    assert (after_control[("dilaserve_worker_threshold_min", ())],
            after_control[("dilaserve_worker_threshold_max", ())]) == (0.6, 0.8)


@pytest.mark.slow
def test_dilaserve_worker_metrics_port():
    metrics_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dilaserve.cli.main", "worker", "--policy", str(POLICY),
         "--port", "0", "--metrics-port", str(metrics_port), "--grace-s", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )
    try:
        serving, announced = proc.stdout.readline(), proc.stdout.readline()
        assert "serving" in serving, proc.stderr.read() if proc.poll() is not None else serving
        assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in announced
        with WorkerClient(serving.split(" on ")[1].split()[0]) as client:
            result = client.generate("sort:0482397>", 32)
        got = scrape(metrics_port)
        assert got[by_class("dilaserve_worker_requests_total", "standard")] == 1
        assert got[by_class("dilaserve_worker_e2e_seconds_sum", "standard")] == pytest.approx(
            result.e2e_ms / 1e3
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_bad_metrics_port_is_a_clear_error(capsys):
    assert main(["worker", "--port", "5000", "--metrics-port", "70000"]) == 2
    assert "--metrics-port: must be in [0, 65535]" in capsys.readouterr().err
    assert main(["worker", "--port", "5000", "--metrics-port", "5000"]) == 2


# ---- counting rules, without a server ----------------------------------------------------------


class StoppedLoop:
    """A loop that has stopped: a scrape leaves the loop gauges out."""

    def stats_future(self) -> Future:
        future: Future = Future()
        future.set_exception(RuntimeError("the serving loop has stopped"))
        return future


class Inbox:
    def __init__(self) -> None:
        self.events = []

    def send(self, event) -> None:
        self.events.append(event)


def final(reason: str = "eos", met: bool = True, e2e_ms: float = 40.0) -> FinalResult:
    return FinalResult("r", "", (), FinishReason(reason), met, 0, 0, e2e_ms, 0.9, 0.9, 0.9, 1,
                       32, "a", 100, 3)


@pytest.fixture
def metrics() -> WorkerMetrics:
    return WorkerMetrics(StoppedLoop(), ControlState(ThresholdRange(0.5, 0.9)), ["a"])


def value(m: WorkerMetrics, name: str) -> float:
    return m.registry.get_sample_value(f"dilaserve_worker_{name}", {"slo_class": "a"})


def test_every_event_passes_through_and_the_ending_is_counted_once(metrics):
    inbox = Inbox()
    sink = metrics.observing("a", inbox)
    events = [PartialResult("r", 0, (), "", 1.0, 0.9), final(met=False, e2e_ms=250.0)]
    for event in events:
        sink.send(event)
    sink.client_gone()  # the handler noticed the hang-up after the loop's final: not a cancel
    assert inbox.events == events
    assert (value(metrics, "requests_total"), value(metrics, "requests_ended_total"),
            value(metrics, "requests_met_total"), value(metrics, "cancelled_total")) == (1, 1, 0, 0)
    assert value(metrics, "e2e_seconds_sum") == pytest.approx(0.25)
    le = {"slo_class": "a", "le": "0.25"}
    assert metrics.registry.get_sample_value("dilaserve_worker_e2e_seconds_bucket", le) == 1


def test_a_client_hang_up_first_is_a_cancel_and_later_endings_are_not_counted(metrics):
    sink = metrics.observing("a", Inbox())
    sink.client_gone()
    sink.send(FailedResult("r", Failure.EXPIRED, "late"))
    assert (value(metrics, "cancelled_total"), value(metrics, "expired_total"),
            value(metrics, "requests_ended_total")) == (1, 0, 0)


@pytest.mark.parametrize(
    ("event", "counted"),
    [
        (FailedResult("r", Failure.REJECTED, ""), {"rejected_total", "requests_ended_total"}),
        (FailedResult("r", Failure.EXPIRED, ""), {"expired_total", "requests_ended_total"}),
        (FailedResult("r", Failure.ENGINE_ERROR, ""), {"failed_total"}),
        (FailedResult("r", Failure.UNAVAILABLE, ""), {"failed_total"}),
        (final(reason="cancelled"), {"cancelled_total"}),  # stopped at shutdown
        (final(), {"requests_ended_total", "requests_met_total"}),
    ],
)
def test_each_ending_has_its_counter(metrics, event, counted):
    metrics.observing("a", Inbox()).send(event)
    names = ("rejected_total", "expired_total", "failed_total", "cancelled_total",
             "requests_ended_total", "requests_met_total")
    assert {n for n in names if value(metrics, n) == 1} == counted


def test_a_stopped_loop_leaves_out_the_loop_gauges(metrics):
    names = {m.name for m in metrics.registry.collect()}
    assert "dilaserve_worker_threshold_min" in names
    assert "dilaserve_worker_queued" not in names
