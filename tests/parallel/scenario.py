"""A scripted mix of requests for comparing engines step by step: different prompt lengths,
canvases, block sizes, thresholds, rules and cache modes; admissions while others run, a threshold
and block-size change, a cancellation."""

from __future__ import annotations

from dataclasses import dataclass, field

from dilaserve.core.steps import (
    AdmitRow,
    DecodeSettings,
    RowOutcome,
    SettingsChange,
    StepPlan,
)
from worker.engine.engine import DenoisingEngine
from worker.models.task_suites import suite_of
from worker.models.tokenizer import CharTokenizer


@dataclass(frozen=True)
class Script:
    admits: dict[int, tuple[AdmitRow, ...]]
    changes: dict[int, tuple[SettingsChange, ...]] = field(default_factory=dict)
    evicts: dict[int, tuple[str, ...]] = field(default_factory=dict)


def _prompt(tok: CharTokenizer, task: str, index: int = 0) -> tuple[int, ...]:
    examples = suite_of().heldout_set(4, tasks=(task,))
    return tuple(tok.encode(examples[index].prompt))


def mixed_script(tok: CharTokenizer, cache_modes: tuple[str, ...] = ("dual", "prefix")) -> Script:
    first, second = cache_modes[0], cache_modes[-1]

    def row(rid, task, canvas, index=0, **settings) -> AdmitRow:
        return AdmitRow(rid, _prompt(tok, task, index), canvas, DecodeSettings(**settings))

    return Script(
        admits={
            0: (
                row("xor", "xor", 16, block_size=8, threshold=0.999, cache_mode=first),
                row("long", "sft", 32, block_size=16, threshold=0.99, cache_mode=second),
                row("sort", "sort", 32, block_size=32, threshold=0.9, cache_mode=first),
                row("cancelled", "rev", 48, block_size=16, rule="topk", cache_mode=second),
            ),
            2: (
                row("topk", "rev", 64, 1, block_size=8, rule="topk", rule_param=2,
                    cache_mode=first),
                row("nocache", "xor", 16, 1, block_size=8, threshold=1.0, cache_mode="none"),
            ),
            4: (
                row("changed", "sft", 64, 1, block_size=16, threshold=1.0, cache_mode=second),
                row("factor", "sort", 32, 1, block_size=8, rule="factor", cache_mode=first),
            ),
        },
        changes={6: (SettingsChange("changed", threshold=0.6, block_size=8),)},
        evicts={5: ("cancelled",)},
    )


def drive(engine: DenoisingEngine, script: Script, max_steps: int = 500) -> list[tuple]:
    """Every step's outcomes, in order."""
    running: list[str] = []
    history: list[tuple[RowOutcome, ...]] = []
    last_admit = max(script.admits)
    for step in range(max_steps):
        if step > last_admit and not running:
            return history
        admit = script.admits.get(step, ())
        evict = tuple(r for r in script.evicts.get(step, ()) if r in running)
        running = [r for r in running if r not in evict] + [a.request_id for a in admit]
        changes = tuple(c for c in script.changes.get(step, ()) if c.request_id in running)
        result = engine.step(StepPlan(admit, tuple(running), evict, changes))
        history.append(result.outcomes)
        running = [o.request_id for o in result.outcomes if not o.done]
    raise AssertionError(f"the script did not finish in {max_steps} steps")
