"""Rank 0 of a tensor-parallel replica: its shard, its command channel, and a serving worker.

`start_rank0` joins the groups, loads rank 0's shard and waits for the followers to load theirs;
`build_tp_worker` wraps that in the same `Worker` (serving loop, scheduler, validator) a one-device
replica gets, with `TensorParallelEngine` as its engine class. Close it after serving: the
followers get Stop and every rank leaves the groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dilaserve.core.locations import resolve_model_dir
from dilaserve.policy import Policy
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostModel
from worker.measure.profile_files import hardware_name, profiles_dir
from worker.models.checkpoint import read_config
from worker.models.device import require_device
from worker.models.tokenizer import load_tokenizer
from worker.models.transformer import DiffusionTransformer, check_shardable
from worker.parallel.engine import tp_engine_class
from worker.parallel.group import TpGroup, init_tp_group, leave_tp_group
from worker.parallel.leader import Leader
from worker.parallel.loading import load_shard
from worker.service.setup import Worker, build_worker, load_profiles


@dataclass
class Rank0:
    group: TpGroup
    model: DiffusionTransformer
    leader: Leader
    model_dir: Path

    def close(self) -> None:
        """Send Stop, stop the heartbeat, leave the process groups (idempotent)."""
        self.leader.stop()
        leave_tp_group()


def start_rank0(
    tp: int,
    init_method: str,
    model_path: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    timeout_s: float = 60.0,
    start_timeout_s: float = 600.0,
    heartbeat_s: float = 2.0,
) -> Rank0:
    directory = resolve_model_dir(model_path)
    check_shardable(read_config(directory)[0], tp)
    if not 0 < heartbeat_s < timeout_s:
        raise ValueError(
            f"tp: heartbeat_s ({heartbeat_s}) must be positive and below timeout_s ({timeout_s}): "
            "an idle rank 0 would look dead to its followers"
        )
    group = init_tp_group(0, tp, init_method, device, timeout_s, start_timeout_s)
    try:
        model = load_shard(directory, 0, tp, group.all_reduce, dtype, group.device)
        group.barrier(start_timeout_s)
        return Rank0(group, model, Leader(group, heartbeat_s), directory)
    except BaseException:
        leave_tp_group()
        raise


@dataclass
class TpWorker:
    worker: Worker
    rank0: Rank0

    def close(self) -> None:
        self.rank0.close()


def build_tp_worker(
    model_path: str | Path | None,
    policy: Policy,
    tp: int,
    rank0_init_method: str,
    profiles: Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    timeout_s: float = 60.0,
    start_timeout_s: float = 600.0,
    heartbeat_s: float = 2.0,
    hardware: str | None = None,
    strict_hardware: bool = False,
    **options,
) -> TpWorker:
    """Rank 0's serving worker; `options` go to build_worker (online_step_cost, clock,
    calibrate: on unless turned off, as for `load_worker`).
    hardware, strict_hardware: the step-cost profile's key, as for `load_worker`."""
    directory = resolve_model_dir(model_path)
    # profiles first: a missing file should fail before the followers are kept waiting
    require_device(device)
    quality, step_cost = load_tp_profiles(
        profiles or profiles_dir(directory), policy.worker.cache_mode, tp, dtype,
        hardware or hardware_name(device), strict_hardware, directory,
    )
    policy.check_against(quality)
    rank0 = start_rank0(
        tp, rank0_init_method, directory, device, dtype, timeout_s, start_timeout_s, heartbeat_s
    )
    try:
        worker = build_worker(
            rank0.model,
            load_tokenizer(directory),
            policy,
            quality,
            step_cost,
            engine_class=tp_engine_class(rank0.leader),
            **{"calibrate": True, **options},
        )
    except BaseException:
        rank0.close()
        raise
    return TpWorker(worker, rank0)


def load_tp_profiles(
    directory: Path, cache_mode: str, tp: int, dtype: str = "float32",
    hardware: str | None = None, strict_hardware: bool = False, model: Path | None = None,
) -> tuple[QualityProfile, StepCostModel]:
    """The quality profile and the step-cost profile measured at this TP degree; without one, the
    TP=1 profile (said on stderr), which the worker's online step-cost refinement then corrects."""
    return load_profiles(directory, cache_mode, tp, dtype, hardware, strict_hardware, model)
