"""The live benchmark's requests: a trace's arrivals, lengths and classes, as the shipped model's
held-out task prompts (whose exact answers make accuracy measurable), and the very same requests
as simulator jobs.

Mapping a trace request (arrival, prompt length, output length) onto the shipped model:
- prompt: a held-out task prompt near the trace's prompt length clipped to the model (prompt +
  largest canvas <= max_seq_len): the shipped model's long tasks (xor, sft) have 69-character
  prompts and its short ones (rev, sort) 9-21; a trace prompt nearer 69 becomes the long tasks
  in turn, a shorter one the short tasks in turn, each the prompt of its task nearest in length
  (seeded rotation among equals);
- canvas (max_new_tokens): the trace's output length rounded up to the block size, clipped to
  [the blocks the longest answer needs, the policy's max_new_tokens]; the engine stops early
  once a block ends in EOS, so a short answer decodes one block and a long one (64 tokens) three
  over a canvas that the trace's output length sizes (the simulator's
  fixed-canvas-with-early-stop case, per request);
- deadline: arrival + SLO scale x the request's unloaded latency from the shipped model's
  step-cost and quality profiles (`ProfileSet.unloaded_latency`, via `traces.prepare_jobs`),
  exactly as the simulator assigns it, so both modes give every request the same deadline.
"""

from __future__ import annotations

import dataclasses
import math
import random
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass

from sim.workload import DEFAULT_SPEED_CV, SimClass, SimWorkload, workload_from_jobs
from solver.profile_set import ProfileSet
from traces.jobs import CanvasPolicy, prepare_jobs
from traces.records import Trace, TraceRequest
from worker.models import tasks
from worker.models.task_suites import suite_of

POOL_PER_TASK = 64  # held-out prompts per task the requests are drawn from
POOL_SEED = 4321  # + the bench seed (the quality profile was measured on seed 1234's set)


@dataclass(frozen=True)
class LiveRequest:
    index: int
    request_id: str
    at_s: float  # when the client sends it, from the replay's start
    slo_class: str
    task: str
    prompt: str
    answer: str
    canvas: int  # max_new_tokens
    deadline_ms: float  # relative to the send time


@dataclass(frozen=True)
class LiveWorkload:
    requests: tuple[LiveRequest, ...]
    sim: SimWorkload  # the same requests (lengths, arrivals, deadlines) as simulator jobs
    notes: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.sim.duration_s

    @property
    def rate(self) -> float:
        return self.sim.rate

    def first(self, seconds: float, prefix: str) -> tuple[LiveRequest, ...]:
        """The requests that arrive in the first `seconds`, renamed `prefix-<id>` (ids must
        not repeat within a cluster's life): a warm-up or calibration replay."""
        leading = (r for r in self.requests if r.at_s < seconds)
        return tuple(dataclasses.replace(r, index=i, request_id=f"{prefix}-{r.request_id}")
                     for i, r in enumerate(leading))


@dataclass(frozen=True)
class TaskCanvas(CanvasPolicy):
    """Canvas = output length rounded up to the block, within [answer_canvas, max_canvas]; a
    request decodes the blocks its own answer and EOS take (early stop), `answer_canvas` (the
    longest answer's) for a request not in `decoded_of`."""

    max_canvas: int = 128
    answer_canvas: int = 32
    decoded_of: Mapping[TraceRequest, int] = dataclasses.field(default_factory=dict)

    def canvas(self, request: TraceRequest) -> int:
        return min(self.max_canvas, max(self.answer_canvas, self.round_up(request.output_len)))

    def decoded(self, request: TraceRequest, canvas: int) -> int:
        return min(canvas, self.decoded_of.get(request, self.answer_canvas))

    def describe(self) -> str:
        return (f"canvas = trace output length rounded up to block {self.block_size}, clipped to "
                f"[{self.answer_canvas}, {self.max_canvas}]; decoding stops early at the block "
                f"where its answer ends (EOS)")


