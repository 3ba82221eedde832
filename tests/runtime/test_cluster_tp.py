"""Issue 7's scenario on a local Ray with 4 fake GPUs: the cluster starts as 4 x TP1 and a load
change makes the plan 2 x TP2 (rank actors in STRICT_PACK groups of two bundles, gloo between
them), served through the router, with no request lost."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

ray = pytest.importorskip("ray")

from orchestrator.runtime.cluster import start_cluster  # noqa: E402
from orchestrator.runtime.ray_env import LOCAL_ENV  # noqa: E402
from tests.runtime.test_cluster_ray import (  # noqa: E402
    RateRulePlanner,
    assert_none_lost,
    assert_two_tp2_replicas_serve,
    jobs,
    replicas,
    write_policy,
)
from worker.client.loadgen import replay  # noqa: E402

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    for key, value in LOCAL_ENV.items():
        os.environ.setdefault(key, value)
    for name in (__name__, "tests.runtime.test_cluster_ray"):
        ray.cloudpickle.register_pickle_by_value(sys.modules[name])
    from dilaserve.policy.cluster_loader import load_cluster_policy

    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    write_policy(path, "[0.9, 0.8, 0.7]", max_tp=2)
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, namespace="dilaserve",
             _node_ip_address="127.0.0.1", configure_logging=False, log_to_driver=False)
    handle = start_cluster(load_cluster_policy(path), None, str(path),
                           planner_factory=RateRulePlanner)
    try:
        assert handle.wait_ready(240), handle.summary()
        yield handle
    finally:
        handle.stop(2.0)
        ray.shutdown()


def test_four_tp1_become_two_tp2_under_load_losing_nothing(cluster):
    assert [(r["tp"], r["phase"]) for r in replicas(cluster)] == [(1, "active")] * 4
    outcomes = asyncio.run(replay(cluster.target, jobs(60, 0.25), 32))
    assert_none_lost(outcomes)
    assert sum(o.correct for o in outcomes) >= 55
    assert_two_tp2_replicas_serve(cluster)
