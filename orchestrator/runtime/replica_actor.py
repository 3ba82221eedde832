"""A Ray actor that serves one model replica: it loads the worker (model, profiles, the policy
with the replica's planned threshold range and block size) and runs its gRPC service, reporting
the address the router reaches it on. The controller starts it in bundle 0 of the replica's
placement group.

A tensor-parallel replica (TP > 1) is one actor per rank in that one STRICT_PACK group: this
actor is rank 0 (scheduler and gRPC service); it starts a `RankActor` in each other bundle, which
follows rank 0's step plans (`worker.parallel`) until rank 0 stops or is lost. The rank actors are
owned by rank 0, so Ray ends them with it.

Every replica runs where its plan put it: the fleet says whether its bundles are GPUs and which
hardware (the node's accelerator type, the key of its step-cost profile); `replica_device`
decides device and dtype from that, the policy's `cluster.device` / `cluster.dtype` and the
checkpoint's config.json as this node has it (TP=1 and TP > 1 alike: on a GPU, cuda in bfloat16
or the checkpoint's torch_dtype; on a CPU, float32).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dilaserve.policy import Policy, ThresholdRange
from dilaserve.policy.cluster import ClusterSettings
from orchestrator.types import ReplicaConfig
from worker.models.device import DeviceChoice, checkpoint_dtype, choose_device


def replica_policy(policy: Policy, config: ReplicaConfig) -> Policy:
    """The worker policy a replica of `config` runs: its planned threshold range and block size."""
    worker = dataclasses.replace(
        policy.worker,
        threshold_range=ThresholdRange(config.threshold_min, config.threshold_max),
        block_size=config.block_size)
    return dataclasses.replace(policy, worker=worker)


class ReplicaActor:
    def __init__(self, replica_id: int, cluster: ClusterSettings, policy: Policy,
                 config: ReplicaConfig, host: str, rank_options: dict | None = None,
                 on_gpu: bool = False, hardware: str | None = None) -> None:
        self.replica_id = replica_id
        self.on_gpu = on_gpu  # its bundles are GPUs (the cluster shape's device)
        self.hardware = hardware  # its node's hardware: the step-cost profile it is planned on
        self.cluster = cluster
        self.config = config
        self.policy = replica_policy(policy, config)
        self.host = host
        self._server = None
        self._worker = None
        self._tp_worker = None
        self._metrics = None
        self._ranks: list = []
        self.rank_options = rank_options or {}  # what each rank actor takes from its bundle

    def device_choice(self) -> DeviceChoice:
        """Device and dtype for this replica on this node (config.json read here, no weights)."""
        from dilaserve.core.locations import resolve_model_dir

        model_dir = resolve_model_dir(self.cluster.model)
        return replica_device(self.on_gpu, self.cluster, checkpoint_dtype(model_dir))

    def runtime(self) -> dict:
        """What this replica was given, before it loads anything: device, dtype and why, the GPUs
        Ray assigned to this actor, the hardware its profile is keyed by."""
        import ray

        choice = self.device_choice()
        return {"replica": self.replica_id, "tp": self.config.tp, "device": choice.device,
                "dtype": choice.dtype, "why": choice.why, "hardware": self.hardware,
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}

    def start(self) -> str:
        """Load and serve; returns "host:port" once the service answers (health SERVING)."""
        import torch

        from worker.models.device import require_device
        from worker.service.server import ServerThread
        from worker.service.setup import load_worker

        choice = self.device_choice()
        require_device(choice.device, f"replica {self.replica_id} (TP={self.config.tp} on "
                                      f"{self.hardware or 'this node'}, {choice.dtype}): device")
        torch.set_num_threads(self.cluster.cpu_threads)
        if self.host == "auto":  # a cluster: the router on another node must reach it
            import ray

            self.host = ray.util.get_node_ip_address()
        profiles = Path(self.cluster.profiles) if self.cluster.profiles else None
        if self.config.tp == 1:
            self._worker = load_worker(self.cluster.model, self.policy, profiles,
                                       device=choice.device, dtype=choice.dtype,
                                       hardware=self.hardware,
                                       strict_hardware=self.hardware is not None)
        else:
            self._worker = self._start_tensor_parallel(profiles, choice)
        if self.cluster.metrics_port is not None:  # the cluster is scraped: so is each worker
            from worker.service.metrics import serve_metrics

            self._metrics = serve_metrics(self._worker, self.host, 0)
        self._server = ServerThread(self._worker, self.host, 0, self.cluster.replica_tls)
        port = self._server.start()
        return f"{self.host}:{port}"

    def metrics_address(self) -> str:
        """host:port of this worker's Prometheus endpoint ("" when the policy has none)."""
        return f"{self.host}:{self._metrics.port}" if self._metrics is not None else ""

    def _start_tensor_parallel(self, profiles: Path | None, choice: DeviceChoice):
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from worker.parallel import build_tp_worker

        tp = self.config.tp
        device, dtype = choice.device, choice.dtype  # every rank: "cuda" is its own GPU
        init_method = rendezvous_address(self.host)
        group = ray.util.get_current_placement_group()
        if group is None:
            raise RuntimeError("a tensor-parallel replica must run in its placement group")
        options = self.rank_options
        rank_class = ray.remote(RankActor)
        self._ranks = []
        for rank in range(1, tp):
            strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=rank)
            actor = rank_class.options(scheduling_strategy=strategy, max_restarts=0,
                                       **options).remote()
            # not awaited: the followers meet rank 0 inside build_tp_worker
            actor.run.remote(rank, tp, init_method, self.cluster.model, device, dtype,
                             self.cluster.cpu_threads)
            self._ranks.append(actor)
        self._tp_worker = build_tp_worker(self.cluster.model, self.policy, tp, init_method,
                                          profiles, device=device, dtype=dtype,
                                          hardware=self.hardware,
                                          strict_hardware=self.hardware is not None)
        return self._tp_worker.worker

    def set_policy(self, policy: Policy) -> None:
        """A reloaded policy's classes for requests that arrive from now on (in-flight requests
        keep the settings they were admitted with); the threshold range stays the plan's."""
        if self._worker is not None:
            self._worker.validator.policy = dataclasses.replace(
                policy, worker=dataclasses.replace(
                    policy.worker, threshold_range=self.policy.worker.threshold_range,
                    block_size=self.policy.worker.block_size))

    def ping(self) -> int:
        return self.replica_id

    def stop(self, grace_s: float = 0.0) -> None:
        if self._server is not None:
            self._server.stop(grace_s)
            self._server = None
        if self._metrics is not None:
            self._metrics.stop()
            self._metrics = None
        if self._tp_worker is not None:
            self._tp_worker.close()  # tells the followers to stop; their run() returns
            self._tp_worker = None


class RankActor:
    """A TP rank > 0: loads its shard and executes the steps rank 0 announces."""

    def run(self, rank: int, tp: int, init_method: str, model: str | None, device: str,
            dtype: str, threads: int) -> None:
        from worker.parallel import run_follower

        run_follower(rank, tp, init_method, model, device=device, dtype=dtype, threads=threads)


def replica_device(on_gpu: bool, cluster: ClusterSettings,
                   checkpoint: str | None = None) -> DeviceChoice:
    """A replica's device and dtype from its plan (GPU bundles or not), the policy and the
    checkpoint's torch_dtype: pure, the same for TP=1 and every rank of TP > 1. Each rank actor
    sees its own GPU as "cuda"."""
    return choose_device(on_gpu, cluster.device, cluster.dtype, checkpoint)


def rendezvous_address(host: str) -> str:
    """tcp://HOST:PORT with a port free on this node, for the replica's process groups."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return f"tcp://{host}:{s.getsockname()[1]}"
