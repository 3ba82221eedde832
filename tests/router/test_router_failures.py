"""What the router does when a request cannot simply run: shed, refusals, replica failures and
removals, deadlines, cancels."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from dilaserve.profiles.step_cost import StepCostModel
from tests.router.helpers import (
    ONE_PER_STEP,
    FixedOrder,
    StuckEngine,
    endpoint,
    kill,
    plain_worker,
    routing,
    slow_worker,
    wait_for,
    workers,
)
from tests.service.helpers import (
    MODEL,
    TOKENIZER,
    make_worker,
    policy_for_tests,
    synthetic_quality,
)
from worker.client import WorkerClient, WorkerError, generate_request
from worker.service.setup import build_worker

pytestmark = pytest.mark.slow


def test_sheds_at_once_what_no_replica_can_finish_in_time_but_never_best_effort():
    with workers(plain_worker()) as servers, routing(servers) as (router, client):
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 64, deadline_ms=1, **ONE_PER_STEP)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.details.startswith("shed: predicted")
        with WorkerClient(servers[0].target) as direct:
            assert direct.stats().accepted == 0  # the worker never saw it
        late = client.generate("abc", 16, deadline_ms=1, slo_class="batch", **ONE_PER_STEP)
        assert not late.deadline_met and late.replica == "0"
        stats = client.stats()
        assert stats.shed == 1 and stats.rejected == 1 and stats.finished == 1
        # the shed request is load the controller must see, as the served one is
        assert [a.slo_class for a in router.take_arrivals()] == ["standard", "batch"]


def test_a_refusal_passes_the_request_to_the_next_choice_and_all_refusing_rejects_it():
    pessimist = build_worker(MODEL, TOKENIZER, policy_for_tests(), synthetic_quality(),
                             StepCostModel((0.2, 0.0, 0.0, 0.0)))  # predicts 0.2 s steps
    with workers(pessimist, plain_worker()) as servers, \
            routing(servers, router=FixedOrder(0, 1)) as (router, client):
        result = client.generate("abc", 64, deadline_ms=3000, **ONE_PER_STEP)
        assert result.replica == "1" and not result.restarts
        with WorkerClient(servers[0].target) as zero:
            assert zero.stats().rejected == 1
        router.set_replicas([endpoint(0, servers[0])])
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 64, deadline_ms=3000, **ONE_PER_STEP)
        assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "every replica offered the request refused it: replica 0:" in err.value.details
        assert client.stats().rejected == 1  # the router's count: one request, not two


def _stream_until_first_partial(client: WorkerClient, request):
    call = client.stream(request)
    stream = iter(call)
    first = next(stream)
    assert first.HasField("partial")
    return call, stream


def _serving_replica(router) -> int:
    """The replica the router has a request in flight on."""
    busy = wait_for(lambda: [i for i, n in router.in_flight().items() if n])
    return busy[0]


@pytest.mark.parametrize("how", ["killed", "stopped"])
def test_a_replica_that_fails_mid_stream_restarts_the_request_on_another(how: str):
    with workers(slow_worker(), slow_worker()) as servers, routing(servers) as (router, client):
        request = generate_request("abc", 24, request_id="r", deadline_ms=20_000, **ONE_PER_STEP)
        call, stream = _stream_until_first_partial(client, request)
        failed = _serving_replica(router)
        if how == "killed":  # the connection drops: UNAVAILABLE or CANCELLED mid-stream
            kill(servers[failed])
        else:  # shutdown past its grace: the worker ends the request with a CANCELLED final
            threading.Thread(target=servers[failed].stop, kwargs={"grace_s": 0.0}).start()
        rest = list(stream)
        kinds = [m.WhichOneof("kind") for m in rest]
        restart = kinds.index("restarted")
        assert rest[restart].restarted.request_id == "r" and rest[restart].restarted.attempt == 1
        assert f"replica {failed} failed" in rest[restart].restarted.reason
        after = [m.partial.block_index for m in rest[restart + 1:] if m.HasField("partial")]
        assert after == [0, 1, 2] and kinds[-1] == "final"
        final = rest[-1].final
        assert final.replica == str(1 - failed) and final.deadline_met
        assert final.deadline_ms == pytest.approx(20_000)
        stats = client.stats()
        assert stats.restarts == 1 and stats.finished == 1
        assert router.in_flight() == {0: 0, 1: 0}


def test_a_failed_replica_with_nowhere_else_to_go_ends_with_unavailable():
    with workers(slow_worker()) as servers, routing(servers) as (router, client):
        call, stream = _stream_until_first_partial(
            client, generate_request("abc", 24, deadline_ms=20_000, **ONE_PER_STEP))
        kill(servers[0])
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "none is accepting besides replicas [0], which failed it" in err.value.details()
        assert not router.summary()["replicas"][0]["healthy"]


def test_a_request_whose_deadline_passed_when_its_replica_left_gets_deadline_exceeded():
    with workers(make_worker(engine_class=StuckEngine), plain_worker()) as servers, \
            routing(servers, router=FixedOrder(0, 1)) as (router, client):
        outcome = []

        def run():
            try:
                client.generate("abc", 8, deadline_ms=300, **ONE_PER_STEP)
            except WorkerError as err:
                outcome.append(err)

        runner = threading.Thread(target=run)
        sent = time.monotonic()
        runner.start()
        wait_for(lambda: router.in_flight()[0] == 1)
        # past its deadline (300 ms, with a margin), still inside replica 0's first step
        wait_for(lambda: time.monotonic() - sent > 0.4, what="the request's deadline")
        router.set_replicas([endpoint(1, servers[1])])  # replica 0 leaves the set
        runner.join(10)
        (err,) = outcome
        assert err.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "SLO deadline of 300.0 ms passed" in err.details
        assert "a replica failed it 1 time(s)" in err.details
        wait_for(lambda: router.summary()["classes"]["standard"]["expired"] == 1)
        with WorkerClient(servers[1].target) as one:
            assert one.stats().accepted == 0


def test_removing_a_replica_restarts_its_requests_elsewhere_and_frees_their_rows():
    with workers(slow_worker(), slow_worker()) as servers, \
            routing(servers, router=FixedOrder(0, 1)) as (router, client):
        call, stream = _stream_until_first_partial(
            client, generate_request("abc", 24, deadline_ms=20_000, **ONE_PER_STEP))
        router.set_replicas([endpoint(1, servers[1])])
        rest = list(stream)
        assert rest[0].restarted.attempt == 1
        assert "removed from the replica set" in rest[0].restarted.reason
        assert rest[-1].final.replica == "1"
        with WorkerClient(servers[0].target) as zero:
            stats = wait_for(lambda: (s := zero.stats()).running == 0 and s)
            assert stats.cancelled == 1  # the router's call to it was cancelled
        assert router.in_flight() == {1: 0}


def test_a_client_cancel_cancels_the_call_upstream():
    with workers(slow_worker()) as servers, routing(servers) as (router, client):
        call, _ = _stream_until_first_partial(
            client, generate_request("abc", 64, **ONE_PER_STEP))
        call.cancel()
        with WorkerClient(servers[0].target) as direct:
            stats = wait_for(lambda: (s := direct.stats()).running == 0 and s)
            assert stats.cancelled == 1 and stats.finished == 0
        wait_for(lambda: router.summary()["classes"]["standard"]["cancelled"] == 1)
        assert router.in_flight() == {0: 0}


def test_the_clients_grpc_deadline_reaches_the_worker():
    with workers(slow_worker()) as servers, routing(servers) as (router, client):
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 64, timeout=0.3, **ONE_PER_STEP)
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        with WorkerClient(servers[0].target) as direct:
            stats = wait_for(lambda: (s := direct.stats()).running == 0 and s)
            assert stats.expired + stats.cancelled == 1
        quick = client.generate("abc", 8, timeout=5.0)
        assert quick.deadline_s <= 5.1  # the gRPC deadline, earlier than the class's 20 s


def test_a_restarted_request_is_not_shed_and_if_every_replica_refuses_it_is_unavailable():
    pessimist = build_worker(MODEL, TOKENIZER, policy_for_tests(), synthetic_quality(),
                             StepCostModel((0.2, 0.0, 0.0, 0.0)))  # predicts 0.4 s steps
    with workers(slow_worker(), pessimist) as servers, routing(servers) as (router, client):
        call, stream = _stream_until_first_partial(  # replica 1 is predicted late: 0 takes it
            client, generate_request("abc", 24, deadline_ms=3000, **ONE_PER_STEP))
        assert router.in_flight()[0] == 1
        kill(servers[0])
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
        # not shed by the router (it would be, as a new request): replica 1's admission refused
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "refused it: replica 1:" in err.value.details()
        with WorkerClient(servers[1].target) as one:
            assert one.stats().rejected == 1
        # admitted once, so booked failed (out of attainment's denominator, as a client counts
        # UNAVAILABLE), not rejected at arrival
        standard = router.summary()["classes"]["standard"]
        assert (standard["failed"], standard["rejected"], standard["ended"]) == (1, 0, 0)


def test_calls_past_the_routers_limit_are_refused_at_once_and_booked():
    """`max_calls` (the policy's router.max_concurrent_calls): a call past it is answered
    RESOURCE_EXHAUSTED with a retry hint by the router's handler, not queued, and counted in the
    router's books: under its class (the default one when it names none), or as the class-less
    "(unknown)" when it names a class the policy lacks."""
    with workers(slow_worker()) as servers, routing(servers, max_calls=1) as (router, client):
        runner = threading.Thread(
            target=lambda: client.generate("abc", 64, deadline_ms=20_000, **ONE_PER_STEP))
        runner.start()
        wait_for(lambda: router.in_flight()[0] == 1)
        with pytest.raises(grpc.RpcError) as err:
            list(client.stream(generate_request("abc", 8, deadline_ms=20_000)))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value
        assert "router.max_concurrent_calls" in err.value.details()
        assert ("grpc-retry-pushback-ms", "1000") in tuple(err.value.trailing_metadata())
        for slo_class in ("strict", "gold"):
            with pytest.raises(WorkerError) as refused:
                client.generate("abc", 8, slo_class=slo_class)
            assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert runner.is_alive()  # answered while the first call still ran: not queued behind it
        classes = router.summary()["classes"]
        assert classes["standard"]["overloaded"] == 1 and classes["strict"]["overloaded"] == 1
        assert classes["(unknown)"]["overloaded"] == 1 and classes["(unknown)"]["ended"] == 1
        assert router.summary()["overloaded"] == 3 and client.stats().shed == 3
        # the controller sees the valid ones as arrivals: the running call and two refused
        assert [a.slo_class for a in router.take_arrivals()] == ["standard", "standard", "strict"]
        runner.join(30)
        assert client.generate("abc", 8, deadline_ms=20_000).text is not None  # room again
        standard = router.summary()["classes"]["standard"]
        assert (standard["requests"], standard["ended"], standard["met"]) == (3, 3, 2)


def test_bytes_that_do_not_parse_are_counted_invalid_at_the_router():
    with workers(plain_worker()) as servers, routing(servers) as (router, client):
        raw = client.channel.unary_stream("/dilaserve.v1.Generate/Generate",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as err:
            list(raw(b"\x12\x01\xff"))  # prompt_text, one byte that is not UTF-8
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("prompt_text:")
        with pytest.raises(WorkerError):
            client.generate("abc", 8, slo_class="gold")  # parses, but names no class
        assert router.summary()["invalid"] == 2
