"""Every replica runs where its plan puts it: the device and dtype of each replica of a planned
2 x TP1 + 1 x TP2 cluster on 4 (fake) A100s, decided without Ray (a pure function of the plan's
bundles, the policy and the checkpoint's config) and, once, by Ray actors in their placement
groups; and the clear error a cuda replica gets where torch has no CUDA."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from dilaserve.policy import SloClass
from dilaserve.policy.cluster import ClusterSettings
from dilaserve.policy.types import Policy
from orchestrator.actions import AddReplica
from orchestrator.controller import Controller
from orchestrator.planning import class_templates
from orchestrator.runtime.replica_actor import ReplicaActor, replica_device
from orchestrator.runtime.shape import GPU, cluster_shape
from solver.plan import ClassOutcome, Plan, ReplicaGroup, Route
from worker.models.device import checkpoint_dtype, choose_device

SHARED_LLADA = Path(__file__).resolve().parents[3] / "shared" / "llada-8b-instruct"
POLICY = Policy(classes=(SloClass("chat", deadline_ms=20000),), default_class="chat")


def a100_node(ip: str = "10.0.0.1", gpus: int = 4) -> dict:
    return {"Alive": True, "NodeManagerAddress": ip,
            "Resources": {"CPU": 16, "GPU": gpus, "accelerator_type:A100": 1, f"node:{ip}": 1}}


class TwoTp1OneTp2:
    """A fixed plan: 2 x TP1 and 1 x TP2 on the node type the cluster has."""

    def __init__(self, node_type: str, hardware: str) -> None:
        self.groups = (ReplicaGroup(node_type, hardware, 1, 0.7, 0.9, 32, 2),
                       ReplicaGroup(node_type, hardware, 2, 0.7, 0.9, 32, 1))

    def __call__(self, workload, current):
        routes = tuple(Route(c.name, 0, c.rate, 1.0, 0.99) for c in workload.classes)
        outcomes = tuple(ClassOutcome(c.name, c.rate, c.rate, c.deadline_s, 0.9, 0.99,
                                      c.rate * 0.99, False) for c in workload.classes)
        return [Plan(self.groups, routes, outcomes, "optimal", "fixed", 0.0, 0.0, 1.0, 0.0, 0.0,
                     4, 4, 0.0)]


def planned_replicas(settings: ClusterSettings, ray_nodes: list[dict]):
    """(shape, [AddReplica]) of the fixed plan, as the live controller would start it."""
    shape = cluster_shape(settings, ray_nodes, ["A100"])
    node = shape.nodes[0]
    controller = Controller(class_templates(POLICY), TwoTp1OneTp2(node.name, node.hardware),
                            shape.node_types, shape.devices_per_node)
    adds = [a for a in controller.cold_start(0.0) if isinstance(a, AddReplica)]
    return shape, adds


def device_table(settings: ClusterSettings, ray_nodes: list[dict], checkpoint: str | None):
    shape, adds = planned_replicas(settings, ray_nodes)
    rows = []
    for i, add in enumerate(adds):
        choice = replica_device(shape.device == GPU, settings, checkpoint)
        rows.append((i, add.config.tp, shape.nodes[add.node].hardware, choice.device,
                     choice.dtype))
    return rows


def test_the_planned_cluster_runs_on_its_gpus_in_bf16_tp1_as_tp2():
    rows = device_table(ClusterSettings(max_tp=2), [a100_node()], None)
    assert sorted(r[1] for r in rows) == [1, 1, 2]
    assert {(hw, device, dtype) for _, _, hw, device, dtype in rows} == \
        {("A100", "cuda", "bfloat16")}


@pytest.mark.skipif(not SHARED_LLADA.is_dir(), reason="../shared/llada-8b-instruct is absent")
def test_llada_8b_instructs_config_has_no_torch_dtype_so_bf16():
    assert checkpoint_dtype(SHARED_LLADA) is None
    rows = device_table(ClusterSettings(max_tp=2), [a100_node()], checkpoint_dtype(SHARED_LLADA))
    assert {r[3:] for r in rows} == {("cuda", "bfloat16")}


def test_the_checkpoints_dtype_the_policy_and_cpu_nodes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float16"}))
    gpu = [a100_node()]
    assert {r[3:] for r in device_table(ClusterSettings(max_tp=2), gpu,
                                         checkpoint_dtype(tmp_path))} == {("cuda", "float16")}
    assert {r[3:] for r in device_table(ClusterSettings(max_tp=2, dtype="float32"), gpu,
                                         None)} == {("cuda", "float32")}
    # fake GPUs on a CPU box (the Ray tests): the policy keeps the replicas on the CPU
    assert {r[3:] for r in device_table(ClusterSettings(max_tp=2, device="cpu"), gpu,
                                         None)} == {("cpu", "float32")}
    cpu_only = replica_device(False, ClusterSettings(), "bfloat16")
    assert (cpu_only.device, cpu_only.dtype, cpu_only.why) == ("cpu", "float32", "CPU default")


def test_choose_device_covers_every_request():
    assert choose_device(True).describe() == \
        "cuda bfloat16 (GPU default: no torch_dtype in config.json)"
    assert choose_device(False, "cuda", "auto", "float16").dtype == "float16"
    assert choose_device(True, "auto", "float32").why == "as asked"
    with pytest.raises(ValueError, match="dtype: expected one of"):
        choose_device(True, "auto", "int8")
    with pytest.raises(ValueError, match="device: expected one of"):
        choose_device(True, "tpu")


def test_a_cuda_replica_without_cuda_is_a_clear_error_before_loading(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    settings = ClusterSettings(max_tp=2)
    _, adds = planned_replicas(settings, [a100_node()])
    for i, add in enumerate(adds):
        actor = ReplicaActor(i, settings, POLICY, add.config, "127.0.0.1", on_gpu=True,
                             hardware="A100")
        with pytest.raises(ValueError) as err:
            actor.start()
        assert str(err.value).startswith(
            f"replica {i} (TP={add.config.tp} on A100, bfloat16): device cuda: torch "
            f"{torch.__version__} sees no CUDA device here (torch.cuda.is_available() is False")
        assert actor._worker is None and actor._ranks == []  # nothing was loaded or started


@pytest.mark.parametrize("argv", [["worker", "--device", "cuda", "--port", "0"],
                                  ["generate", "--device", "cuda", "sort:31>"],
                                  ["worker", "--tp", "2", "--device", "cuda", "--port", "0"]])
def test_cuda_on_the_command_line_without_cuda_names_the_flag(argv, monkeypatch, capsys):
    from dilaserve.cli.main import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: --device cuda: torch" in err and "sees no CUDA device" in err
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ray_gives_each_planned_replica_its_gpu_cuda_and_bf16():
    ray = pytest.importorskip("ray")
    from orchestrator.runtime.placement import release, replica_resources, reserve
    from orchestrator.runtime.ray_env import start_local

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    settings = ClusterSettings(max_tp=2)
    shape, adds = planned_replicas(settings, [a100_node("127.0.0.1")])
    start_local(num_cpus=2, num_gpus=4)
    groups = []
    try:
        runtimes, errors = [], []
        for i, add in enumerate(adds):
            resources = replica_resources(add.config.tp, shape.device, 1, None)
            group = reserve(resources, f"test-replica-{i}", 60)
            groups.append(group)
            strategy = ray.util.scheduling_strategies.PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=0)
            actor = ray.remote(ReplicaActor).options(
                scheduling_strategy=strategy, max_restarts=0, **resources.actor_options).remote(
                i, settings, POLICY, add.config, "127.0.0.1", resources.actor_options,
                on_gpu=shape.device == GPU, hardware=shape.nodes[add.node].hardware)
            runtimes.append(ray.get(actor.runtime.remote()))
            with pytest.raises(ray.exceptions.RayTaskError) as err:  # no CUDA on this box
                ray.get(actor.start.remote())
            errors.append(str(err.value).strip().splitlines()[-1])
    finally:
        for group in groups:
            release(group)
        ray.shutdown()
    assert sorted((r["tp"], r["device"], r["dtype"], r["hardware"]) for r in runtimes) == \
        [(1, "cuda", "bfloat16", "A100"), (1, "cuda", "bfloat16", "A100"),
         (2, "cuda", "bfloat16", "A100")]
    gpu_ids = [g for r in runtimes for g in r["gpu_ids"]]
    assert len(gpu_ids) == 3 and len(set(gpu_ids)) == 3  # each rank-0 actor its own GPU
    for i, line in enumerate(errors):
        assert f"replica {i} (TP=" in line and "device cuda: torch" in line, line
