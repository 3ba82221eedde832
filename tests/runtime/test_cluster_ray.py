"""The live cluster on a local Ray with 4 fake GPUs (CPU execution of the shipped model): the
controller places replicas in placement groups, the router serves through them, and
reconfiguration, policy reload and a replica's death lose no request.

One cluster for the module (starting one costs ~15 s here); the tests run in file order and
each leaves it serving. The planner is injected (a rule on the observed rate) so that the plans
are known; what is under test is the runtime executing them, not the solver's choices.
"""

from __future__ import annotations

import asyncio
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from orchestrator.runtime.cluster import start_cluster  # noqa: E402
from orchestrator.runtime.ray_env import start_local  # noqa: E402
from solver.plan import ClassOutcome, Plan, ReplicaGroup, Route  # noqa: E402
from tests import waiting  # noqa: E402
from tests.net import free_port  # noqa: E402
from worker.client.loadgen import Job, replay  # noqa: E402
from worker.client.sync_client import WorkerClient  # noqa: E402
from worker.models.task_suites import suite_of  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HW = "cpu-x86_64-1threads"
NODE = f"{HW}x4"
LOW_LOAD = 0.5  # req/s: below it the planner wants 4 replicas at tau 0.9, above it 2

POLICY = """
version: 1
default_class: standard
classes:
  - name: standard
    deadline: {{ms: 20000}}
    quality_floor: {{min_threshold: 0.5}}
  - name: batch
    best_effort: true
worker:
  block_size: 32
  max_new_tokens: 64
cluster:
  nodes: [{{type: {hw}, count: 1, gpus_per_node: 4}}]
  device: cpu               # the GPUs are fake: each replica holds one and runs on the CPU
  max_tp: {max_tp}
  thresholds: {thresholds}
  router: {{port: 0}}
  metrics_port: {metrics_port}
  reconfigure: {{period_s: 1, min_interval_s: 0, drift: 0.5, window_s: 6,
                drain_timeout_s: 30, placement_timeout_s: 120}}
"""


METRICS_PORT = free_port()


def write_policy(path: Path, thresholds: str, max_tp: int = 1) -> None:
    path.write_text(POLICY.format(hw=HW, thresholds=thresholds, max_tp=max_tp,
                                  metrics_port=METRICS_PORT))


class RateRulePlanner:
    """Before any load: 4 x TP1 at tau 0.9; once loaded (and from then on, so that the tests
    do not race the rate estimate falling between them): 2 x TP1 whose threshold range spans
    the policy's levels, TP2 when the policy allows it."""

    def __init__(self, cluster, profiles, policy, settings) -> None:
        self.levels = sorted(settings.thresholds)
        self.tp = min(2, settings.max_tp)

    def __call__(self, workload, current):
        rate = sum(c.rate for c in workload.classes)
        loaded_before = current is not None and sum(g.count for g in current.groups) == 2
        if rate < LOW_LOAD and not loaded_before:
            group = ReplicaGroup(NODE, HW, 1, 0.9, 0.9, 32, 4)
        else:
            group = ReplicaGroup(NODE, HW, self.tp, self.levels[0], self.levels[-1], 32, 2)
        routes = tuple(Route(c.name, 0, c.rate, 1.0, 0.99) for c in workload.classes)
        outcomes = tuple(ClassOutcome(c.name, c.rate, c.rate, c.deadline_s, 0.9, 0.99,
                                      c.rate * 0.99, False) for c in workload.classes)
        return [Plan((group,), routes, outcomes, "optimal", "rule", 0.0, 0.0, 1.0, 0.0, 0.0,
                     group.count * group.tp, 4, 0.0)]


