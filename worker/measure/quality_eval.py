"""Exact-match quality of decoding settings on the shipped model's held-out task set."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from dilaserve.core.steps import AdmitRow, DecodeSettings
from dilaserve.core.tokenizer import Tokenizer
from dilaserve.profiles.quality import QualityPoint
from worker.engine.engine import DenoisingEngine
from worker.engine.runner import RunReport, run_to_completion
from worker.models.tasks import Example


@dataclass(frozen=True)
class EvalResult:
    point: QualityPoint
    report: RunReport
    answers: dict[str, str]


Canvas = int | Mapping[str, int]  # one canvas for every prompt, or one per task


def canvas_of(canvas: Canvas, task: str) -> int:
    return canvas if isinstance(canvas, int) else canvas[task]


def requests_for(
    examples: list[Example], tok: Tokenizer, canvas: Canvas, settings: DecodeSettings
) -> list[AdmitRow]:
    return [
        AdmitRow(f"{i}", tuple(tok.encode(ex.prompt)), canvas_of(canvas, ex.task), settings)
        for i, ex in enumerate(examples)
    ]


def evaluate(
    engine: DenoisingEngine,
    tok: Tokenizer,
    examples: list[Example],
    settings: DecodeSettings,
    canvas: Canvas,
    batch_size: int,
    keep_steps: bool = False,
) -> EvalResult:
    report = run_to_completion(
        engine, requests_for(examples, tok, canvas, settings), batch_size, keep_steps
    )
    correct: dict[str, list[bool]] = defaultdict(list)
    task_forwards: dict[str, list[int]] = defaultdict(list)
    answers = {}
    forwards = committed = answer_tokens = 0
    for i, ex in enumerate(examples):
        done = report.completions[f"{i}"]
        answers[f"{i}"] = tok.decode(done.output_ids)
        correct[ex.task].append(answers[f"{i}"] == ex.answer)
        forwards += done.forwards
        task_forwards[ex.task].append(done.forwards)
        committed += done.committed
        answer_tokens += len(done.output_ids)
    per_task = {task: sum(v) / len(v) for task, v in sorted(correct.items())}
    point = QualityPoint(
        rule=settings.rule,
        threshold=settings.threshold if settings.rule == "threshold" else settings.param,
        block_size=settings.block_size,
        accuracy=sum(sum(v) for v in correct.values()) / len(examples),
        per_task=per_task,
        answer_tokens_per_step=answer_tokens / forwards,
        tokens_per_step=committed / forwards,
        forwards_per_request=forwards / len(examples),
        per_task_forwards={task: sum(v) / len(v) for task, v in sorted(task_forwards.items())},
    )
    return EvalResult(point, report, answers)
