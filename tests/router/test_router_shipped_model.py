"""The shipped model behind the router: the answers are the worker's own, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dilaserve.policy import load_policy
from orchestrator.service import ReplicaEndpoint, RouterServer
from orchestrator.types import ReplicaConfig, ReplicaState
from worker.client import WorkerClient
from worker.models.shipped import load
from worker.models.task_suites import suite_of
from worker.service.server import ServerThread
from worker.service.setup import load_worker

pytestmark = pytest.mark.slow

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "policies" / "worker-default.yaml"


def test_shipped_model_answers_through_the_router_as_it_does_directly():
    torch.set_num_threads(1)
    policy = load_policy(POLICY)
    _, tokenizer, _ = load(None)
    examples = suite_of().heldout_set(1, tasks=suite_of().short_tasks)
    server = ServerThread(load_worker(None, policy))
    server.start()
    w = policy.worker
    config = ReplicaConfig("cpu", 1, w.block_size, w.threshold_range.min, w.threshold_range.max)
    router = RouterServer(policy, tokenizer, stats_period_s=0.2)
    router.start()
    try:
        router.set_replicas([ReplicaEndpoint(0, server.target, config, 0, ReplicaState.ACTIVE)])
        with WorkerClient(router.target) as via, WorkerClient(server.target) as direct:
            for example in examples:
                # best-effort (no class deadline): its own 30 s apply, whatever the box's load
                routed = via.generate(example.prompt, 32, deadline_ms=30_000, slo_class="batch")
                assert routed.replica == "0"
                assert routed.text == direct.generate(example.prompt, 32).text
            assert sum(via.generate(e.prompt, 32).text == e.answer for e in examples) >= 1
    finally:
        router.stop(grace_s=0.0)
        server.stop(grace_s=0.0)