@contextmanager
def fake_gpu_cluster(path: Path, *pickled_modules: str):
    """The embedded cluster on a local Ray with 4 fake GPUs, from the policy at `path`, planned
    by RateRulePlanner; the modules named are pickled by value into the controller actor."""
    for name in (__name__, *pickled_modules):
        ray.cloudpickle.register_pickle_by_value(sys.modules[name])
    from dilaserve.policy.cluster_loader import load_cluster_policy

    start_local(num_cpus=2, num_gpus=4)
    handle = start_cluster(load_cluster_policy(path), None, str(path),
                           planner_factory=RateRulePlanner)
    handle.policy_path = path
    try:
        assert handle.wait_ready(240), handle.summary()
        yield handle
    finally:
        handle.stop(2.0)
        ray.shutdown()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    write_policy(path, "[0.9, 0.8, 0.7]")
    with fake_gpu_cluster(path) as handle:
        yield handle


def replicas(handle) -> list[dict]:
    return handle.summary()["replicas"]


def wait_for(predicate, timeout_s: float, what: str, handle):
    return waiting.wait_for(predicate, timeout_s, what, handle.summary, poll_s=0.5)


def jobs(count: int, gap_s: float, deadline_ms: float | None = None) -> list[Job]:
    suite = suite_of()  # the shipped model's one-block tasks: the replays send 32-token canvases
    examples = suite.heldout_set(count // len(suite.short_tasks) + 1,
                                 tasks=suite.short_tasks)[:count]
    return [Job(i * gap_s, ex.task, ex.prompt, ex.answer, deadline_ms)
            for i, ex in enumerate(examples)]


def assert_none_lost(outcomes, allowed=("met", "late")) -> None:
    bad = [(o.status, o.prompt) for o in outcomes if o.status not in allowed]
    assert not bad, bad


def assert_two_tp2_replicas_serve(handle) -> None:
    """2 x TP2, each in one placement group of two bundles, answering through the router."""
    wait_for(lambda: [(r["tp"], r["phase"]) for r in replicas(handle)]
             == [(2, "active"), (2, "active")], 180, "2 x TP2 serving", handle)
    groups = [g for g in ray.util.placement_group_table().values()
              if g["name"].startswith("dilaserve-replica-") and g["state"] == "CREATED"]
    assert sorted(len(g["bundles"]) for g in groups) == [2, 2]
    with WorkerClient(handle.target) as client:
        assert client.generate("rev:dilaserve>", 32, timeout=60).text == "evresalid"


def test_cold_start_places_four_replicas_in_their_own_placement_groups(cluster):
    reps = replicas(cluster)
    assert len(reps) == 4 and all(r["phase"] == "active" for r in reps)
    assert {(r["threshold_min"], r["threshold_max"]) for r in reps} == {(0.9, 0.9)}
    groups = [g for g in ray.util.placement_group_table().values()
              if g["name"].startswith("dilaserve-replica-") and g["state"] == "CREATED"]
    assert len(groups) == 4
    assert all(g["strategy"] == "STRICT_PACK" and len(g["bundles"]) == 1 for g in groups)
    # through the router: a request is served and says which replica served it
    with WorkerClient(cluster.target) as client:
        result = client.generate("rev:dilaserve>", 32, timeout=60)
    assert result.text == "evresalid"


def test_a_restarted_driver_takes_the_running_cluster_over(cluster):
    from dilaserve.policy.cluster_loader import load_cluster_policy

    again = start_cluster(load_cluster_policy(cluster.policy_path), None,
                          str(cluster.policy_path), planner_factory=RateRulePlanner)
    assert again.attached and again.target == cluster.target
    assert len(replicas(again)) == 4  # the same cluster, not a second one


def test_load_change_moves_to_two_replicas_with_new_thresholds_losing_nothing(cluster):
    # ~4 req/s for 12 s: the controller sees the load, re-plans to 2 replicas, drains two
    outcomes = asyncio.run(replay(cluster.target, jobs(48, 0.25), 32))
    assert_none_lost(outcomes)
    wait_for(lambda: len(replicas(cluster)) == 2, 60, "the drain to 2 replicas", cluster)
    reps = replicas(cluster)
    assert {(r["threshold_min"], r["threshold_max"]) for r in reps} == {(0.7, 0.9)}
    stats = WorkerClient(cluster.target).stats()
    assert {(round(r.min_threshold, 3), round(r.max_threshold, 3)) for r in stats.replicas} \
        == {(0.7, 0.9)}


