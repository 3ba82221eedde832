"""What rank 0 sends its followers, in order, on the control group (pickled by
torch.distributed.broadcast_object_list over gloo: the ranks of one replica trust each other)."""

from __future__ import annotations

from dataclasses import dataclass

from dilaserve.core.steps import StepPlan
from worker.engine.engine import EngineConfig


@dataclass(frozen=True)
class NewEngine:
    """Build a fresh engine with these limits (rank 0 resolved them; every rank uses the same)."""

    config: EngineConfig


@dataclass(frozen=True)
class RunStep:
    """Run this step on your shard, as rank 0 does on its own."""

    plan: StepPlan


@dataclass(frozen=True)
class Ping:
    """Rank 0 is alive but idle (sent when nothing else was sent for a heartbeat interval)."""


@dataclass(frozen=True)
class Stop:
    """Leave the loop and the process groups."""


Command = NewEngine | RunStep | Ping | Stop
COMMANDS = (NewEngine, RunStep, Ping, Stop)
