"""The policy file's schema: pydantic models, used only at the boundary where a person writes YAML.

    default_class: standard
    classes:
      - name: standard
        deadline: {ms: 500, per_token_ms: 10}
        target_attainment: 0.95
        quality_floor: {min_threshold: 0.7, max_accuracy_drop: 0.03, mean_accuracy_drop: 0.01}
        priority: 1
        best_effort: false
    worker:
      threshold_range: {min: 0.5, max: 0.9}
      block_size: 32
      scheduler: {ordering: edf, load_control: threshold}
    cluster: {...}   # read by the orchestrator; the worker ignores it

Extension: the orchestrator subclasses `PolicyModel` / `SloClassModel` to add its fields and passes
its model to `loader.load_policy(..., model=...)`; every other field stays validated strictly.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dilaserve.core.checks import check_unique
from dilaserve.policy.scheduler_config import SchedulerConfig

Threshold = Field(gt=0, le=1)


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadlineModel(StrictModel):
    ms: float | None = Field(None, gt=0, description="absolute part of the deadline, ms")
    per_token_ms: float | None = Field(
        None, gt=0, description="ms per output token (the request's max_new_tokens)"
    )

    @model_validator(mode="after")
    def _some_part(self) -> DeadlineModel:
        if self.ms is None and self.per_token_ms is None:
            raise ValueError("give ms and/or per_token_ms")
        return self


class QualityFloorModel(StrictModel):
    min_threshold: float | None = Field(
        None, gt=0, le=1, description="the lowest confidence threshold allowed"
    )
    max_accuracy_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the largest accuracy drop (0..1) against the quality profile's reference "
        "setting; the floor is the lowest profiled threshold within it",
    )
    mean_accuracy_drop: float | None = Field(
        None,
        ge=0,
        le=1,
        description="the class's accuracy budget: the mean accuracy drop (0..1) its finished "
        "requests may take; the scheduler spends it where it buys attainment (None: no budget, "
        "every request may go down to the floor)",
    )


class SloClassModel(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="the class's name in requests")
    deadline: DeadlineModel | None = Field(None, description="required unless best_effort")
    target_attainment: float = Field(
        0.9, gt=0, le=1, description="the share of requests that should meet their deadline"
    )
    quality_floor: QualityFloorModel | None = None
    priority: int = Field(
        0, description="higher: ordered first among equals and the last to be made late"
    )
    best_effort: bool = Field(
        False, description="finish late (deadline_met=false) rather than fail or be refused"
    )

    @model_validator(mode="after")
    def _deadline_unless_best_effort(self) -> SloClassModel:
        if self.deadline is None and not self.best_effort:
            raise ValueError("deadline is required unless best_effort is true")
        return self


class ThresholdRangeModel(StrictModel):
    min: float = Field(0.5, gt=0, le=1, description="lowest threshold load control may use")
    max: float = Field(0.9, gt=0, le=1, description="the threshold requests start at")

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRangeModel:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class WorkerModel(StrictModel):
    threshold_range: ThresholdRangeModel = ThresholdRangeModel()
    block_size: int = Field(32, gt=0, description="default starting block size")
    cache_mode: Literal["none", "prefix", "dual"] = "dual"
    max_new_tokens: int = Field(256, gt=0, description="the largest canvas a request may ask")
    max_rows: int | None = Field(None, gt=0, description="engine rows (default: the engine's)")
    max_tokens: int | None = Field(None, gt=0, description="prompt + canvas tokens in flight")
    scheduler: SchedulerConfig = Field(
        default_factory=SchedulerConfig,
        description="dilaserve.policy.scheduler_config.SchedulerConfig",
    )


class PolicyModel(StrictModel):
    version: Literal[1] = 1
    default_class: str
    classes: list[SloClassModel] = Field(min_length=1)
    worker: WorkerModel = WorkerModel()
    cluster: dict[str, Any] | None = Field(None, description="the orchestrator's; not read here")

    @model_validator(mode="after")
    def _names(self) -> PolicyModel:
        names = [c.name for c in self.classes]
        check_unique(names, "classes: names must be unique")
        if self.default_class not in names:
            raise ValueError(
                f"default_class: {self.default_class!r} is not one of the classes {names}"
            )
        return self
