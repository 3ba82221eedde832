"""The worker's pure, deadline-aware step scheduler (`scheduler` shows the loop that drives it)."""

from dilaserve.policy.scheduler_config import LOAD_CONTROLS, ORDERINGS, SchedulerConfig
from worker.scheduler.predictor import BatchShape, Predictor
from worker.scheduler.requests import (
    AdmissionDecision,
    RequestSpec,
    RequestState,
    TerminalEvent,
    TerminalKind,
    Verdict,
)
from worker.scheduler.scheduler import Scheduler, plan_has_work

__all__ = [
    "LOAD_CONTROLS",
    "ORDERINGS",
    "AdmissionDecision",
    "BatchShape",
    "Predictor",
    "RequestSpec",
    "RequestState",
    "Scheduler",
    "SchedulerConfig",
    "TerminalEvent",
    "TerminalKind",
    "Verdict",
    "plan_has_work",
]
