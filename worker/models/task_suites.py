"""Which synthetic task mix a model was trained on, found by its name: the held-out prompts that
quality profiles, benches, the demo and the live bench send it, and the canvas each task takes.

A model the suites do not name (a LLaDA checkpoint, a tiny-checkpoint) gets tiny-dlm's mix: short
prompts and one-block answers, cheap to send to a model that was not trained on them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dilaserve.core.locations import resolve_model_dir
from worker.models import long_tasks, tasks
from worker.models.tasks import Example


@dataclass(frozen=True)
class TaskSuite:
    model: str
    tasks: tuple[str, ...]
    long_tasks: tuple[str, ...]  # answers over several 32-token blocks
    heldout_set: Callable[..., list[Example]]  # (per_task, seed=..., tasks=...) -> examples
    task_of: Callable[[str], str | None]
    canvas_of: Callable[[str], int]  # the canvas a task's answers are decoded in

    @property
    def short_tasks(self) -> tuple[str, ...]:
        """The tasks whose answers fit one 32-token block."""
        return tuple(t for t in self.tasks if t not in self.long_tasks)

    def canvases(self) -> dict[str, int]:
        return {task: self.canvas_of(task) for task in self.tasks}


TINY_DLM = TaskSuite("tiny-dlm", tasks.TASKS, (), tasks.heldout_set, tasks.task_of,
                     lambda task: 32)
TINY_DLM_LONG = TaskSuite(long_tasks.MODEL_NAME, long_tasks.TASKS, long_tasks.LONG_TASKS,
                          long_tasks.heldout_set, long_tasks.task_of, long_tasks.canvas_for)
SUITES = {s.model: s for s in (TINY_DLM, TINY_DLM_LONG)}
DEFAULT = TINY_DLM


def suite_for(model_name: str) -> TaskSuite:
    return SUITES.get(model_name, DEFAULT)


def suite_of(model_dir: str | Path | None = None) -> TaskSuite:
    """The suite of a model directory (the shipped model's by default), without loading it: a
    Hugging Face layout names its model by its directory."""
    return suite_for(resolve_model_dir(model_dir).name)