def test_status_and_metrics_show_the_cluster(cluster):
    import urllib.request

    from dilaserve.cli.status import format_summary

    text = format_summary(cluster.summary())
    assert "2 x TP1 tau 0.7-0.9" in text
    assert len(re.findall(r" active\s+127\.0\.0\.1:\d+", text)) == 2, text  # the replica table
    router = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics").read().decode()
    assert 'dilaserve_router_requests_total{slo_class="standard"}' in router
    worker = replicas(cluster)[0]["metrics"]
    scraped = urllib.request.urlopen(f"http://{worker}/metrics").read().decode()
    assert "dilaserve_worker_" in scraped


def test_policy_reload_changes_thresholds_live(cluster):
    write_policy(cluster.policy_path, "[0.9, 0.8, 0.6]")
    outcomes = asyncio.run(replay(cluster.target, jobs(16, 0.25), 32))  # keeps load up
    assert_none_lost(outcomes)
    wait_for(lambda: {(r["threshold_min"], r["threshold_max"]) for r in replicas(cluster)}
             == {(0.6, 0.9)}, 60, "thresholds 0.6-0.9", cluster)
    assert any("policy applied" in line for line in cluster.summary()["log"])


def test_bad_policy_is_rejected_naming_the_field_and_the_old_one_keeps_serving(cluster):
    write_policy(cluster.policy_path, "[0.9, 1.7]")
    wait_for(lambda: any("reload rejected" in line and "thresholds" in line
                         for line in cluster.summary()["log"]), 30, "the rejection", cluster)
    outcomes = asyncio.run(replay(cluster.target, jobs(8, 0.2), 32))
    assert_none_lost(outcomes)
    assert {(r["threshold_min"], r["threshold_max"]) for r in replicas(cluster)} == {(0.6, 0.9)}
    write_policy(cluster.policy_path, "[0.9, 0.8, 0.6]")  # back to the running policy


def test_a_killed_replica_loses_no_request_and_the_plan_is_restored(cluster):
    victim = replicas(cluster)[0]["id"]
    work = jobs(24, 0.1, deadline_ms=30000)

    async def run_and_kill():
        replaying = asyncio.create_task(replay(cluster.target, work, 32))
        # mid-run: a third of the requests have reached the router
        while (await asyncio.to_thread(cluster.summary))["router"].get("requests", 0) < 8:
            await asyncio.sleep(0.05)
        ray.kill(ray.get(cluster.controller.replica.remote(victim)))
        return await replaying

    outcomes = asyncio.run(run_and_kill())
    # every request ends: served (maybe restarted elsewhere) or an explicit error status
    assert len(outcomes) == len(work)
    assert all(o.status in ("met", "late", "UNAVAILABLE", "expired") for o in outcomes), \
        [o.status for o in outcomes]
    assert sum(o.status == "met" for o in outcomes) >= len(work) // 2
    wait_for(lambda: victim not in {r["id"] for r in replicas(cluster)}
             and len(replicas(cluster)) == 2
             and all(r["phase"] == "active" for r in replicas(cluster)),
             120, "the plan restored", cluster)
    assert any(f"replica {victim}: died" in line for line in cluster.summary()["log"])


def test_tp2_plan_replaces_tp1_replicas_losing_nothing(cluster):
    """4 x TP1 (cold start) -> 2 x TP1 (load) happened above; now the policy allows TP2 and the
    plan becomes 2 x TP2: rank actors in STRICT_PACK groups of two bundles, gloo between them."""
    write_policy(cluster.policy_path, "[0.9, 0.8, 0.6]", max_tp=2)
    outcomes = asyncio.run(replay(cluster.target, jobs(40, 0.25), 32))
    assert_none_lost(outcomes)
    assert_two_tp2_replicas_serve(cluster)
