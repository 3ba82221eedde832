"""Assembling a worker: model, profiles and policy -> engine, scheduler, serving loop, validator.

The step-cost model starts from the profile `dilaserve profile` wrote for this cache mode and is
refined online from every measured step (OnlineStepCost); the scheduler calls its `update`.
With `calibrate` (a worker loading its own model and profiles does), a short calibration first
checks the profile against this machine and the profile is scaled by the machine's factor when it
is more than 10% off, and kept scaled by the factor its live steps show
(`dilaserve.profiles.machine_scale`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dilaserve.core.locations import resolve_model_dir
from dilaserve.core.steps import EngineLimits
from dilaserve.core.tokenizer import Tokenizer
from dilaserve.policy import Policy
from dilaserve.profiles.machine_scale import MachineScale, ScaledStepCost
from dilaserve.profiles.online import OnlineStepCost
from dilaserve.profiles.quality import QualityProfile
from dilaserve.profiles.step_cost import StepCostModel, StepCostProfile
from worker.engine.engine import DenoisingEngine, EngineConfig
from worker.measure.calibration import calibrate as run_calibration
from worker.measure.profile_files import (
    QUALITY_FILE,
    choose_step_cost,
    hardware_name,
    profiles_dir,
)
from worker.models.device import require_device, torch_dtype
from worker.models.shipped import load
from worker.models.transformer import DiffusionTransformer
from worker.scheduler import Scheduler
from worker.service.loop import ServingLoop
from worker.service.metrics import WorkerMetrics
from worker.service.servicer import ControlState
from worker.service.validation import ModelFacts, RequestValidator

ERROR_WINDOW = 1000  # recent steps the step-cost error in Stats is the median over
EngineClass = Callable[[DiffusionTransformer, EngineConfig], DenoisingEngine]


@dataclass
class Worker:
    """Everything a server needs; `loop` is not started yet."""

    loop: ServingLoop
    validator: RequestValidator
    replica: ControlState
    model_name: str
    policy: Policy
    metrics: WorkerMetrics | None = None  # Prometheus (`metrics.serve_metrics`); None: off


def build_worker(
    model: DiffusionTransformer,
    tokenizer: Tokenizer | None,
    policy: Policy,
    quality: QualityProfile,
    step_cost: StepCostModel,
    engine_class: EngineClass = DenoisingEngine,
    online_step_cost: bool = True,
    clock: Callable[[], float] = time.monotonic,
    calibrate: bool = False,
) -> Worker:
    policy.check_against(quality)
    settings = policy.worker
    cfg = model.config
    if tokenizer is not None:
        check_tokenizer_fits(tokenizer, cfg.vocab_size, cfg.mask_token_id)
    stop_ids = frozenset((cfg.eos_token_id, *(tokenizer.stop_ids if tokenizer else ())))
    engine_config = EngineConfig(max_rows=settings.max_rows, max_tokens=settings.max_tokens,
                                 stop_token_ids=tuple(sorted(stop_ids)))
    online = OnlineStepCost(step_cost, error_window=ERROR_WINDOW) if online_step_cost else None
    cost = online if online is not None else step_cost
    if calibrate:  # before the serving engine is made: a TP replica's ranks follow the newest
        cost = calibrated_step_cost(model, step_cost, online, settings.cache_mode, engine_class)

    def make_engine() -> DenoisingEngine:
        return engine_class(model, engine_config)

    def make_scheduler(limits: EngineLimits) -> Scheduler:
        return Scheduler(settings.scheduler, limits, quality, cost)

    loop = ServingLoop(
        make_engine,
        make_scheduler,
        tokenizer,
        stop_ids,
        {c.name: c.target_attainment for c in policy.classes},
        clock=clock,
    )
    facts = ModelFacts(cfg.vocab_size, cfg.mask_token_id, loop.limits)
    validator = RequestValidator(policy, facts, tokenizer, quality)
    return Worker(loop, validator, ControlState(settings.threshold_range), cfg.name, policy)


def calibrated_step_cost(model: DiffusionTransformer, step_cost: StepCostModel,
                         online: OnlineStepCost | None, cache_mode: str,
                         engine_class: EngineClass) -> ScaledStepCost:
    """The step-cost model scaled by this machine's factor, measured now and kept measured."""
    cost = ScaledStepCost(step_cost, MachineScale(), online)
    calibration = run_calibration(model, cache_mode, engine_class)
    cost.calibrate(calibration.ratios(step_cost))
    machine = cost.machine
    verdict = (f"the step-cost model is scaled by {machine.applied:.2f}" if machine.applied != 1.0
               else "within 10%: the profile is used as it is")
    print(f"dilaserve worker: step-cost calibration: {machine.calibration_steps} timed shapes in "
          f"{calibration.seconds:.2f} s stepped x{machine.calibration:.2f} the profile's "
          f"prediction (median); {verdict}", file=sys.stderr, flush=True)
    return cost


def check_tokenizer_fits(tokenizer: Tokenizer, vocab_size: int, mask_token_id: int) -> None:
    """The tokenizer belongs to this model: its ids fit the embedding, its mask is the model's."""
    if tokenizer.vocab_size > vocab_size:
        raise ValueError(f"model: the tokenizer has {tokenizer.vocab_size} tokens, more than the "
                         f"model's {vocab_size} embedding rows (is it this model's tokenizer?)")
    if tokenizer.mask_id != mask_token_id:
        raise ValueError(f"model: the tokenizer's mask token is {tokenizer.mask_id}, the model's "
                         f"config.json says {mask_token_id}")


def load_profiles(
    directory: Path,
    cache_mode: str,
    tp: int = 1,
    dtype: str = "float32",
    hardware: str | None = None,
    strict_hardware: bool = False,
    model: Path | None = None,
) -> tuple[QualityProfile, StepCostModel]:
    """The quality profile and the step-cost profile for this replica's (hardware, dtype, TP,
    cache mode); a stand-in for a missing one is said on stderr (`choose_step_cost`)."""
    quality_path = directory / QUALITY_FILE
    if not quality_path.is_file():
        raise FileNotFoundError(
            f"no quality profile {quality_path}; run `dilaserve profile` (or pass --profiles)"
        )
    path, note = choose_step_cost(directory, cache_mode, tp, dtype, hardware, strict_hardware,
                                  model)
    if note:
        print(f"dilaserve worker: {note}", file=sys.stderr, flush=True)
    return QualityProfile.load(quality_path), StepCostProfile.load(path).cost


def load_worker(
    model_path: str | Path | None,
    policy: Policy,
    profiles: Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    hardware: str | None = None,
    strict_hardware: bool = False,
    **options,
) -> Worker:
    """A worker for a model directory (None: the shipped model) and its profiles, on `device` in
    `dtype` (`worker.models.device.choose_device` decides them). Its step-cost profile is keyed
    by `hardware` (default: this device's `hardware_name`); strict: no other hardware's stands
    in. Profiles are found before the weights are read, and a cuda device is checked first."""
    require_device(device)
    directory = resolve_model_dir(model_path)
    quality, step_cost = load_profiles(
        profiles or profiles_dir(directory), policy.worker.cache_mode, 1, dtype,
        hardware or hardware_name(device), strict_hardware, directory,
    )
    model, tokenizer, directory = load(directory, dtype=torch_dtype(dtype), device=device)
    options.setdefault("calibrate", True)
    return build_worker(model, tokenizer, policy, quality, step_cost, **options)
