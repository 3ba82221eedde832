"""The router on a real port in front of real workers: routing, Stats, Control, health,
reflection, metrics, request checks, policy reload."""

from __future__ import annotations

import dataclasses
import urllib.request

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from dilaserve.policy import SloClass
from orchestrator.types import ReplicaState
from tests.router.helpers import (
    CONFIG,
    FixedOrder,
    endpoint,
    plain_worker,
    routing,
    wait_for,
    workers,
)
from tests.service.helpers import policy_for_tests
from worker.client import WorkerClient, WorkerError

pytestmark = pytest.mark.slow


def test_routes_streams_and_names_the_replica_and_the_cluster_stats_name_every_replica():
    with workers(plain_worker(), plain_worker()) as servers, \
            routing(servers, router=FixedOrder(1, 0)) as (router, client):
        result = client.generate("abc+12", 24, request_id="r1", deadline_ms=10_000)
        assert result.request_id == "r1" and result.replica == "1"
        assert [p.block_index for p in result.partials] == [0, 1, 2]
        assert "".join(p.text for p in result.partials) == result.text
        assert result.deadline_met and result.deadline_s == pytest.approx(10.0)
        assert 0 <= result.queued_ms <= result.first_block_ms <= result.e2e_ms
        assert 0 < result.replica_e2e_ms < result.e2e_ms  # the router's legs are not the replica's
        with WorkerClient(servers[1].target) as direct:
            assert direct.stats().finished == 1  # it really ran on replica 1
        stats = client.stats()
        assert (stats.finished, stats.deadline_met, stats.accepted) == (1, 1, 1)
        rows = servers[0].server.worker.loop.limits.max_rows
        assert stats.model == "random-test" and stats.max_rows == 2 * rows
        named = {r.id: r for r in stats.replicas}
        assert set(named) == {0, 1}
        assert named[1].target == servers[1].target and named[1].state == "active"
        assert named[1].tp == 1 and named[1].healthy and named[1].block_size == 8
        assert (named[1].min_threshold, named[1].max_threshold) == pytest.approx((0.5, 0.9))
        standard = next(c for c in stats.classes if c.name == "standard")
        assert (standard.ended, standard.met, standard.attainment) == (1, 1, 1.0)
        arrivals = router.take_arrivals()
        assert [(a.slo_class, a.prompt_len, a.canvas_len) for a in arrivals] == [
            ("standard", 6, 24)]
        assert router.take_arrivals() == []
        views = {v.replica_id: v for v in router.replica_views()}
        assert views[1].max_rows > 0 and views[1].step_base_s > 0 and views[1].accepting
        summary = router.summary()
        assert summary["classes"]["standard"]["met"] == 1
        assert [r["id"] for r in summary["replicas"]] == [0, 1]


def test_health_and_reflection_at_the_router():
    with workers(plain_worker()) as servers, routing(servers) as (_, client):
        assert client.health() == "SERVING" and client.health("dilaserve.v1.Generate") == "SERVING"
        database = ProtoReflectionDescriptorDatabase(client.channel)
        assert "dilaserve.v1.Generate" in database.get_services()


def test_the_generate_service_is_serving_only_while_a_replica_accepts():
    with workers(plain_worker()) as servers, routing(servers) as (router, client):
        assert client.health("dilaserve.v1.Generate") == "SERVING"
        router.set_replicas([])
        wait_for(lambda: client.health("dilaserve.v1.Generate") == "NOT_SERVING")
        assert client.health() == "SERVING"  # the router process itself is up
        router.set_replicas([endpoint(0, servers[0])])
        wait_for(lambda: client.health("dilaserve.v1.Generate") == "SERVING")
        # every replica drained (the replica's own state, as polled): nothing can serve
        client.control(drain=True, replica_id=0)
        wait_for(lambda: client.health("dilaserve.v1.Generate") == "NOT_SERVING", 2.0)
        client.control(drain=False, replica_id=0)
        wait_for(lambda: client.health("dilaserve.v1.Generate") == "SERVING", 2.0)


def test_invalid_requests_name_the_field_at_the_router_or_the_worker():
    with workers(plain_worker()) as servers, routing(servers) as (router, client):
        for fields, field in (
            ({"slo_class": "gold"}, "slo_class"),
            ({"deadline_ms": -1.0}, "deadline_ms"),
            ({"block_size": 0}, "quality.block_size"),
            ({"request_id": "has space"}, "request_id"),
        ):
            with pytest.raises(WorkerError) as err:
                client.generate("abc", 8, **fields)
            assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details.startswith(field + ":"), err.value.details
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 0)
        assert err.value.details.startswith("max_new_tokens:")
        with pytest.raises(WorkerError) as err:  # only the worker knows the vocabulary
            client.generate([5, 999], 8)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details.startswith("prompt_ids[1]:")
        wait_for(lambda: router.summary()["invalid"] == 6)


