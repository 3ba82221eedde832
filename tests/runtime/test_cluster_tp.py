"""Issue 7's scenario on a local Ray with 4 fake GPUs: the cluster starts as 4 x TP1 and a load
change makes the plan 2 x TP2 (rank actors in STRICT_PACK groups of two bundles, gloo between
them), served through the router, with no request lost."""

from __future__ import annotations

import asyncio

import pytest

ray = pytest.importorskip("ray")

from dilaserve.core.locations import SHIPPED_MODEL_DIR  # noqa: E402
from dilaserve.profiles.quality import QualityProfile  # noqa: E402
from tests.runtime.test_cluster_ray import (  # noqa: E402
    assert_none_lost,
    assert_two_tp2_replicas_serve,
    fake_gpu_cluster,
    jobs,
    replicas,
    write_policy,
)
from worker.client.loadgen import replay  # noqa: E402
from worker.measure.profile_files import QUALITY_FILE, profiles_dir  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    write_policy(path, "[0.9, 0.8, 0.7]", max_tp=2)
    with fake_gpu_cluster(path, __name__) as handle:
        yield handle


def test_four_tp1_become_two_tp2_under_load_losing_nothing(cluster):
    assert [(r["tp"], r["phase"]) for r in replicas(cluster)] == [(1, "active")] * 4
    outcomes = asyncio.run(replay(cluster.target, jobs(60, 0.25), 32))
    assert_none_lost(outcomes)
    # about as many exact answers as the shipped model's quality profile says of these tasks
    reference = QualityProfile.load(profiles_dir(SHIPPED_MODEL_DIR) / QUALITY_FILE).reference
    expected = sum(reference.per_task[o.task] for o in outcomes)
    assert sum(o.correct for o in outcomes) >= expected - 6, expected
    assert_two_tp2_replicas_serve(cluster)
