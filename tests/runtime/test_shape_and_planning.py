"""The cluster shape from Ray's node list or the policy, and the live planner (pure: no Ray)."""

from __future__ import annotations

import pytest

from dilaserve.core.locations import SHIPPED_PROFILES_DIR
from dilaserve.policy import SloClass, default_policy
from dilaserve.policy.cluster import ClusterSettings, NodeGroup
from dilaserve.policy.types import Policy
from orchestrator.planning import LivePlanner, class_templates
from orchestrator.runtime.placement import replica_resources
from orchestrator.runtime.shape import CPU, GPU, cluster_shape
from solver.profile_set import load_profile_set

CPU_HW = "cpu-x86_64-1threads"


def gpu_node(ip: str, gpus: int, kind: str = "H100") -> dict:
    return {"Alive": True, "NodeManagerAddress": ip,
            "Resources": {"CPU": 16, "GPU": gpus, f"accelerator_type:{kind}": 1, f"node:{ip}": 1}}


def test_no_gpus_means_cpu_slots_on_the_profiled_cpu():
    shape = cluster_shape(ClusterSettings(cpu_slots=3), [{"Resources": {"CPU": 2}}],
                          [CPU_HW, "A100"])
    assert shape.device == CPU
    assert [(n.name, n.hardware, n.devices) for n in shape.nodes] == \
        [(f"{CPU_HW}x3", CPU_HW, 3)]
    assert shape.solver_cluster().gpus == 3


def test_no_gpus_and_no_cpu_profile_is_a_clear_error():
    with pytest.raises(ValueError, match="no CPU step-cost profile"):
        cluster_shape(ClusterSettings(), [{"Resources": {"CPU": 2}}], ["A100"])


def test_gpu_nodes_from_ray_are_grouped_and_pinned():
    nodes = [gpu_node("10.0.0.2", 8), gpu_node("10.0.0.1", 8), gpu_node("10.0.0.3", 4, "A100"),
             {"Alive": True, "NodeManagerAddress": "10.0.0.9", "Resources": {"CPU": 8}},
             {**gpu_node("10.0.0.4", 8), "Alive": False}]
    shape = cluster_shape(ClusterSettings(), nodes, ["H100", "A100"])
    assert shape.device == GPU
    assert [n.pin for n in shape.nodes] == ["node:10.0.0.1", "node:10.0.0.2", "node:10.0.0.3"]
    cluster = shape.solver_cluster()
    assert {(t.name, t.count, t.gpus_per_node) for t in cluster.nodes} == \
        {("H100x8", 2, 8), ("A100x4", 1, 4)}


def test_policy_nodes_override_what_ray_reports():
    settings = ClusterSettings(nodes=(NodeGroup(CPU_HW, 1, 4),))
    shape = cluster_shape(settings, [{"Resources": {"CPU": 2, "GPU": 4}}], [CPU_HW])
    assert shape.device == GPU and shape.devices_per_node == (4,)
    assert shape.nodes[0].pin is None


def test_bundles_per_device_and_pin():
    settings = ClusterSettings()
    shape = cluster_shape(settings, [gpu_node("10.0.0.1", 8)], ["H100"])
    res = replica_resources(4, GPU, 1, shape.nodes[0])
    assert res.bundles == tuple({"GPU": 1.0, "node:10.0.0.1": 0.001} for _ in range(4))
    assert res.actor_options == {"num_gpus": 1, "num_cpus": 0}
    assert replica_resources(2, CPU, 3, None).bundles == ({"CPU": 3.0}, {"CPU": 3.0})


def policy_with(*classes: SloClass) -> Policy:
    return Policy(classes=classes, default_class=classes[0].name)


def test_class_templates_resolve_per_token_deadlines_and_best_effort():
    pol = policy_with(SloClass("chat", deadline_ms=500, deadline_per_token_ms=10,
                               target_attainment=1.0), SloClass("batch", best_effort=True))
    chat, batch = class_templates(pol)
    assert chat.deadline_s == pytest.approx(0.5 + 0.01 * pol.worker.max_new_tokens / 2)
    assert chat.target_attainment < 1 and not chat.best_effort
    assert batch.best_effort and batch.deadline_s is None


def test_live_planner_plans_the_shipped_model_on_cpu_slots():
    profiles = load_profile_set(SHIPPED_PROFILES_DIR)
    settings = ClusterSettings(cpu_slots=2, max_tp=1, thresholds=(0.9, 0.7))
    shape = cluster_shape(settings, [{"Resources": {"CPU": 2}}], profiles.hardware)
    pol = policy_with(SloClass("chat", deadline_ms=2000, deadline_per_token_ms=20))
    planner = LivePlanner(shape.solver_cluster(), profiles, pol, settings)
    from orchestrator.controller import Controller

    ctl = Controller(class_templates(pol), planner, shape.node_types, shape.devices_per_node)
    ctl.cold_start(0.0, rate=1.0)
    plan = ctl.plan
    assert sum(g.count for g in plan.groups) == 2
    assert all(g.tp == 1 and g.threshold_min in (0.9, 0.7) for g in plan.groups)


def test_live_planner_rejects_thresholds_the_profile_never_measured():
    profiles = load_profile_set(SHIPPED_PROFILES_DIR)
    settings = ClusterSettings(thresholds=(0.123,))
    shape = cluster_shape(settings, [{"Resources": {"CPU": 2}}], profiles.hardware)
    with pytest.raises(ValueError, match="cluster.thresholds"):
        LivePlanner(shape.solver_cluster(), profiles, default_policy(), settings)