def test_control_takes_a_replica_id_and_reaches_that_replica_only():
    with workers(plain_worker(), plain_worker()) as servers, routing(servers) as (router, client):
        reply = client.control(threshold_range=(0.6, 0.95), replica_id=1)
        assert (reply.threshold_range.min, reply.threshold_range.max) == pytest.approx((0.6, 0.95))
        with WorkerClient(servers[0].target) as zero, WorkerClient(servers[1].target) as one:
            assert one.stats().max_threshold == pytest.approx(0.95)
            assert zero.stats().max_threshold == pytest.approx(0.9)
        stats = wait_for(lambda: (s := client.stats()).replicas[1].max_threshold > 0.94 and s)
        assert stats.replicas[0].max_threshold == pytest.approx(0.9)
        with pytest.raises(WorkerError) as err:
            client.control(drain=True)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details.startswith("replica_id:")
        with pytest.raises(WorkerError) as err:
            client.control(drain=True, replica_id=7)
        assert err.value.code == grpc.StatusCode.NOT_FOUND and "7" in err.value.details
        with pytest.raises(WorkerError) as err:  # the worker's own check comes back as it is
            client.control(threshold_range=(0.9, 0.5), replica_id=0)
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details.startswith("threshold_range")
        # a replica drained through the router stops getting requests
        client.control(drain=True, replica_id=0)
        wait_for(lambda: not {v.replica_id: v for v in router.replica_views()}[0].accepting)
        assert {client.generate("abc", 8).replica for _ in range(4)} == {"1"}


def test_loading_and_draining_replicas_are_not_routed_to():
    with workers(plain_worker(), plain_worker(), plain_worker()) as servers, \
            routing(servers) as (router, client):
        router.set_replicas([
            endpoint(0, servers[0], ReplicaState.LOADING),
            endpoint(1, servers[1], ReplicaState.DRAINING),
            endpoint(2, servers[2]),
        ])
        assert {client.generate("abc", 8).replica for _ in range(6)} == {"2"}
        router.set_replicas([endpoint(0, servers[0], ReplicaState.LOADING)])
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 8)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        assert "none is accepting" in err.value.details


def test_policy_reload_applies_to_new_requests():
    policy = policy_for_tests()
    with workers(plain_worker()) as servers, routing(servers, policy=policy) as (router, client):
        with pytest.raises(WorkerError):
            client.generate("abc", 8, slo_class="gold")
        gold = SloClass("gold", deadline_ms=30_000.0, target_attainment=0.99)
        router.set_policy(dataclasses.replace(policy, classes=policy.classes + (gold,)))
        # the router accepts the class now; this worker's policy still lacks it, and says so
        with pytest.raises(WorkerError) as err:
            client.generate("abc", 8, slo_class="gold")
        assert err.value.details.startswith("slo_class:") and "known:" in err.value.details
        assert router.summary()["classes"]["gold"]["target_attainment"] == 0.99
        assert router.take_arrivals()[-1].slo_class == "gold"


def test_metrics_endpoint_serves_router_metrics():
    with workers(plain_worker()) as servers, \
            routing(servers, metrics_port=0) as (router, client):
        client.generate("abc", 8)
        with pytest.raises(WorkerError):
            client.generate("abc", 64, deadline_ms=1, commit_rule="topk")  # shed
        url = f"http://127.0.0.1:{router.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'dilaserve_router_requests_total{slo_class="standard"} 2.0' in text
        assert 'dilaserve_router_requests_met_total{slo_class="standard"} 1.0' in text
        assert 'dilaserve_router_shed_total{slo_class="standard"} 1.0' in text
        assert 'dilaserve_router_attainment{slo_class="standard"} 0.5' in text
        assert 'dilaserve_router_e2e_seconds_count{slo_class="standard"} 1.0' in text
        assert "dilaserve_router_restarts_total 0.0" in text
        assert "dilaserve_router_loop_lag_seconds " in text
        replica = f'replica="0",state="active",target="{servers[0].target}"'
        assert f"dilaserve_router_replica_in_flight{{{replica}}} 0.0" in text
        assert f"dilaserve_router_replica_threshold_max{{{replica}}} 0.9" in text
        assert f"dilaserve_router_replica_healthy{{{replica}}} 1.0" in text


def test_config_of_a_view_is_the_plans():
    with workers(plain_worker()) as servers, routing(servers) as (router, _):
        (view,) = router.replica_views()
        assert view.config == CONFIG and view.node == 0
