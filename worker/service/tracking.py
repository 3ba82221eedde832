"""The loop's bookkeeping: each accepted request's timings and thresholds, and the counters that
Stats reports (attainment per class counts finished, expired and rejected requests; cancelled and
failed ones are the client's or the engine's doing, not the scheduler's, and are counted apart)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from dilaserve.core.steps import FinishReason, StepResult
from dilaserve.profiles.step_cost import StepCostModel
from worker.scheduler.requests import RequestSpec, TerminalEvent
from worker.service.events import ClassCounts, FinalResult, PartialResult, RequestSink
from worker.service.text_stream import TextStream

STEP_WINDOW = 1000  # recent steps the median step time and the prior's error are taken over


@dataclass
class Tracked:
    """An accepted request as the loop follows it until its one ending."""

    spec: RequestSpec
    sink: RequestSink
    text: TextStream  # the answer's text, released block by block
    admitted_at: float | None = None
    first_block_at: float | None = None
    blocks: int = 0
    threshold_min: float = 1.0
    threshold_sum: float = 0.0
    steps: int = 0
    stopped_by_server: bool = False
    saw_eos: bool = False  # an earlier block held EOS: later blocks are past the answer

    @property
    def request_id(self) -> str:
        return self.spec.request_id

    def ran_at(self, threshold: float) -> None:
        self.steps += 1
        self.threshold_sum += threshold
        self.threshold_min = min(self.threshold_min, threshold)

    def elapsed_ms(self, now: float) -> float:
        return (now - self.spec.arrival_s) * 1e3

    def partial(
        self, tokens: tuple[int, ...], text: str, now: float, threshold: float
    ) -> PartialResult:
        if self.first_block_at is None:
            self.first_block_at = now
        self.blocks += 1
        return PartialResult(
            self.request_id, self.blocks - 1, tokens, text, self.elapsed_ms(now), threshold
        )

    def final(self, event: TerminalEvent, text: str,
              finish_reason: FinishReason) -> FinalResult:
        now = event.at_s
        start = self.spec.settings.threshold
        return FinalResult(
            request_id=self.request_id,
            text=text,
            token_ids=event.output_ids,
            finish_reason=finish_reason,
            deadline_met=event.deadline_met,
            queued_ms=self.elapsed_ms(self.admitted_at if self.admitted_at is not None else now),
            first_block_ms=self.elapsed_ms(
                self.first_block_at if self.first_block_at is not None else now
            ),
            e2e_ms=self.elapsed_ms(now),
            threshold_start=start,
            threshold_min=self.threshold_min if self.steps else start,
            threshold_mean=self.threshold_sum / self.steps if self.steps else start,
            forwards=self.steps,
            block_size=event.block_size or self.spec.settings.block_size,
            slo_class=self.spec.slo_class,
            deadline_s=self.spec.relative_deadline_s,
            prompt_tokens=len(self.spec.prompt_ids),
        )


@dataclass
class Counters:
    targets: dict[str, float]
    accepted: int = 0
    rejected: int = 0
    finished: int = 0
    deadline_met: int = 0
    expired: int = 0
    cancelled: int = 0
    failed: int = 0
    steps: int = 0
    ended_by_class: dict[str, int] = field(default_factory=dict)
    met_by_class: dict[str, int] = field(default_factory=dict)
    step_times: deque[float] = field(default_factory=lambda: deque(maxlen=STEP_WINDOW))
    prior_errors: deque[float] = field(default_factory=lambda: deque(maxlen=STEP_WINDOW))
    # every step since the start: its measured time, and the offline profile's prediction of it
    step_seconds: float = 0.0
    step_prior_seconds: float = 0.0
    busy_seconds: float = 0.0  # the loop's turns that stepped, whole: commands, plan, step, results

    def on_step(self, result: StepResult, prior: StepCostModel | None) -> None:
        """A step's measured time, and what the offline profile predicted for it."""
        self.steps += 1
        self.step_times.append(result.elapsed_s)
        self.step_seconds += result.elapsed_s
        if prior is not None and result.elapsed_s > 0:
            predicted = prior.predict(result.features)
            self.step_prior_seconds += predicted
            self.prior_errors.append(abs(predicted - result.elapsed_s) / result.elapsed_s)

    def _ended(self, slo_class: str, met: bool) -> None:
        self.ended_by_class[slo_class] = self.ended_by_class.get(slo_class, 0) + 1
        if met:
            self.met_by_class[slo_class] = self.met_by_class.get(slo_class, 0) + 1

    def on_rejected(self, slo_class: str) -> None:
        self.rejected += 1
        self._ended(slo_class, False)

    def on_finished(self, slo_class: str, met: bool) -> None:
        self.finished += 1
        self.deadline_met += met
        self._ended(slo_class, met)

    def on_expired(self, slo_class: str) -> None:
        self.expired += 1
        self._ended(slo_class, False)

    def classes(self) -> tuple[ClassCounts, ...]:
        return tuple(
            ClassCounts(
                name, target, self.ended_by_class.get(name, 0), self.met_by_class.get(name, 0)
            )
            for name, target in self.targets.items()
        )
