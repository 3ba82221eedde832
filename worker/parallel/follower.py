"""A follower rank (rank > 0): load its shard, then run every command rank 0 sends until Stop.

`run_follower` takes plain arguments only, so a Ray actor (or a spawned process, `follower_main`)
can call it as it is. It returns when rank 0 says stop and raises `LeaderLost` when rank 0 stops
talking (its process died, or nothing came for `timeout_s` although rank 0 pings while idle).
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dilaserve.core.locations import resolve_model_dir
from worker.engine.engine import EngineFullError
from worker.models.transformer import DiffusionTransformer
from worker.parallel.commands import COMMANDS, Command, NewEngine, Ping, RunStep, Stop
from worker.parallel.engine import ShardedEngine
from worker.parallel.group import TpGroup, init_tp_group, leave_tp_group
from worker.parallel.loading import load_shard


class LeaderLost(RuntimeError):
    """Rank 0 went away without saying stop."""


def run_follower(
    rank: int,
    world_size: int,
    init_method: str,
    model_path: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    threads: int | None = 1,
    timeout_s: float = 60.0,
    start_timeout_s: float = 600.0,
) -> None:
    """Join the replica as `rank`, load the shard, follow rank 0 until it says stop.

    device: "cpu", or the CUDA device this rank uses ("cuda" for the current one, as inside a Ray
    actor given one GPU; "cuda:N"). threads: torch threads (None leaves torch's default).
    start_timeout_s bounds joining and loading (all ranks meet after loading); timeout_s bounds
    each collective, and so how long rank 0 may be silent (it pings every heartbeat_s when idle).
    """
    if rank == 0:
        raise ValueError("tp: rank 0 serves the replica (build_tp_worker), it does not follow")
    if threads is not None:
        if threads <= 0:
            raise ValueError(f"tp: threads must be positive, got {threads}")
        torch.set_num_threads(threads)
    directory = resolve_model_dir(model_path)
    group = init_tp_group(rank, world_size, init_method, device, timeout_s, start_timeout_s)
    try:
        model = load_shard(directory, rank, world_size, group.all_reduce, dtype, group.device)
        group.barrier(start_timeout_s)
        follow(group, model)
    finally:
        leave_tp_group()


def follow(group: TpGroup, model: DiffusionTransformer) -> None:
    engine: ShardedEngine | None = None
    while True:
        command = receive(group)
        if isinstance(command, Stop):
            return
        if isinstance(command, Ping):
            continue
        if isinstance(command, NewEngine):
            engine = None  # free the old KV pool before allocating the new one
            engine = ShardedEngine(model, command.config, group)
            continue
        if not isinstance(command, RunStep) or engine is None:
            raise RuntimeError(f"tp rank {group.rank}: {command!r} before any engine")
        try:
            engine.step(command.plan)
        except (ValueError, EngineFullError) as err:
            # refused before any collective, on rank 0 too (same state, same checks): rank 0 fails
            # the requests and announces a new engine
            print(f"dilaserve tp rank {group.rank}: step refused as on rank 0: {err}",
                  file=sys.stderr)


def receive(group: TpGroup) -> Command:
    box: list[object] = [None]
    try:
        dist.broadcast_object_list(box, src=0, group=group.control)
    except RuntimeError as err:  # gloo's timeout or a closed connection: rank 0 is gone
        raise LeaderLost(f"tp rank {group.rank}: lost rank 0: {err}") from err
    if not isinstance(box[0], COMMANDS):
        raise RuntimeError(f"tp rank {group.rank}: unknown command {type(box[0]).__name__}")
    return box[0]


def follower_main(rank: int, *args, **kwargs) -> None:
    """A spawned process's entry point: exit status 0 after Stop, 1 after any error.

    Ctrl-C, or a SIGTERM sent to the whole process group, reaches the followers too; they ignore
    it, so that rank 0 can let the requests in flight finish (which needs every rank) and then
    send Stop. A follower whose rank 0 is gone leaves by itself (LeaderLost); join_followers
    kills one that does neither."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        run_follower(rank, *args, **kwargs)
    except BaseException as err:
        print(f"dilaserve tp rank {rank}: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