class PromptPool:
    """Held-out task examples by task and prompt length. `pick(n)`: the long tasks in turn (the
    suite's multi-block ones: tiny-dlm-long's xor and sft, 69-character prompts) when one of
    their prompts is the nearest in length to n, else the short tasks in turn (rev, sort: 9-21
    characters), each the nearest in length within its task."""

    def __init__(self, seed: int, per_task: int = POOL_PER_TASK) -> None:
        self.suite = suite_of()
        examples = self.suite.heldout_set(per_task, seed=POOL_SEED + seed)
        self.by_task: dict[str, dict[int, list[tasks.Example]]] = {}
        for ex in examples:
            self.by_task.setdefault(ex.task, {}).setdefault(len(ex.prompt), []).append(ex)
        # the suite's multi-block tasks, else the task with the longest prompts
        self.long = self.suite.long_tasks or (
            max(self.by_task, key=lambda t: max(self.by_task[t])),)
        self.short = tuple(t for t in self.suite.tasks if t not in self.long and t in self.by_task)
        self.next_long = 0
        self.rng = random.Random(seed)
        self.turns: dict[tuple[str, int], int] = {}
        self.next_short = self.rng.randrange(len(self.short))
        self.longest_answer = max(len(ex.answer) for ex in examples)

    def pick(self, length: int) -> tasks.Example:
        gaps = {t: abs(self._nearest(t, length) - length) for t in self.by_task}
        if min(gaps[t] for t in self.long) < min(gaps[t] for t in self.short):
            task = self.long[self.next_long % len(self.long)]
            self.next_long += 1
        else:
            task = self.short[self.next_short % len(self.short)]
            self.next_short += 1
        n = self._nearest(task, length)
        group = self.by_task[task][n]
        k = self.turns.get((task, n), self.rng.randrange(len(group)))
        self.turns[(task, n)] = k + 1
        return group[k % len(group)]

    def _nearest(self, task: str, length: int) -> int:
        lengths = sorted(self.by_task[task])
        i = bisect_left(lengths, length)
        return min(lengths[max(0, i - 1):i + 1], key=lambda n: (abs(n - length), n))


def build_live_workload(trace: Trace, classes: tuple[SimClass, ...], profiles: ProfileSet,
                        max_new_tokens: int, seed: int = 0,
                        speed_cv: float = DEFAULT_SPEED_CV) -> LiveWorkload:
    """`trace`: already rate-scaled and windowed; `classes` carry the point's SLO scale."""
    block = profiles.reference_block
    pool = PromptPool(seed)
    answer_canvas = block * math.ceil((pool.longest_answer + 1) / block)
    max_canvas = max_new_tokens // block * block
    if max_canvas < answer_canvas:
        raise ValueError(f"max_new_tokens {max_new_tokens}: below the {answer_canvas} tokens the "
                         f"tasks' answers need")
    max_prompt = profiles.max_seq_len - max_canvas
    names = {c.name for c in classes}
    missing = sorted(set(trace.classes()) - names)
    if missing:
        raise ValueError(f"trace classes {missing} have no SLO class definition")
    chosen, mapped = [], []
    for r in trace.requests:
        ex = pool.pick(min(max(1, r.prompt_len), max_prompt))
        chosen.append(ex)
        mapped.append(TraceRequest(r.arrival_s, len(ex.prompt), r.output_len, r.slo_class))
    decoded_of = {m: block * math.ceil((len(ex.answer) + 1) / block)
                  for m, ex in zip(mapped, chosen)}
    canvas = TaskCanvas(block_size=block, max_canvas=max_canvas, answer_canvas=answer_canvas,
                        decoded_of=decoded_of)
    mapped_trace = trace.with_requests(mapped, "prompts: held-out task prompts")
    jobs = prepare_jobs(mapped_trace, canvas, profiles.unloaded_latency,
                        {c.name: c.slo_scale for c in classes})
    requests = tuple(
        LiveRequest(j.index, j.request_id, j.arrival_s, j.slo_class, ex.task, ex.prompt,
                    ex.answer, j.canvas_len, (j.deadline_s - j.arrival_s) * 1e3)
        for j, ex in zip(jobs, chosen))
    counts = {t: sum(ex.task == t for ex in chosen) for t in pool.suite.tasks}
    mix = ", ".join(f"{t} {n / max(1, len(chosen)):.0%}" for t, n in counts.items())
    notes = (f"prompts: held-out task prompts near the trace's prompt lengths (clipped to "
             f"{max_prompt}): the long tasks in turn for long ones, the short tasks in turn; "
             f"task mix {mix}",
             canvas.describe(),
             f"deadline = arrival + SLO scale x unloaded latency ({profiles.name} profiles, "
             f"as the simulator assigns it)")
    sim = workload_from_jobs(jobs, classes, trace.duration_s, (*trace.notes, *notes), seed,
                             speed_cv)
    return LiveWorkload(requests, sim, notes)
