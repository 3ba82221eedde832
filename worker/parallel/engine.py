"""The denoising engine on the ranks of a tensor-parallel replica.

Every rank holds a DenoisingEngine over its model shard (1/t of the heads and MLP columns, and a KV
pool of 1/t of the KV heads) and runs every step, so the ranks' engines are replicas of one state
machine: the same rows in the same slots with the same tokens. Rank 0's `TensorParallelEngine`
broadcasts each engine construction and each step to the followers before running it itself;
a `StepPlan` carries every mutation (admissions, evictions and cancellations, setting changes).

The residual stream, the final norm and the LM head are identical on all ranks after each
all-reduce, so all ranks would choose the same tokens; rather than rely on bit-identical kernels,
each commit adopts rank 0's choices and confidences (one small broadcast per phase group), so the
ranks' token state cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from functools import partial

import torch

from dilaserve.core.steps import StepPlan, StepResult
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.engine.rows import RowState
from worker.models.transformer import DiffusionTransformer
from worker.parallel.commands import NewEngine, RunStep
from worker.parallel.group import TpGroup
from worker.parallel.leader import Leader

FLOAT32_EXACT_INTS = 2**24  # token ids travel in a float32 tensor beside their confidences


class ShardedEngine(DenoisingEngine):
    """One rank's engine; followers use it as it is."""

    def __init__(self, model: DiffusionTransformer, config: EngineConfig, group: TpGroup) -> None:
        if model.shards != group.size:
            raise ValueError(
                f"tp: the model is split {model.shards} ways but the group has {group.size} ranks"
            )
        if model.config.vocab_size > FLOAT32_EXACT_INTS:
            raise ValueError(f"tp: vocabularies over {FLOAT32_EXACT_INTS} ids are not supported")
        super().__init__(model, config)
        self.group = group

    def _pick(
        self, group: list[RowState], hidden: torch.Tensor, counts: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        chosen, confidence = super()._pick(group, hidden, counts)
        if chosen.numel() == 0:
            return chosen, confidence
        packed = torch.stack((confidence.float(), chosen.float()))
        self.group.broadcast_from_leader(packed)
        return packed[1].long(), packed[0].to(confidence.dtype)


class TensorParallelEngine(ShardedEngine):
    """Rank 0's engine: announces itself and every step to the followers, then runs it."""

    def __init__(self, model: DiffusionTransformer, config: EngineConfig, leader: Leader) -> None:
        super().__init__(model, config, leader.group)
        self.leader = leader
        limits = self.limits
        leader.send(NewEngine(EngineConfig(limits.max_rows, limits.max_tokens, limits.max_seq_len,
                                           stop_token_ids=config.stop_token_ids)))

    def step(self, plan: StepPlan) -> StepResult:
        started = time.perf_counter()
        self.leader.send(RunStep(plan))
        sent_s = time.perf_counter() - started
        result = super().step(plan)
        # the broadcast is part of what a step costs a TP replica
        return dataclasses.replace(result, elapsed_s=result.elapsed_s + sent_s)


def tp_engine_class(
    leader: Leader,
) -> Callable[[DiffusionTransformer, EngineConfig], TensorParallelEngine]:
    """worker/service/setup.py's `engine_class` for rank 0 (the model it gets: rank 0's shard)."""
    return partial(TensorParallelEngine, leader=leader)
