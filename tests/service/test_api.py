"""The Generate service end to end on a real port: streaming, endings, Stats, Control, health."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from proto import dilaserve_pb2 as pb
from tests.service.helpers import (
    FailingEngine,
    SlowEngine,
    make_worker,
    policy_for_tests,
    serving,
)
from tests.waiting import wait_for
from worker.client import WorkerClient, WorkerError, generate_request

ONE_PER_STEP = {"commit_rule": "topk"}  # one token a step: a request's step count is its canvas




@pytest.mark.slow
def test_round_trip_streams_partials_then_final():
    with serving() as (_, client):
        result = client.generate("abc+12", 24, request_id="r1")
        assert result.request_id == "r1"
        assert [p.block_index for p in result.partials] == [0, 1, 2]
        assert "".join(p.text for p in result.partials) == result.text
        assert result.finish_reason in ("eos", "length")
        assert result.deadline_met
        assert result.slo_class == "standard" and result.deadline_s == pytest.approx(20.0)
        assert result.threshold_start == pytest.approx(0.9)
        assert result.forwards > 0 and result.block_size == 8
        assert 0 <= result.queued_ms <= result.first_block_ms <= result.e2e_ms
        assert result.replica_e2e_ms == result.e2e_ms  # called directly: the replica's own
        stats = client.stats()
        assert (stats.accepted, stats.finished, stats.deadline_met) == (1, 1, 1)
        assert stats.step_cost_samples > 0 and stats.steps == stats.step_cost_samples
        assert stats.step_cost_error >= 0 and stats.step_cost_prior_error >= 0
        # the counters a calibration reads: measured steps, their predictions, the loop's time
        assert 0 < stats.step_seconds <= stats.busy_seconds
        assert stats.step_prior_seconds > 0


@pytest.mark.slow
def test_token_ids_in_and_out():
    with serving() as (_, client):
        result = client.generate([5, 6, 7], 8)
        assert len(result.token_ids) <= 8


@pytest.mark.slow
def test_rejected_at_admission_gets_resource_exhausted_and_no_message():
    with serving() as (_, client):
        call = client.stream(generate_request("abc", 64, deadline_ms=5, **ONE_PER_STEP))
        with pytest.raises(grpc.RpcError) as err:
            next(iter(call))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "infeasible" in err.value.details()
        assert client.stats().rejected == 1


def _expires(client, max_new_tokens: int, **call) -> tuple[WorkerError, pb.StatsReply]:
    """A request a fresh worker admits (its prior step cost predicts ~1 ms steps; SlowEngine's
    take 20 ms) that then runs out of time: its error, and the stats once its row is freed."""
    with pytest.raises(WorkerError) as err:
        client.generate("abc", max_new_tokens, **call, **ONE_PER_STEP)
    assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    return err.value, wait_for(lambda: (s := client.stats()).running == 0 and s)


@pytest.mark.slow
def test_non_best_effort_past_deadline_gets_deadline_exceeded():
    with serving(make_worker(engine_class=SlowEngine)) as (_, client):
        err, stats = _expires(client, 32, deadline_ms=150)
        assert "not best-effort" in err.details
        assert stats.expired == 1 and stats.finished == 0


@pytest.mark.slow
def test_best_effort_finishes_late_with_deadline_met_false():
    with serving(make_worker(engine_class=SlowEngine)) as (_, client):
        result = client.generate("abc", 16, deadline_ms=60, slo_class="batch", **ONE_PER_STEP)
        assert not result.deadline_met
        assert result.e2e_ms > 60 and len(result.partials) == 2


@pytest.mark.slow
def test_client_cancel_frees_the_row():
    with serving(make_worker(engine_class=SlowEngine)) as (_, client):
        call = client.stream(generate_request("abc", 64, **ONE_PER_STEP))
        first = next(iter(call))
        assert first.HasField("partial")
        assert client.stats().running == 1
        call.cancel()
        stats = wait_for(lambda: (s := client.stats()).running == 0 and s)
        assert stats.cancelled == 1 and stats.queued == 0


@pytest.mark.slow
def test_grpc_deadline_earlier_than_slo_deadline_wins():
    with serving(make_worker(engine_class=SlowEngine)) as (_, client):
        _, stats = _expires(client, 64, timeout=0.2)  # the gRPC deadline ends it
        assert stats.expired + stats.cancelled == 1
        quick = client.generate("abc", 8, timeout=5.0)
        assert quick.deadline_s < 5.1  # the call said 5 s (gRPC rounds up); the class 20 s


@pytest.mark.slow
def test_health_and_reflection():
    with serving() as (server, client):
        assert client.health() == "SERVING"
        assert client.health("dilaserve.v1.Generate") == "SERVING"
        database = ProtoReflectionDescriptorDatabase(client.channel)
        services = database.get_services()
        assert "dilaserve.v1.Generate" in services and "grpc.health.v1.Health" in services
        described = database.FindFileContainingSymbol("dilaserve.v1.Generate")
        assert described.name == "proto/dilaserve.proto"


@pytest.mark.slow
def test_control_threshold_range_applies_to_new_requests():
    with serving() as (_, client):
        reply = client.control(threshold_range=(0.6, 0.95))
        assert (reply.threshold_range.min, reply.threshold_range.max) == pytest.approx((0.6, 0.95))
        assert client.generate("abc", 8).threshold_start == pytest.approx(0.95)
        stats = client.stats()
        assert (stats.min_threshold, stats.max_threshold) == pytest.approx((0.6, 0.95))
        with pytest.raises(WorkerError) as err:
            client.control(threshold_range=(0.9, 0.5))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "threshold_range" in err.value.details


@pytest.mark.slow
def test_drain_refuses_new_requests_and_finishes_those_in_flight():
    with serving(make_worker(engine_class=SlowEngine)) as (_, client):
        results = []
        runner = threading.Thread(
            target=lambda: results.append(client.generate("abc", 16, **ONE_PER_STEP))
        )
        runner.start()
        wait_for(lambda: client.stats().running == 1)
        reply = client.control(drain=True)
        assert reply.draining and reply.in_flight == 1
        assert client.health() == "NOT_SERVING"
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 8)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        runner.join(10)
        assert results and results[0].finish_reason in ("eos", "length")
        client.control(drain=False)
        assert client.health() == "SERVING"
        assert client.generate("abc", 8).deadline_met


@pytest.mark.slow
def test_engine_failure_fails_requests_in_flight_and_keeps_serving():
    FailingEngine.steps = 0
    with serving(make_worker(engine_class=FailingEngine)) as (_, client):
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 32, **ONE_PER_STEP)
        assert err.value.code == grpc.StatusCode.INTERNAL
        assert "injected engine failure" in err.value.details
        assert client.generate("abc", 8).finish_reason in ("eos", "length")
        assert client.stats().failed == 1


@pytest.mark.slow
def test_duplicate_request_id_in_flight_is_refused():
    with serving(make_worker(engine_class=SlowEngine)) as (_, client):
        call = client.stream(generate_request("abc", 32, request_id="same", **ONE_PER_STEP))
        next(iter(call))
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 8, request_id="same")
        assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
        call.cancel()


@pytest.mark.slow
def test_shutdown_stops_requests_past_the_grace_period_with_a_final_message():
    server_and_client = serving(make_worker(engine_class=SlowEngine))
    server, client = server_and_client.__enter__()
    try:
        call = client.stream(generate_request("abc", 64, **ONE_PER_STEP))
        stream = iter(call)
        next(stream)
        server.stop(grace_s=0.05)
        last = list(stream)[-1]
        assert last.final.finish_reason == 3  # FINISH_REASON_CANCELLED
        assert not last.final.deadline_met
    finally:
        server_and_client.__exit__(None, None, None)


@pytest.mark.slow
def test_class_floor_and_request_floor_take_the_strictest():
    with serving(make_worker(policy_for_tests())) as (_, client):
        strict = client.generate("abc", 8, slo_class="strict", threshold=0.6)
        assert strict.threshold_start == pytest.approx(0.8)  # raised to the class floor
        own = client.generate("abc", 8, min_threshold=0.95)
        assert own.threshold_start == pytest.approx(0.95) and own.threshold_min >= 0.95


@pytest.mark.slow
def test_async_client_round_trip():
    import asyncio

    from worker.client import AsyncWorkerClient

    async def main(target: str):
        async with AsyncWorkerClient(target) as client:
            results = await asyncio.gather(*(client.generate("abc", 8) for _ in range(4)))
            return results, await client.stats(), await client.health()

    with serving() as (server, _):
        results, stats, health = asyncio.run(main(server.target))
        assert len(results) == 4 and all(r.deadline_met for r in results)
        assert stats.finished == 4 and health == "SERVING"


def test_sync_client_needs_a_server():
    with WorkerClient("127.0.0.1:1") as client, pytest.raises(WorkerError) as err:
        client.stats(timeout=0.5)
    assert err.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.slow
def test_a_cancel_from_another_submission_of_the_same_id_stops_nothing():
    """A duplicate's handler that ends early cancels by request id; the request in flight under
    that id belongs to another client, who must still get its final message (this hung the
    10,000-request property test about once in ten runs)."""
    import queue as queue_module
    import time as time_module

    from worker.service.events import FinalResult

    class Sink:
        def __init__(self) -> None:
            self.events: queue_module.Queue = queue_module.Queue()

        def send(self, event) -> None:
            self.events.put(event)

    with serving(make_worker(engine_class=SlowEngine)) as (server, client):
        worker = server.server.worker
        request = generate_request("abc", 16, request_id="same", **ONE_PER_STEP)
        spec = worker.validator.prepare(request, time_module.monotonic(), None,
                                        worker.replica.threshold_range)
        owner, other = Sink(), Sink()
        worker.loop.submit(spec, owner)
        worker.loop.cancel("same", other)
        events = []
        while not isinstance(event := owner.events.get(timeout=30), FinalResult):
            events.append(event)
        assert event.finish_reason != "cancelled"
        assert client.stats().cancelled == 0
