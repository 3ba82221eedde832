"""The process groups of one tensor-parallel replica.

Two groups over the same ranks, so the leader's commands never interleave with a forward's
collectives: `compute` carries the all-reduces and the decision broadcasts (NCCL on CUDA, gloo on
CPU: the same code runs in CI), `control` carries rank 0's pickled commands (always gloo, whose
timeout is how a follower notices that rank 0 is gone).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

INIT_SCHEMES = ("tcp://", "file://", "env://")


@dataclass(frozen=True)
class TpGroup:
    rank: int
    size: int
    device: torch.device
    compute: dist.ProcessGroup
    control: dist.ProcessGroup

    def all_reduce(self, partial: torch.Tensor) -> torch.Tensor:
        """Sum a row-parallel layer's partial output over the ranks (in place)."""
        dist.all_reduce(partial, group=self.compute)
        return partial

    def broadcast_from_leader(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.broadcast(tensor, src=0, group=self.compute)
        return tensor

    def barrier(self, timeout_s: float) -> None:
        """Wait for every rank (gloo's monitored barrier names a rank that does not come)."""
        dist.monitored_barrier(group=self.control, timeout=timedelta(seconds=timeout_s))


def check_rank(rank: int, size: int, init_method: str) -> None:
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"tp: world size must be a whole number >= 1, got {size!r}")
    if not isinstance(rank, int) or not 0 <= rank < size:
        raise ValueError(f"tp: rank must be in [0, {size}), got {rank!r}")
    if not isinstance(init_method, str) or not init_method.startswith(INIT_SCHEMES):
        raise ValueError(
            f"tp: init_method must start with one of {', '.join(INIT_SCHEMES)}, "
            f"got {init_method!r}"
        )


def init_tp_group(
    rank: int,
    size: int,
    init_method: str,
    device: str | torch.device = "cpu",
    timeout_s: float = 60.0,
    start_timeout_s: float = 600.0,
) -> TpGroup:
    """Join the replica's groups; blocks until all `size` ranks have joined `init_method` (up to
    `start_timeout_s`). Collectives in the groups time out after `timeout_s`."""
    check_rank(rank, size, init_method)
    for name, value in (("timeout_s", timeout_s), ("start_timeout_s", start_timeout_s)):
        if not value > 0:
            raise ValueError(f"tp: {name} must be positive, got {value}")
    device = torch.device(device)
    if device.type == "cuda":
        if device.index is not None:  # "cuda" alone: the current device (a Ray actor's own GPU)
            torch.cuda.set_device(device)
        device = torch.device("cuda", torch.cuda.current_device())
    elif device.type != "cpu":
        raise ValueError(f"tp: device must be cpu or cuda, got {device}")
    if dist.is_initialized():
        raise RuntimeError("tp: this process already belongs to a process group")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend,
        init_method=init_method,
        rank=rank,
        world_size=size,
        timeout=timedelta(seconds=start_timeout_s),
    )
    timeout = timedelta(seconds=timeout_s)
    compute = dist.new_group(backend=backend, timeout=timeout)
    control = dist.new_group(backend="gloo", timeout=timeout)
    return TpGroup(rank, size, device, compute, control)


def leave_tp_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_init_method() -> str:
    """A rendezvous address on this machine's loopback (a free port, as the OS gives one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"
