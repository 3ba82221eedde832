"""A Ray actor that serves one model replica: it loads the worker (model, profiles, the policy
with the replica's planned threshold range and block size) and runs its gRPC service, reporting
the address the router reaches it on. The controller starts it inside its placement group."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dilaserve.policy import Policy, ThresholdRange
from orchestrator.config import ClusterSettings
from orchestrator.types import ReplicaConfig


def replica_policy(policy: Policy, config: ReplicaConfig) -> Policy:
    """The worker policy a replica of `config` runs: its planned threshold range and block size."""
    worker = dataclasses.replace(
        policy.worker,
        threshold_range=ThresholdRange(config.threshold_min, config.threshold_max),
        block_size=config.block_size)
    return dataclasses.replace(policy, worker=worker)


class ReplicaActor:
    def __init__(self, replica_id: int, cluster: ClusterSettings, policy: Policy,
                 config: ReplicaConfig, host: str) -> None:
        self.replica_id = replica_id
        self.cluster = cluster
        self.config = config
        self.policy = replica_policy(policy, config)
        self.host = host
        self._server = None
        self._worker = None

    def start(self) -> str:
        """Load and serve; returns "host:port" once the service answers (health SERVING)."""
        import torch

        from worker.service.server import ServerThread
        from worker.service.setup import load_worker

        torch.set_num_threads(self.cluster.cpu_threads)
        profiles = Path(self.cluster.profiles) if self.cluster.profiles else None
        self._worker = load_worker(self.cluster.model, self.policy, profiles)
        self._server = ServerThread(self._worker, self.host, 0)
        port = self._server.start()
        return f"{self.host}:{port}"

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
