"""A tensor-parallel replica on one machine: rank 0 in this process, the followers spawned.

    replica = start_local_tp_worker(model_path, policy, tp)   # `dilaserve worker --tp N`
    ... serve replica.worker ...
    replica.close()

or, without the serving parts (profiling, benchmarks, tests):

    with local_rank0(tp, model_path) as rank0:   # rank0.model, rank0.leader
        engine = TensorParallelEngine(rank0.model, EngineConfig(...), rank0.leader)
"""

from __future__ import annotations

import atexit
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TypeVar

import torch

from dilaserve.core.locations import resolve_model_dir
from dilaserve.policy import Policy
from worker.models.checkpoint import read_config
from worker.models.transformer import check_shardable
from worker.parallel.follower import follower_main
from worker.parallel.group import local_init_method
from worker.parallel.rank0 import Rank0, TpWorker, build_tp_worker, start_rank0
from worker.service.setup import Worker

T = TypeVar("T")


@dataclass(frozen=True)
class LocalRanks:
    """How the local ranks run: one device each ("cuda" means rank r on cuda:r)."""

    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    timeout_s: float = 60.0
    start_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"--device: expected cpu or cuda, got {self.device!r}")
        if self.threads <= 0:
            raise ValueError(f"--threads: must be positive, got {self.threads}")

    def device_of(self, rank: int) -> str:
        return "cpu" if self.device == "cpu" else f"cuda:{rank}"


def spawn_followers(
    tp: int, init_method: str, model_path: str | Path | None, ranks: LocalRanks = LocalRanks()
) -> list[BaseProcess]:
    context = multiprocessing.get_context("spawn")
    followers = []
    for rank in range(1, tp):
        process = context.Process(
            target=follower_main,
            args=(rank, tp, init_method, None if model_path is None else str(model_path)),
            kwargs={
                "device": ranks.device_of(rank),
                "dtype": ranks.dtype,
                "threads": ranks.threads,
                "timeout_s": ranks.timeout_s,
                "start_timeout_s": ranks.start_timeout_s,
            },
            name=f"dilaserve-tp-rank{rank}",
            daemon=True,  # never outlives rank 0's process
        )
        process.start()
        followers.append(process)
    return followers


def join_followers(followers: list[BaseProcess], timeout_s: float = 30.0) -> list[int | None]:
    """Wait for the followers to exit; kill any still running after `timeout_s` (they ignore
    SIGTERM, see follower_main)."""
    codes = []
    for process in followers:
        process.join(timeout_s)
        if process.is_alive():
            print(f"dilaserve: {process.name} did not exit; killing it", file=sys.stderr)
            process.kill()
            process.join(5.0)
        codes.append(process.exitcode)
    return codes


@dataclass
class LocalTpWorker:
    tp_worker: TpWorker
    followers: list[BaseProcess]

    @property
    def worker(self) -> Worker:
        return self.tp_worker.worker

    def close(self, timeout_s: float = 30.0) -> list[int | None]:
        """Stop the followers and wait for them; their exit statuses (0: left on Stop).
        Idempotent; also runs at interpreter exit if nobody called it (an error while serving)."""
        atexit.unregister(self.close)
        self.tp_worker.close()
        return join_followers(self.followers, timeout_s)


def start_local_tp_worker(
    model_path: str | Path | None,
    policy: Policy,
    tp: int,
    profiles: Path | None = None,
    ranks: LocalRanks = LocalRanks(),
    heartbeat_s: float = 2.0,
    **options,
) -> LocalTpWorker:
    """Spawn ranks 1..tp-1 and build rank 0's serving worker here (cuda: rank r on cuda:r)."""
    tp_worker, followers = _start_ranks(model_path, tp, ranks, lambda directory, init_method: (
        build_tp_worker(directory, policy, tp, init_method, profiles,
                        device=ranks.device_of(0), dtype=ranks.dtype, timeout_s=ranks.timeout_s,
                        start_timeout_s=ranks.start_timeout_s, heartbeat_s=heartbeat_s,
                        **options)))
    replica = LocalTpWorker(tp_worker, followers)
    # before multiprocessing's own exit handler, which would wait for the followers forever: the
    # heartbeat thread keeps them from timing out
    atexit.register(replica.close)
    return replica


def _start_ranks(model_path: str | Path | None, tp: int, ranks: LocalRanks,
                 start: Callable[[Path, str], T]) -> tuple[T, list[BaseProcess]]:
    """Ranks 1..tp-1 spawned, then rank 0 started here by `start(model directory, init
    method)`: what it returns, and the followers. A rank 0 that fails to start stops them."""
    directory = resolve_model_dir(model_path)
    _check_local(directory, tp, ranks)
    init_method = local_init_method()
    followers = spawn_followers(tp, init_method, directory, ranks)
    try:
        return start(directory, init_method), followers
    except BaseException:
        join_followers(followers, 0.5)
        raise


def _check_local(directory: Path, tp: int, ranks: LocalRanks) -> None:
    if tp < 2:
        raise ValueError(f"--tp: a local tensor-parallel replica needs 2 or more ranks, got {tp}")
    try:
        check_shardable(read_config(directory)[0], tp)
    except ValueError as err:
        raise ValueError(f"--tp: {err}") from None
    if ranks.device == "cuda" and torch.cuda.device_count() < tp:
        raise ValueError(f"--tp: {tp} ranks need {tp} GPUs, found {torch.cuda.device_count()}")


@contextmanager
def local_rank0(
    tp: int,
    model_path: str | Path | None = None,
    ranks: LocalRanks = LocalRanks(),
    heartbeat_s: float = 2.0,
) -> Iterator[Rank0]:
    """Rank 0 here and ranks 1..tp-1 spawned; on exit, Stop and wait for the followers."""
    rank0, followers = _start_ranks(model_path, tp, ranks, lambda directory, init_method: (
        start_rank0(tp, init_method, directory, ranks.device_of(0), ranks.dtype, ranks.timeout_s,
                    ranks.start_timeout_s, heartbeat_s)))
    try:
        yield rank0
    finally:
        rank0.close()
        join_followers(followers)
