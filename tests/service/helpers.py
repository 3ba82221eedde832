"""A small worker to test against: a random-weight model, synthetic profiles, a test policy."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from dilaserve.core.steps import StepPlan, StepResult
from dilaserve.policy import Policy, parse_policy
from dilaserve.profiles.quality import QualityPoint, QualityProfile
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile
from tests.conftest import make_random_model
from worker.client import WorkerClient
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.measure.profile_files import QUALITY_FILE, step_cost_file
from worker.models.checkpoint import save_model
from worker.models.tokenizer import DEFAULT_CHARS, CharTokenizer
from worker.service.server import ServerThread
from worker.service.setup import Worker, build_worker

MODEL = make_random_model(max_seq_len=160)
TOKENIZER = CharTokenizer(DEFAULT_CHARS[: MODEL.config.vocab_size - 3])
TASK_TOKENIZER = CharTokenizer()
COST = StepCostModel((5e-4, 2e-6, 4e-6, 1e-9))
POLICY_YAML = """
default_class: standard
classes:
  - name: standard
    deadline: {ms: 20000}
  - name: strict
    deadline: {ms: 20000}
    quality_floor: {min_threshold: 0.8}
    priority: 1
  - name: batch
    best_effort: true
worker:
  block_size: 8
  max_new_tokens: 64
  threshold_range: {min: 0.5, max: 0.9}
"""


def synthetic_quality() -> QualityProfile:
    points = tuple(
        QualityPoint(
            "threshold", tau, block, 0.5 + 0.4 * tau, {"t": 0.5 + 0.4 * tau}, tps, tps, 32 / tps
        )
        for block in (4, 8, 16, 32)
        for tau in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
        for tps in [min(block, max(1.0, (1 + 10 * (1 - tau)) * (block / 32) ** 0.5))]
    )
    reference = next(p for p in points if p.threshold == 0.9 and p.block_size == 8)
    return QualityProfile("random-test", reference, points)


def policy_for_tests(**worker_overrides) -> Policy:
    text = POLICY_YAML
    for key, value in worker_overrides.items():
        text += f"  {key}: {value}\n"
    return parse_policy(text, "test-policy")


class SlowEngine(DenoisingEngine):
    """Each step takes at least `step_s`: deadlines can pass mid-request on purpose."""

    step_s = 0.02

    def step(self, plan: StepPlan) -> StepResult:
        started = time.perf_counter()
        result = super().step(plan)
        time.sleep(max(0.0, self.step_s - (time.perf_counter() - started)))
        return result


class FailingEngine(DenoisingEngine):
    """Raises on its step number `fail_at` (counted over every engine of the class)."""

    steps = 0
    fail_at = 3

    def step(self, plan: StepPlan) -> StepResult:
        FailingEngine.steps += 1
        if FailingEngine.steps == FailingEngine.fail_at:
            raise RuntimeError("injected engine failure")
        return super().step(plan)


def make_worker(policy: Policy | None = None, engine_class=DenoisingEngine) -> Worker:
    def engine(model, config: EngineConfig) -> DenoisingEngine:
        return engine_class(model, config)

    return build_worker(
        MODEL,
        TOKENIZER,
        policy or policy_for_tests(),
        synthetic_quality(),
        COST,
        engine_class=engine,
    )


@contextmanager
def serving(worker: Worker | None = None) -> Iterator[tuple[ServerThread, WorkerClient]]:
    server = ServerThread(worker or make_worker())
    server.start()
    client = WorkerClient(server.target)
    try:
        yield server, client
    finally:
        client.close()
        server.stop(grace_s=0.0)


def write_model_dir(directory: Path) -> Path:
    """The test model, its tokenizer and synthetic profiles on disk, as `dilaserve worker` reads."""
    save_model(MODEL, directory, TOKENIZER)
    write_profiles(directory / "profiles")
    return directory


def write_profiles(profiles: Path) -> None:
    synthetic_quality().save(profiles / QUALITY_FILE)
    for mode in ("dual", "prefix", "none"):
        StepCostProfile("random-test", "test", "float32", 1, mode, COST, 0.0).save(
            profiles / step_cost_file("test", "float32", 1, mode)
        )


def write_task_model_dir(directory: Path) -> Path:
    """A random model with the shipped model's whole tokenizer, so task prompts encode."""
    from worker.models.config import ModelConfig
    from worker.models.transformer import DiffusionTransformer

    torch.manual_seed(0)
    config = dataclasses.replace(
        MODEL.config, vocab_size=TASK_TOKENIZER.vocab_size, max_seq_len=320
    )
    model = DiffusionTransformer(ModelConfig(**dataclasses.asdict(config))).eval()
    save_model(model, directory, TASK_TOKENIZER)
    write_profiles(directory / "profiles")
    return directory
